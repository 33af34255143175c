package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/internal/command"
	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
	"github.com/ftagent/ftagent/pkg/transfer"
	"github.com/ftagent/ftagent/pkg/transfer/copyloop"
)

func transferCommand() *cli.Command {
	return &cli.Command{
		Name:  "transfer",
		Usage: "create, follow, list and cancel file transfers",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "transfer files from SOURCE... to DEST",
				UsageText: "ftagent transfer create [options] SOURCE... DEST",
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "transfer directories and what they contain"},
					&cli.BoolFlag{Name: "overwrite", Usage: "replace destination files that exist (default: such a file fails)"},
					&cli.BoolFlag{Name: "delete-source", Usage: "delete each source file once its transfer has completed"},
					&cli.IntFlag{Name: "priority", Value: 0, Usage: "0-9, higher first"},
					&cli.StringFlag{Name: "recovery-timeout", Usage: "how long to retry after transient errors: -1 forever, 0 fail at once, seconds or a duration (default: transferRecoveryTimeout)"},
					&cli.StringFlag{Name: "bwlimit", Usage: "bandwidth limit of this transfer in bytes per second, e.g. 512K, 64M, 1G; at least 1K; 0 means unlimited (the default)"},
					&cli.StringFlag{Name: "dest-agent", Usage: "send the files to this other agent (one of agent.NAME.instances); DEST is then a path of that agent's, resolved under its transferRoot and sandbox"},
					&cli.BoolFlag{Name: "wait", Aliases: []string{"w"}, Usage: "follow the transfer to its end; exit 0 only if it completed"},
				}, command.ClientFlags()...),
				Action: transferCreate,
			},
			{
				Name: "show", Usage: "show one transfer and a page of its files",
				UsageText: "ftagent transfer show [--json] [--offset N] [--limit M] [--dir-offset N] [--dir-limit M] ID",
				Flags: append([]cli.Flag{
					&cli.IntFlag{Name: "offset", Usage: "show the files from the Nth (0 is the first), in the transfer's order"},
					&cli.IntFlag{Name: "limit", DefaultText: fmt.Sprint(api.DefaultLimit), Usage: fmt.Sprintf("show at most M files (1-%d)", api.MaxLimit)},
					&cli.IntFlag{Name: "dir-offset", Usage: "show the directories from the Nth"},
					&cli.IntFlag{Name: "dir-limit", DefaultText: fmt.Sprint(api.DefaultLimit), Usage: fmt.Sprintf("show at most M directories (1-%d)", api.MaxLimit)},
				}, command.ClientFlags()...),
				Action: transferShow,
			},
			{
				Name: "list", Usage: "list the transfers the agent keeps, a page at a time",
				UsageText: "ftagent transfer list [--state STATE,...] [--since 24h|TIME] [--dest-agent AGENT] [--count N] [--after NEXT] [--json]",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "state", Usage: "only transfers in these states (comma-separated: queued, running, recovering, completed, failed, cancelled)"},
					&cli.StringFlag{Name: "since", Usage: "only transfers created within this duration (24h) or at or after this time (RFC 3339)"},
					&cli.IntFlag{Name: "count", DefaultText: fmt.Sprint(api.DefaultLimit), Usage: fmt.Sprintf("list at most N transfers (1-%d)", api.MaxLimit)},
					&cli.StringFlag{Name: "after", Usage: "the page after the one whose last line gave this value (next: ...)"},
					&cli.StringFlag{Name: "dest-agent", Usage: "only the transfers to this other agent (- for those to this agent's own storage)"},
				}, command.ClientFlags()...),
				Action: transferList,
			},
			{
				Name: "cancel", Usage: "cancel a transfer", UsageText: "ftagent transfer cancel [--json] ID",
				Flags: command.ClientFlags(), Action: onTransfer(agentclient.CancelTransfer, func(v transfer.View) { fmt.Printf("transfer %s %s\n", v.ID, v.State) }),
			},
			{
				Name: "wait", Usage: "follow a transfer to its end; exit 0 only if it completed", UsageText: "ftagent transfer wait [--json] ID",
				Flags: command.ClientFlags(), Action: transferWait,
			},
		},
	}
}

func transferCreate(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) < 2 {
		return command.Usagef("transfer create needs at least one SOURCE and a DEST")
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return command.Usagef("%q: options go before SOURCE and DEST (a path starting with - can be written ./%s)", a, a)
		}
	}
	req := transfer.Request{
		Sources:     args[:len(args)-1],
		Destination: args[len(args)-1],
		Recursive:   c.Bool("recursive"),
		Priority:    c.Int("priority"),
		Overwrite:   transfer.OverwriteError,
		Disposition: transfer.DispositionLeave,

		DestinationAgent: strings.TrimSpace(c.String("dest-agent")),
	}
	if c.Bool("overwrite") {
		req.Overwrite = transfer.OverwriteAlways
	}
	if c.Bool("delete-source") {
		req.Disposition = transfer.DispositionDelete
	}
	if req.Priority < 0 || req.Priority > 9 {
		return command.Usagef("--priority %d: must be 0-9", req.Priority)
	}
	if s := c.String("recovery-timeout"); s != "" {
		d, err := config.ParseRecoveryTimeout(s)
		if err != nil {
			return command.Usagef("--recovery-timeout: %v", err)
		}
		td := transfer.Duration(d)
		req.RecoveryTimeout = &td
	}
	if s := c.String("bwlimit"); s != "" {
		n, err := copyloop.ParseRate(s)
		if err != nil {
			return command.Usagef("--bwlimit: %v", err)
		}
		if n > 0 && n < transfer.MinBandwidthLimit {
			return command.Usagef("--bwlimit %s: below the least limit, 1K (1024 bytes per second); 0 means unlimited", s)
		}
		req.BandwidthLimit = n
	}
	cl, cfg, err := command.Client(c)
	if err != nil {
		return err
	}
	// Printed as JSON at once, the answer has the first page of the
	// files; otherwise only the id or the count of files is printed (and
	// --wait --json prints the files that come with the end).
	listed := transfer.FilesNone
	if !c.Bool("wait") && c.Bool(command.FlagJSON) {
		listed = transfer.FilesAll
	}
	v, err := agentclient.CreateTransferFiles(c.Context, cl, req, listed)
	if err != nil {
		return err
	}
	command.AlternateNote(cl, cfg)
	if !c.Bool("wait") {
		if c.Bool(command.FlagJSON) {
			return printJSON(v.JSONValue())
		}
		fmt.Println(v.ID)
		return nil
	}
	if !c.Bool(command.FlagJSON) {
		fmt.Fprintf(os.Stderr, "transfer %s: %s, %s\n", v.ID, contents(v), command.Size(v.Bytes))
	}
	return follow(c, cl, v.ID)
}

func transferWait(c *cli.Context) error {
	id, err := oneID(c)
	if err != nil {
		return err
	}
	cl, _, err := command.Client(c)
	if err != nil {
		return err
	}
	return follow(c, cl, id)
}

// follow waits for a transfer's end with a progress bar on a terminal.
// Ctrl-C (or SIGTERM) stops following, not the transfer: it says so, how to
// follow or cancel it, and exits 130.
func follow(c *cli.Context, cl *client.Client, id string) error {
	ctx, stopSignals := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	var bar *progressBar
	if !c.Bool(command.FlagJSON) && isatty.IsTerminal(os.Stderr.Fd()) {
		bar = newProgressBar(os.Stderr)
	}
	// The polls carry no files; the last answer has their first page for
	// --json, which prints it as is, and none otherwise (the summary line
	// counts them: filesTotal).
	files := transfer.FilesNone
	if c.Bool(command.FlagJSON) {
		files = transfer.FilesEnded
	}
	body, err := agentclient.WaitTransfer(ctx, cl, id, files, 250*time.Millisecond, 2*time.Minute, func(v transfer.View) {
		if bar != nil {
			bar.update(v)
		}
	})
	if bar != nil {
		bar.done()
	}
	if err != nil && ctx.Err() != nil && c.Context.Err() == nil {
		return cli.Exit(fmt.Sprintf("stopped following transfer %s, which runs on in the agent; follow it with: ftagent transfer wait %s; cancel it with: ftagent transfer cancel %s",
			id, id, id), command.ExitInterrupted)
	}
	if err != nil {
		return err
	}
	if c.Bool(command.FlagJSON) {
		// As the agent sent it (one JSON object and a newline): its
		// files are not decoded.
		out := body.Raw
		if len(out) == 0 || out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		if _, err := os.Stdout.Write(out); err != nil {
			return err
		}
	} else {
		v := body.View
		fmt.Printf("transfer %s %s: %s, %s", v.ID, v.State, contents(v), command.Size(v.Bytes))
		if v.Failovers > 0 {
			fmt.Printf(", %s, %s resent", command.Count(v.Failovers, "failover"), command.Size(v.BytesResent))
		}
		fmt.Println()
	}
	if body.State != transfer.StateCompleted {
		return fmt.Errorf("transfer %s %s: %s", body.ID, body.State, transfer.Text(body.Reason))
	}
	return nil
}

func oneID(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", command.Usagef("%s needs exactly one transfer ID", c.Command.FullName())
	}
	return c.Args().First(), nil
}

// onTransfer makes the action of a command that applies op to the transfer
// its one argument names, then prints the result (as JSON with --json).
func onTransfer(op func(context.Context, *client.Client, string) (transfer.View, error), print func(transfer.View)) cli.ActionFunc {
	return func(c *cli.Context) error {
		id, err := oneID(c)
		if err != nil {
			return err
		}
		cl, _, err := command.Client(c)
		if err != nil {
			return err
		}
		v, err := op(c.Context, cl, id)
		if err != nil {
			return err
		}
		if c.Bool(command.FlagJSON) {
			return printJSON(v.JSONValue())
		}
		print(v)
		return nil
	}
}

// transferShow shows one transfer with a window of its files and
// directories (the agent's first page by default) and, when more follow,
// the command that shows the next page.
func transferShow(c *cli.Context) error {
	id, err := oneID(c)
	if err != nil {
		return err
	}
	var w transfer.Window
	limits := fmt.Sprintf("1-%d", api.MaxLimit)
	for _, f := range []struct {
		name        string
		to          *int
		least, most int
		want        string
	}{
		{"offset", &w.Offset, 0, math.MaxInt, "0 or more"}, {"limit", &w.Limit, 1, api.MaxLimit, limits},
		{"dir-offset", &w.DirOffset, 0, math.MaxInt, "0 or more"}, {"dir-limit", &w.DirLimit, 1, api.MaxLimit, limits},
	} {
		if !c.IsSet(f.name) {
			continue
		}
		if *f.to = c.Int(f.name); *f.to < f.least || *f.to > f.most {
			return command.Usagef("--%s %d: must be %s", f.name, *f.to, f.want)
		}
	}
	cl, _, err := command.Client(c)
	if err != nil {
		return err
	}
	v, err := agentclient.GetTransferPage(c.Context, cl, id, w)
	if err != nil {
		return err
	}
	if c.Bool(command.FlagJSON) {
		return printJSON(v.JSONValue())
	}
	printTransfer(os.Stdout, v)
	printPage(os.Stdout, "files", v.ID, "--offset", "--limit", w.Offset, w.Limit, len(v.Files), v.FilesTotal, v.NextOffset)
	printPage(os.Stdout, "directories", v.ID, "--dir-offset", "--dir-limit", w.DirOffset, w.DirLimit, len(v.Dirs), v.Directories, v.NextDirOffset)
	return nil
}

// printPage says which of a transfer's total files (or directories) a page
// of n from offset shows, and the command for the next page when one
// follows (with the same limit, when one was given); nothing when the page
// shows them all.
func printPage(w io.Writer, what, id, offsetFlag, limitFlag string, offset, limit, n, total, next int) {
	switch {
	case offset == 0 && next == 0:
		return
	case n == 0:
		fmt.Fprintf(w, "no %s from %d: the transfer has %d\n", what, offset, total)
		return
	}
	fmt.Fprintf(w, "%s %d-%d of %d", what, offset+1, offset+n, total)
	if next > 0 {
		fmt.Fprintf(w, "; next: ftagent transfer show %s %s %d", id, offsetFlag, next)
		if limit > 0 {
			fmt.Fprintf(w, " %s %d", limitFlag, limit)
		}
	}
	fmt.Fprintln(w)
}

func transferList(c *cli.Context) error {
	if c.NArg() > 0 {
		return command.Usagef("transfer list takes no arguments")
	}
	cl, _, err := command.Client(c)
	if err != nil {
		return err
	}
	// The table counts each transfer's files (filesTotal) and lists none;
	// --json prints the agent's answer, with each transfer's first page.
	listed := transfer.FilesNone
	if c.Bool(command.FlagJSON) {
		listed = transfer.FilesAll
	}
	opts := agentclient.ListOptions{Since: c.String("since"), After: c.String("after"), DestAgent: strings.TrimSpace(c.String("dest-agent"))}
	if v := c.String("state"); v != "" {
		opts.States = strings.Split(v, ",")
	}
	if c.IsSet("count") {
		if n := c.Int("count"); n < 1 || n > api.MaxLimit {
			return command.Usagef("--count %d: give a number from 1 to %d", n, api.MaxLimit)
		}
		opts.Count = c.Int("count")
	}
	vs, next, err := agentclient.ListTransfersPage(c.Context, cl, listed, opts)
	if err != nil {
		return err
	}
	// The command for the next page: this one's filters, after this page.
	nextLine := ""
	if next != "" {
		nextLine = "next: ftagent transfer list --after " + next
		for _, f := range []string{"state", "since"} {
			if c.IsSet(f) {
				nextLine += fmt.Sprintf(" --%s %s", f, c.String(f))
			}
		}
		if c.IsSet("count") {
			nextLine += fmt.Sprintf(" --count %d", c.Int("count"))
		}
	}
	if c.Bool(command.FlagJSON) {
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = v.JSONValue()
		}
		if nextLine != "" {
			fmt.Fprintln(c.App.ErrWriter, nextLine)
		}
		return printJSON(out)
	}
	w := bufio.NewWriter(os.Stdout)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tFILES\tBYTES\tDONE\tFAILOVERS\tPRIORITY\tCREATED\tREASON")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", v.ID, v.State, v.FilesTotal, command.Size(v.Bytes),
			command.Percent(v.BytesDone, v.Bytes), v.Failovers, v.Priority, v.Created.Local().Format(time.DateTime), transfer.Text(v.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if nextLine != "" {
		fmt.Fprintf(w, "%d transfers shown; %s\n", len(vs), nextLine)
	}
	return w.Flush()
}

func printTransfer(w io.Writer, v transfer.View) {
	fmt.Fprintf(w, "Transfer:  %s\nState:     %s\n", v.ID, v.State)
	if v.Reason != "" {
		fmt.Fprintf(w, "Reason:    %s\n", transfer.Text(v.Reason))
	}
	if v.DestinationAgent != "" {
		fmt.Fprintf(w, "To agent:  %s", v.DestinationAgent)
		if v.Group != "" {
			fmt.Fprintf(w, ", now its alternate %s", v.Group)
		}
		if v.Receiver != "" {
			fmt.Fprintf(w, " (received by %s; %d failovers there)", v.Receiver, v.ReceiverFailovers)
		}
		fmt.Fprintln(w)
		if s := v.Switched; s != nil {
			fmt.Fprintf(w, "Moved:     %s from %s to %s: %s\n", s.Time.Local().Format(time.DateTime), s.From, s.To, transfer.Text(s.Reason))
		}
		if len(v.Doubts) > 0 {
			open := 0
			for _, d := range v.Doubts {
				if d.Outcome == "" {
					open++
				}
			}
			fmt.Fprintf(w, "In doubt:  %d files may also be at the group they left (%d not reconciled yet)\n", len(v.Doubts), open)
		}
	}
	fmt.Fprintf(w, "Progress:  %s of %s (%s)\n", command.Size(v.BytesDone), command.Size(v.Bytes), command.Percent(v.BytesDone, v.Bytes))
	fmt.Fprintf(w, "Failovers: %d (%s resent)\nPriority:  %d\nCreated:   %s\n", v.Failovers, command.Size(v.BytesResent), v.Priority, v.Created.Local().Format(time.DateTime))
	if v.Ended != nil {
		fmt.Fprintf(w, "Ended:     %s\n", v.Ended.Local().Format(time.DateTime))
	}
	if v.Directories > 0 {
		fmt.Fprintf(w, "Directories: %d (%d made)\n", v.Directories, v.DirectoriesDone)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDESTINATION\tBYTES\tSTATE\tSHA-256\tREASON")
	for _, f := range v.Files {
		sum := f.SHA256
		if len(sum) > 16 {
			sum = sum[:16] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", transfer.QuoteName(f.Source), transfer.QuoteName(f.Destination),
			command.Size(f.Bytes), f.State, sum, transfer.Text(f.Reason))
	}
	// Directories as rows of their own, their names ending with "/".
	for _, d := range v.Dirs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", transfer.QuoteName(d.Source+"/"), transfer.QuoteName(d.Destination+"/"),
			"-", d.State, "", transfer.Text(d.Reason))
	}
	_ = tw.Flush()
}

// contents says how many files a transfer has and, if it has any, how
// many directories.
func contents(v transfer.View) string {
	files := command.Count(v.FilesTotal, "file")
	if v.Directories == 0 {
		return files
	}
	if v.Directories == 1 {
		return files + ", 1 directory"
	}
	return fmt.Sprintf("%s, %d directories", files, v.Directories)
}

func printJSON(v any) error { return json.NewEncoder(os.Stdout).Encode(v) }

// progressBar draws one updating line: bar, bytes, rate, ETA, current file.
type progressBar struct {
	w        io.Writer
	start    time.Time
	lastAt   time.Time
	lastDone int64
	rate     float64
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, start: time.Now(), lastAt: time.Now()}
}

func (b *progressBar) update(v transfer.View) {
	now := time.Now()
	if dt := now.Sub(b.lastAt).Seconds(); dt > 0 && v.BytesDone >= b.lastDone {
		inst := float64(v.BytesDone-b.lastDone) / dt
		if b.rate == 0 {
			b.rate = inst
		} else {
			b.rate = 0.7*b.rate + 0.3*inst // smooth, but follow changes
		}
	}
	b.lastAt, b.lastDone = now, v.BytesDone
	frac := 1.0
	if v.Bytes > 0 {
		frac = float64(v.BytesDone) / float64(v.Bytes)
	}
	const width = 24
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	eta := "--"
	if b.rate > 0 && v.Bytes > v.BytesDone {
		eta = time.Duration(float64(v.Bytes-v.BytesDone) / b.rate * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("[%s] %3.0f%% %s/%s %s/s ETA %s %s %s", bar, frac*100, command.Size(v.BytesDone), command.Size(v.Bytes),
		command.Size(int64(b.rate)), eta, v.State, transfer.QuoteName(v.CurrentFile))
	fmt.Fprintf(b.w, "\r\033[K%s", line)
}

func (b *progressBar) done() { fmt.Fprintln(b.w) }
