// Command ftstop stops an instance of an agent: by default the active one,
// which first hands the lease to a standby. Without -i the active first lets
// in-flight work finish; -i hands over at once.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/version"
)

func main() {
	app := &cli.App{
		Name:      "ftstop",
		Usage:     "stop an instance of an agent (by default the active one, handing its lease to a standby)",
		UsageText: "ftstop [-i] [--instance NAME] [--force] [--config FILE | -x HOST:PORT,...] [--json]",
		Description: "A normal stop of the active lets its running transfers finish, for at most drainTimeout (5m by\n" +
			"default), and prints on stderr every 2 seconds which transfers it waits for. `ftstop -i`, also while\n" +
			"a normal stop waits, hands the lease over at once: the transfers stop at their last checkpoints and\n" +
			"the new active resumes them. A stop that would leave fewer than a majority of the voting instances\n" +
			"running (the agent would have no active) is refused, unless --force.",
		Version: version.String(),
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "immediate", Aliases: []string{"i"},
				Usage: "hand the lease over now, without waiting for in-flight work to finish"},
			&cli.StringFlag{Name: "instance", Usage: "stop this instance instead of the active one"},
			&cli.BoolFlag{Name: "force", Usage: "stop even when the instances left would be too few for a majority, so the agent would have no active"},
		}, command.ClientFlags()...),
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return command.Usagef("ftstop takes no arguments (got %q)", c.Args().First())
			}
			cl, cfg, err := command.Client(c)
			if err != nil {
				return err
			}
			res, err := agentclient.Stop(c.Context, cl, cfg, agentclient.StopOptions{
				Instance:  c.String("instance"),
				Immediate: c.Bool("immediate"),
				Force:     c.Bool("force"),
				Progress: func(p api.StopProgress) {
					fmt.Fprintf(c.App.ErrWriter, "ftstop: %s\n", command.StopProgressLine(p, time.Now()))
				},
			})
			if err != nil {
				return err
			}
			if c.Bool(command.FlagJSON) {
				return json.NewEncoder(os.Stdout).Encode(res)
			}
			fmt.Println(res.Message)
			return nil
		},
	}
	command.Main(app)
}
