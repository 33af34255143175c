package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/agent"
	"github.com/ftagent/ftagent/pkg/version"
)

func startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "run one instance of the agent on this host",
		UsageText: "ftagent start --config agent.properties [--instance NAME] [--witness]",
		Flags: append([]cli.Flag{
			command.ConfigFlag(),
			&cli.StringFlag{Name: "instance", Aliases: []string{"i"}, EnvVars: []string{"FTAGENT_INSTANCE"},
				Usage: "which `NAME` of the instances property this process is (default: instanceName, else the host name)"},
			&cli.BoolFlag{Name: "witness", Usage: "vote in elections but never hold the lease"},
		}, command.LogFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return command.Usagef("start takes no arguments (got %q)", c.Args().First())
			}
			cfg, err := command.LoadConfig(c)
			if err != nil {
				return err
			}
			if cfg == nil {
				return command.Usagef("start needs --config FILE (or FTAGENT_CONFIG)")
			}
			self, err := cfg.Select(c.String("instance"))
			if err != nil {
				return err
			}
			if c.Bool("witness") {
				self.Witness = true
			}
			log, err := command.Logger(c, cfg.LogLevel)
			if err != nil {
				return err
			}
			in, err := agent.Start(agent.Options{Config: cfg, Self: self, Version: version.String(), Logger: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return in.Run(ctx)
		},
	}
}
