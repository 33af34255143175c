package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/api"
)

func agentsCommand() *cli.Command {
	return &cli.Command{
		Name:  "agents",
		Usage: "the other agents this one sends to (see also: ftagent show --agents)",
		Subcommands: []*cli.Command{
			{
				Name:  "prefer",
				Usage: "send the transfers to AGENT that moved to one of its alternates back to AGENT's own group, each at its next file boundary",
				Description: "A transfer moves to an alternate group (agent.AGENT.alternates) when AGENT's group is lost, and stays\n" +
					"there while that group answers. Once AGENT is back, this asks the active to return them: each finishes the\n" +
					"file it is sending where it is, then sends the rest to AGENT. The request lives in the active's memory\n" +
					"until they are back: after a failover of this agent, ask again. Role admin.",
				UsageText: "ftagent agents prefer [--json] AGENT",
				Flags:     command.ClientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return command.Usagef("agents prefer takes one AGENT")
					}
					cl, _, err := command.Client(c)
					if err != nil {
						return err
					}
					var res api.PreferResult
					if err := cl.Do(c.Context, http.MethodPost, api.PathAgentsPrefer, api.PreferRequest{Agent: c.Args().First()}, &res); err != nil {
						return err
					}
					if c.Bool(command.FlagJSON) {
						return json.NewEncoder(os.Stdout).Encode(res)
					}
					fmt.Printf("%d transfers to %s return to its own group, each at its next file boundary\n", res.Transfers, res.Agent)
					return nil
				},
			},
		},
	}
}
