// Command ftagent runs and inspects the instances of a highly available
// managed file-transfer agent. It parses flags and wires packages; behaviour
// lives in pkg/.
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/version"
)

func main() {
	app := &cli.App{
		Name:    "ftagent",
		Usage:   "highly available managed file-transfer agent",
		Version: version.String(),
		Commands: []*cli.Command{
			startCommand(),
			showCommand(),
			devCommand(),
			transferCommand(),
			agentsCommand(),
			membersCommand(),
			tlsCommand(),
		},
		HideHelpCommand: true,
	}
	command.Main(app)
}
