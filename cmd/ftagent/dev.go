package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/devagent"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a local agent of several instances on this machine, to try ftagent",
		Description: "Creates a working directory (or uses --dir), writes an agent.properties for instances on\n" +
			"loopback ports, starts each instance as a child process running `ftagent start`, waits until\n" +
			"one is active and prints what to try next. Ctrl-C stops every instance cleanly.",
		UsageText: "ftagent dev [--dir DIR] [--instances N]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "working `DIR` (created if missing; an existing dev agent there is restarted with its state); default: a new temporary directory"},
			&cli.IntFlag{Name: "instances", Value: 3, Usage: "how many instances (at least 3 for failover)"},
			&cli.StringFlag{Name: "agent", Value: "DEV", Usage: "the agent's name"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return command.Usagef("dev takes no arguments (got %q)", c.Args().First())
			}
			n := c.Int("instances")
			if n < 1 || n > 9 {
				return command.Usagef("--instances must be between 1 and 9")
			}
			return devagent.Run(c.Context, devagent.Options{
				Dir:       c.String("dir"),
				Instances: n,
				AgentName: c.String("agent"),
				Out:       c.App.Writer,
			})
		},
	}
}
