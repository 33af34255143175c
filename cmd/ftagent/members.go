package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/ha"
)

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "list the members of the agent's raft group, or remove one",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list the members of the agent's raft group: name, address, voter or not, leader",
				UsageText: "ftagent members list [--config FILE | -x HOST:PORT,...] [--json]",
				Description: "The group is as its leader has it. With no leader, the group as the first instance\n" +
					"that answers has it is shown, and the exit status is 1.",
				Flags: command.ClientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return command.Usagef("members list takes no arguments (got %q)", c.Args().First())
					}
					cl, _, err := command.Client(c)
					if err != nil {
						return err
					}
					m, err := agentclient.Members(c.Context, cl)
					if m.Name == "" {
						return err
					}
					if c.Bool(command.FlagJSON) {
						if e := json.NewEncoder(os.Stdout).Encode(m); e != nil {
							return e
						}
					} else {
						printMembers(m)
					}
					if err != nil {
						return fmt.Errorf("the agent %s's group has no leader that answers (as %s has the group): %w", m.Agent, m.Name, err)
					}
					return nil
				},
			},
			{
				Name:      "remove",
				Usage:     "remove an instance from the agent's raft group",
				UsageText: "ftagent members remove [--config FILE | -x HOST:PORT,...] [--json] NAME",
				Description: "The raft leader removes the instance NAME from the group. It refuses to remove itself\n" +
					"(stop it first with ftstop --instance NAME, so that another instance leads), a name that is not a member,\n" +
					"and a voter whose removal would leave no voter that can hold the lease, or fewer voters in\n" +
					"touch with the leader than a majority. The removed instance is not stopped: stop it, take it\n" +
					"out of the instances property, and delete its data directory before it is started again.",
				Flags: command.ClientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return command.Usagef("members remove takes one instance name (got %d arguments)", c.NArg())
					}
					cl, _, err := command.Client(c)
					if err != nil {
						return err
					}
					res, err := agentclient.RemoveMember(c.Context, cl, c.Args().First())
					if err != nil {
						return err
					}
					if c.Bool(command.FlagJSON) {
						return json.NewEncoder(os.Stdout).Encode(res)
					}
					fmt.Println(res.Message)
					return nil
				},
			},
		},
	}
}

func printMembers(m ha.Membership) {
	fmt.Printf("Agent:   %s\n", m.Agent)
	if m.Leader != "" {
		fmt.Printf("Leader:  %s (%s)\n", m.Leader, m.LeaderAddress)
	} else {
		fmt.Printf("Leader:  none (the group as %s has it)\n", m.Name)
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tADDRESS\tVOTER\tLEADER")
	for _, mb := range m.Members {
		voter, leader := "non-voter", ""
		if mb.Voter {
			voter = "voter"
		}
		if mb.Name == m.Leader {
			leader = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mb.Name, mb.Address, voter, leader)
	}
	_ = tw.Flush()
}
