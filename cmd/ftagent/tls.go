package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/trust"
)

func tlsCommand() *cli.Command {
	return &cli.Command{
		Name:  "tls",
		Usage: "make the certificates of an agent's instances and clients",
		Subcommands: []*cli.Command{{
			Name:      "init",
			Usage:     "issue a CA (first run), and a certificate and key for each instance and client of an agent",
			UsageText: "ftagent tls init --dir DIR --agent NAME --instances ha1,ha2,ha3 [--clients ops:admin,batch:operator,dash:monitor] [--host NAME,...]",
			Description: "Writes DIR/ca.pem (the CA certificate, every instance's and client's tlsCA) and DIR/ca-key/ca.key\n" +
				"(the CA's key: keep it apart, offline if you can; it is needed only to issue more certificates),\n" +
				"then DIR/AGENT/NAME.pem and .key for each instance and DIR/AGENT/clients/NAME.pem and .key for\n" +
				"each client, with its role (admin, operator or monitor; a name alone is an operator). Run it again\n" +
				"with another --agent to issue the certificates of a second agent from the same CA: the agents then\n" +
				"trust each other. It never overwrites a certificate or key; keys are written 0600. It prints the\n" +
				"agent.properties lines that use the files.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Required: true, Usage: "directory of the CA and the certificates"},
				&cli.StringFlag{Name: "agent", Required: true, Usage: "the agent's name (agentName)"},
				&cli.StringFlag{Name: "instances", Usage: "comma-separated instance names"},
				&cli.StringFlag{Name: "clients", Usage: "comma-separated NAME[:ROLE] client identities"},
				&cli.StringFlag{Name: "host", Usage: "comma-separated host names or IP addresses added to the instance certificates, for other tools (ftagent checks identities, not host names)"},
			},
			Action: tlsInit,
		}},
	}
}

func tlsInit(c *cli.Context) error {
	if c.NArg() > 0 {
		return command.Usagef("tls init takes no arguments (got %q)", c.Args().First())
	}
	clients, err := trust.ParseClients(c.String("clients"))
	if err != nil {
		return command.Usagef("--clients: %v", err)
	}
	opts := trust.InitOptions{Dir: c.String("dir"), Agent: c.String("agent"), Clients: clients}
	for _, n := range strings.Split(c.String("instances"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			opts.Instances = append(opts.Instances, n)
		}
	}
	for _, h := range strings.Split(c.String("host"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			opts.Hosts = append(opts.Hosts, h)
		}
	}
	if len(opts.Instances) == 0 && len(opts.Clients) == 0 {
		return command.Usagef("name the instances (--instances) or clients (--clients) to issue certificates for")
	}
	res, err := trust.Init(opts)
	if err != nil {
		return err
	}
	if res.NewCA {
		fmt.Printf("CA made: %s (its key %s: keep it apart)\n", res.CA, res.CAKey)
	} else {
		fmt.Printf("CA reused: %s\n", res.CA)
	}
	for _, n := range opts.Instances {
		fmt.Printf("instance %s: %s\n", n, res.Instances[n][0])
	}
	for _, cl := range opts.Clients {
		fmt.Printf("client %s (role %s): %s\n", cl.Name, cl.Role, res.Clients[cl.Name][0])
	}
	fmt.Printf("\nagent.properties of agent %s ({instance} stands for each instance's name):\n\n", opts.Agent)
	for _, l := range res.Properties {
		fmt.Println(l)
	}
	return nil
}
