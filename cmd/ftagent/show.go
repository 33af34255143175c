package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/ha"
)

func showCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show the agent: its status, the active instance and epoch, and every instance",
		UsageText: "ftagent show [--config FILE | -x HOST:PORT,...] [--agents] [--json]",
		Description: "Exit status, for scripts and monitoring:\n" +
			"   0  an instance holds the lease (status ACTIVE, or STOPPING while it hands over)\n" +
			"   3  no instance holds the lease: an election, or too few instances for a majority (Active: none)\n" +
			"   1  no instance answered, or another error\n" +
			"   2  bad usage or configuration",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "agents", Usage: "show the other agents this one sends to (agent.NAME.instances), as its active reaches them now"},
		}, command.ClientFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return command.Usagef("show takes no arguments (got %q)", c.Args().First())
			}
			cl, cfg, err := command.Client(c)
			if err != nil {
				return err
			}
			if c.Bool("agents") {
				return showAgents(c, cl)
			}
			v, err := agentclient.FetchView(c.Context, cl, cfg)
			if v.Status == "" {
				return err
			}
			if name, alternate := cl.Group(); alternate && err == nil && !c.Bool(command.FlagJSON) {
				fmt.Printf("Answered by the alternate group %s: no instance of %s answered.\n\n", name, cfg.AgentName)
			}
			if c.Bool(command.FlagJSON) {
				enc := json.NewEncoder(os.Stdout)
				if e := enc.Encode(v); e != nil {
					return e
				}
			} else {
				printView(v)
			}
			if err != nil {
				return err
			}
			if v.Active == "" {
				return cli.Exit(fmt.Sprintf("the agent %s has no active instance (status %s)", v.Agent, v.Status), command.ExitNoActive)
			}
			return nil
		},
	}
}

func printView(v ha.AgentView) {
	fmt.Printf("Agent:   %s\n", v.Agent)
	fmt.Printf("Status:  %s\n", v.Status)
	if v.Active != "" {
		fmt.Printf("Active:  %s (%s), lease epoch %d\n", v.Active, v.ActiveAddress, v.Epoch)
	} else {
		fmt.Printf("Active:  none\n")
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tADDRESS\tROLE\tSTATUS\tVERSION\tSTATUS AGE")
	for _, iv := range v.Instances {
		age := "-"
		if iv.StatusAge != nil {
			age = fmt.Sprintf("%.1fs", *iv.StatusAge)
		}
		name, ver := iv.Name, iv.Version
		if name == "" {
			name = "?"
		}
		if ver == "" {
			ver = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, iv.Address, iv.Role, iv.Status, ver, age)
	}
	_ = tw.Flush()
	if len(v.Standbys) > 0 {
		fmt.Printf("\nStandbys ready to take over: %s\n", strings.Join(v.Standbys, ", "))
	}
}

// showAgents prints the other agents this one sends to, as its active
// reaches them. Exit 1 when one of them cannot be reached.
func showAgents(c *cli.Context, cl *client.Client) error {
	var vs []api.RemoteAgentView
	if err := cl.Do(c.Context, http.MethodGet, api.PathAgents, nil, &vs); err != nil {
		return err
	}
	if c.Bool(command.FlagJSON) {
		if err := json.NewEncoder(os.Stdout).Encode(vs); err != nil {
			return err
		}
	} else if len(vs) == 0 {
		fmt.Println("This agent sends to no other agent (no agent.NAME.instances in its properties).")
	} else {
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AGENT\tREACHABLE\tRECEIVER\tADDRESS\tEPOCH\tROUND TRIP\tASKED BY")
		for _, v := range vs {
			if !v.Reachable {
				fmt.Fprintf(tw, "%s\tno\t-\t-\t-\t-\t%s\n", v.Agent, v.From)
				continue
			}
			fmt.Fprintf(tw, "%s\tyes\t%s\t%s\t%d\t%.1f ms\t%s\n", v.Agent, v.Receiver, v.Address, v.ReceiverEpoch, v.RoundTrip*1000, v.From)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, v := range vs {
			if !v.Reachable {
				fmt.Printf("%s: %s\n", v.Agent, v.Error)
			}
		}
		for _, v := range vs {
			if len(v.Alternates) == 0 {
				continue
			}
			if len(v.Moved) == 0 {
				fmt.Printf("%s: alternates %s; its transfers go to %s itself\n", v.Agent, strings.Join(v.Alternates, ", "), v.Agent)
			}
			for _, m := range v.Moved {
				fmt.Printf("%s: alternates %s; %d transfer(s) moved to %s, the last at %s: %s (ftagent agents prefer %s sends them back)\n",
					v.Agent, strings.Join(v.Alternates, ", "), m.Transfers, m.To, m.Since.Local().Format(time.RFC3339), m.Reason, v.Agent)
			}
		}
	}
	for _, v := range vs {
		if !v.Reachable {
			return cli.Exit("", 1)
		}
	}
	return nil
}
