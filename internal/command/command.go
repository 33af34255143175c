// Package command holds what the ftagent and ftstop commands share: the flags
// every subcommand accepts (--config, -x, --json, client failover options,
// logging), building the client from them, and turning errors into one line
// and an exit status.
package command

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/ftagent/ftagent/pkg/agentclient"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/config"
)

// Exit statuses.
const (
	ExitOK     = 0
	ExitFailed = 1 // the operation failed
	ExitUsage  = 2 // bad usage or configuration
	// ExitQuorumLost: `ftagent start` with quorumLossAction=exit had no
	// leader for longer than quorumLossTimeout; a supervisor restarts it.
	ExitQuorumLost = 3
	// ExitNoActive: `ftagent show` found no instance holding the lease (an
	// election, or too few instances for a majority).
	ExitNoActive = 3
	// ExitInterrupted: Ctrl-C ended a command that follows something
	// (`transfer create --wait`, `transfer wait`), as shells count 128+SIGINT.
	ExitInterrupted = 130
)

// Flag names.
const (
	FlagConfig     = "config"
	FlagAddress    = "address"
	FlagJSON       = "json"
	FlagLogFormat  = "log-format"
	FlagLogLevel   = "log-level"
	flagAttempts   = "connect-attempts"
	flagDelay      = "connect-delay"
	flagRAttempts  = "reconnect-attempts"
	flagRDelay     = "reconnect-delay"
	flagPRetries   = "primary-retries"
	flagPRetryWait = "primary-retry-delay"
)

// ConfigFlag is --config, also from FTAGENT_CONFIG.
func ConfigFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagConfig, Aliases: []string{"c"}, EnvVars: []string{"FTAGENT_CONFIG"},
		Usage: "the agent's properties `FILE`"}
}

// ClientFlags are the flags of every command that talks to an agent.
func ClientFlags() []cli.Flag {
	return []cli.Flag{
		ConfigFlag(),
		&cli.StringSliceFlag{Name: FlagAddress, Aliases: []string{"x"}, EnvVars: []string{"FTAGENT_ADDRESSES"},
			Usage: "instance `HOST:PORT`, in order of preference (repeat, or separate with commas); default: the instances of --config"},
		&cli.BoolFlag{Name: FlagJSON, Usage: "print one JSON object, for scripts"},
		&cli.IntFlag{Name: flagAttempts, DefaultText: "clientConnectAttempts, else 2",
			Usage: "passes over the address list when first connecting"},
		&cli.DurationFlag{Name: flagDelay, DefaultText: "clientConnectDelay, else 500ms",
			Usage: "pause between first-connect passes"},
		&cli.IntFlag{Name: flagRAttempts, DefaultText: "clientReconnectAttempts, else 4",
			Usage: "passes over the list when reconnecting after a failover"},
		&cli.DurationFlag{Name: flagRDelay, DefaultText: "clientReconnectDelay, else 500ms",
			Usage: "pause between reconnect passes"},
		&cli.IntFlag{Name: flagPRetries, Aliases: []string{"fr"}, DefaultText: "clientPrimaryRetries, else 0",
			Usage: "extra tries of the first address before the others"},
		&cli.DurationFlag{Name: flagPRetryWait, Aliases: []string{"fd"}, DefaultText: "clientPrimaryRetryDelay, else 500ms",
			Usage: "pause between tries of the first address"},
	}
}

// LogFlags are the logging flags of commands that run instances.
func LogFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: FlagLogFormat, Value: "auto", Usage: "json, console, or auto (console when stderr is a terminal)"},
		&cli.StringFlag{Name: FlagLogLevel, Usage: "trace, debug, info, warn or error (default: logLevel property, else info)"},
	}
}

// UsageError is bad usage: exit status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// LoadConfig loads --config, printing its warnings to stderr. It returns nil
// without error when no --config was given.
func LoadConfig(c *cli.Context) (*config.Config, error) {
	path := c.String(FlagConfig)
	if path == "" {
		return nil, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "%s: warning: %s\n", c.App.Name, w)
	}
	return cfg, nil
}

// Client builds the client from -x (or FTAGENT_ADDRESSES), else --config.
func Client(c *cli.Context) (*client.Client, *config.Config, error) {
	cfg, err := LoadConfig(c)
	if err != nil {
		return nil, nil, err
	}
	var addrs []string
	// An empty FTAGENT_ADDRESSES counts as unset.
	if vals := nonEmpty(c.StringSlice(FlagAddress)); len(vals) > 0 {
		addrs, err = client.ParseAddresses(vals...)
		if err != nil {
			return nil, nil, Usagef("-x: %v", err)
		}
	} else if cfg != nil {
		addrs = cfg.Addresses()
	} else {
		return nil, nil, Usagef("no agent given: use --config FILE (or FTAGENT_CONFIG), or -x HOST:PORT (or FTAGENT_ADDRESSES)")
	}
	p := client.DefaultPolicy()
	if cfg != nil {
		p.ConnectAttempts, p.ConnectDelay = cfg.ClientConnectAttempts, cfg.ClientConnectDelay
		p.ReconnectAttempts, p.ReconnectDelay = cfg.ClientReconnectAttempts, cfg.ClientReconnectDelay
		p.PrimaryRetries, p.PrimaryRetryDelay = cfg.ClientPrimaryRetries, cfg.ClientPrimaryRetryDelay
		p.RequestTimeout = cfg.ClientRequestTimeout
	}
	if c.IsSet(flagAttempts) {
		p.ConnectAttempts = c.Int(flagAttempts)
	}
	if c.IsSet(flagDelay) {
		p.ConnectDelay = c.Duration(flagDelay)
	}
	if c.IsSet(flagRAttempts) {
		p.ReconnectAttempts = c.Int(flagRAttempts)
	}
	if c.IsSet(flagRDelay) {
		p.ReconnectDelay = c.Duration(flagRDelay)
	}
	if c.IsSet(flagPRetries) {
		p.PrimaryRetries = c.Int(flagPRetries)
	}
	if c.IsSet(flagPRetryWait) {
		p.PrimaryRetryDelay = c.Duration(flagPRetryWait)
	}
	if p.ConnectAttempts < 1 || p.ReconnectAttempts < 1 || p.PrimaryRetries < 0 {
		return nil, nil, Usagef("connect and reconnect attempts must be at least 1, primary retries at least 0")
	}
	d, err := agentclient.Dialer(cfg)
	if err != nil {
		return nil, nil, err
	}
	agent := ""
	if cfg != nil {
		agent = cfg.AgentName
	}
	file := rememberFile(agent, addrs)
	last := remembered(file, addrs)
	// The agent's alternate groups (alternates), asked when none of its
	// own instances answers: only with the addresses of the properties
	// file, not with -x.
	var alts []*client.Client
	if cfg != nil && len(nonEmpty(c.StringSlice(FlagAddress))) == 0 {
		for _, name := range cfg.Alternates {
			ra, _ := cfg.RemoteAgent(name)
			ad, err := agentclient.AlternateDialer(cfg, ra)
			if err != nil {
				return nil, nil, err
			}
			alt, err := client.New(ra.Addresses(), client.WithPolicy(p), client.WithDialer(ad.DialContext), client.WithRefusal(ad.Reason), client.WithGroup(name))
			if err != nil {
				return nil, nil, Usagef("%v", err)
			}
			alts = append(alts, alt)
		}
	}
	cl, err := client.New(addrs, client.WithPolicy(p), client.WithDialer(d.DialContext), client.WithRefusal(d.Reason),
		client.WithGroup(agent), client.WithAlternates(alts...),
		client.WithPreferred(last),
		client.WithAnswered(func(a string) {
			if a != last && slices.Contains(addrs, a) {
				remember(file, a)
				last = a
			}
		}))
	if err != nil {
		return nil, nil, Usagef("%v", err)
	}
	return cl, cfg, nil
}

// AlternateNote says, on stderr, when the last request was answered by an
// alternate group of the agent (alternates) rather than by the agent
// itself: the group that answered shares no state with it.
func AlternateNote(cl *client.Client, cfg *config.Config) {
	name, alternate := cl.Group()
	if !alternate || cfg == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "ftagent: no instance of agent %s answered; its alternate group %s (alternates) did\n", cfg.AgentName, name)
}

func nonEmpty(vals []string) []string {
	var out []string
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			out = append(out, v)
		}
	}
	return out
}

// Logger builds the process logger: JSON lines on stderr by default, console
// format on a terminal or with --log-format console.
func Logger(c *cli.Context, level string) (zerolog.Logger, error) {
	var w io.Writer = os.Stderr
	switch f := c.String(FlagLogFormat); f {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	case "auto", "":
		if isatty.IsTerminal(os.Stderr.Fd()) {
			w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
		}
	default:
		return zerolog.Logger{}, Usagef("--log-format: %q is not json, console or auto", f)
	}
	if l := c.String(FlagLogLevel); l != "" {
		level = l
	}
	if level == "" {
		level = "info"
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Logger{}, Usagef("log level %q is not trace, debug, info, warn or error", level)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// ExitCode maps an error to an exit status.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ce *config.Error
	var ue *UsageError
	var re *client.RefusedError
	if errors.As(err, &ce) || errors.As(err, &ue) || errors.As(err, &re) {
		return ExitUsage // certificates that do not fit: the configuration
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return ExitFailed
}

// showHelp shows the help of the command that follows `help`, or of the
// app.
func showHelp(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) > 0 && args[0] == "help" {
		args = args[1:]
	}
	if len(args) == 0 {
		return cli.ShowAppHelp(c)
	}
	if c.App.Command(args[0]) == nil {
		return Usagef("no command %q (see %s --help)", args[0], c.App.Name)
	}
	return cli.ShowCommandHelp(c, args[0])
}

// Main runs a cli app and exits with one error line and the right status.
func Main(app *cli.App) {
	usage := func(c *cli.Context, err error, isSubcommand bool) error {
		// The command as typed, parents included ("ftagent transfer
		// create"): HelpName is set up that way for every subcommand.
		name := c.App.Name
		if c.Command != nil && c.Command.HelpName != "" {
			name = c.Command.HelpName
		} else if c.Command != nil && c.Command.Name != "" && c.Command.Name != name {
			name += " " + c.Command.FullName()
		}
		return Usagef("%v (see %s --help)", err, name)
	}
	app.OnUsageError = usage
	var setUsage func(cmds []*cli.Command)
	setUsage = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			cmd.OnUsageError = usage
			setUsage(cmd.Subcommands)
		}
	}
	setUsage(app.Commands)
	app.CommandNotFound = func(c *cli.Context, name string) {
		// `help` is not listed as a command, but it asks for help all the
		// same: `ftagent help` and `ftagent help transfer` show it.
		if name == "help" {
			if err := showHelp(c); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", app.Name, err)
				os.Exit(ExitUsage)
			}
			os.Exit(ExitOK)
		}
		fmt.Fprintf(os.Stderr, "%s: no command %q (see %s --help)\n", app.Name, name, app.Name)
		os.Exit(ExitUsage)
	}
	app.ExitErrHandler = func(*cli.Context, error) {} // Main reports errors itself
	err := app.Run(os.Args)
	if err != nil {
		msg := err.Error()
		if msg != "" {
			fmt.Fprintf(os.Stderr, "%s: %s\n", app.Name, strings.ReplaceAll(msg, "\n", "; "))
		}
	}
	os.Exit(ExitCode(err))
}
