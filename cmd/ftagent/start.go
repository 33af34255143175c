package main

import (
	"errors"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/agent"
	"github.com/ftagent/ftagent/pkg/ha"
	"github.com/ftagent/ftagent/pkg/version"
)

func startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "run one instance of the agent on this host",
		UsageText: "ftagent start --config agent.properties [--instance NAME] [--witness] [--join | --bootstrap]",
		Description: "An instance without raft state (its first start) first asks the other instances whether the\n" +
			"agent's group exists. If one is in it, the instance asks the group's active to add it, and never\n" +
			"forms a group of its own. It forms the group of the instances listed in `instances` only when\n" +
			"every one of them answers and none is in a group yet. --join never forms a group; --bootstrap\n" +
			"forms it without waiting for instances that do not answer.",
		Flags: append([]cli.Flag{
			command.ConfigFlag(),
			&cli.StringFlag{Name: "instance", Aliases: []string{"i"}, EnvVars: []string{"FTAGENT_INSTANCE"},
				Usage: "which `NAME` of the instances property this process is (default: instanceName, else the host name)"},
			&cli.BoolFlag{Name: "witness", Usage: "vote in elections but never hold the lease"},
			&cli.BoolFlag{Name: "join", Usage: "on a first start, never form the agent's group: wait to be added to the existing one"},
			&cli.BoolFlag{Name: "bootstrap", Usage: "on a first start, form the agent's group without waiting for instances that do not answer (never when one answers that it is in a group)"},
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
			join := ha.JoinAuto
			switch {
			case c.Bool("join") && c.Bool("bootstrap"):
				return command.Usagef("--join and --bootstrap exclude each other")
			case c.Bool("join"):
				join = ha.JoinOnly
			case c.Bool("bootstrap"):
				join = ha.JoinForceBootstrap
			}
			log, err := command.Logger(c, cfg.LogLevel)
			if err != nil {
				return err
			}
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(gcPercent)
			}
			in, err := agent.Start(agent.Options{Config: cfg, Self: self, Version: version.String(), Logger: log, Join: join})
			if err != nil {
				return err
			}
			// The first signal stops the instance normally, a second one
			// hurries that stop (see agent.RunUntilSignalled).
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			// SIGHUP re-reads the TLS certificate, key and CA bundle.
			hups := make(chan os.Signal, 1)
			signal.Notify(hups, syscall.SIGHUP)
			defer signal.Stop(hups)
			go func() {
				for range hups {
					in.ReloadTLS()
				}
			}()
			err = in.RunUntilSignalled(sigs)
			if errors.Is(err, agent.ErrQuorumLost) {
				// The instance logged why; no second line on stderr.
				return cli.Exit("", command.ExitQuorumLost)
			}
			return err
		},
	}
}

// gcPercent is the instance's GOGC unless the environment sets one. Most of
// an instance's heap is the replicated state's file tables, which hold no
// pointers (pkg/transfer/replicated/files.go): a collection hardly has to
// mark them, so collecting at half the live heap's growth rather than Go's
// default (its whole size) costs little CPU and keeps the resident memory
// of a large transfer (a million files: about 70 MiB of state) a third
// lower.
const gcPercent = 50
