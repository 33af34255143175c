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
			"one is active and prints what to try next. Ctrl-C stops every instance cleanly.\n\n" +
			"With --agents 2 it runs a second agent too, named after the first with a 2 (DEV2), in DIR/DEV2\n" +
			"with its own agent.properties, data and transferRoot, and certificates from the same CA: the\n" +
			"first may send files to it (ftagent transfer create --dest-agent DEV2), and it accepts them.\n" +
			"With --alternate too, a third agent (DEV2_DR, in DIR/DEV2_DR, instances and storage of its own)\n" +
			"is DEV2's alternate group: transfers to DEV2 move there once DEV2's whole group has been lost\n" +
			"for 10 seconds (alternateAfter).",
		UsageText: "ftagent dev [--dir DIR] [--instances N] [--agent NAME] [--agents 2 [--alternate]]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "working `DIR` (created if missing; an existing dev agent there is restarted with its state); default: a new temporary directory"},
			&cli.IntFlag{Name: "instances", Value: 3, Usage: "how many instances (at least 3 for failover)"},
			&cli.StringFlag{Name: "agent", Value: "DEV", Usage: "the agent's name"},
			&cli.IntFlag{Name: "agents", Value: 1, Usage: "how many agents: 1, or 2 for a second agent (the agent's name with a 2) that the first sends files to"},
			&cli.BoolFlag{Name: "alternate", Usage: "with --agents 2: a third agent (the second's name with _DR) as the second's alternate group"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return command.Usagef("dev takes no arguments (got %q)", c.Args().First())
			}
			n := c.Int("instances")
			if n < 1 || n > 9 {
				return command.Usagef("--instances must be between 1 and 9")
			}
			agents := c.Int("agents")
			if agents != 1 && agents != 2 {
				return command.Usagef("--agents must be 1 or 2 (got %d)", agents)
			}
			if c.Bool("alternate") && agents != 2 {
				return command.Usagef("--alternate needs --agents 2: the alternate group is the second agent's")
			}
			return devagent.Run(c.Context, devagent.Options{
				Dir:       c.String("dir"),
				Instances: n,
				AgentName: c.String("agent"),
				Agents:    agents,
				Alternate: c.Bool("alternate"),
				Out:       c.App.Writer,
			})
		},
	}
}
