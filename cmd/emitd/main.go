// Command emitd executes slot reservation commands from a queue and publishes
// the resulting events to the configured bus. See `emitd --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/configs"
)

func main() {
	// Errors made with cli.Exit are printed, and exit with their code, by
	// the app itself; anything else lands here.
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "emitd:", err)
		os.Exit(1)
	}
}

var configFlag = &cli.StringFlag{
	Name:    "config",
	Aliases: []string{"c"},
	Usage:   "configuration `FILE` (YAML); default: the built-in embedded configuration (configs/embedded.yaml)",
	EnvVars: []string{"EMITD_CONFIG"},
}

var logLevelFlag = &cli.StringFlag{
	Name:    "log-level",
	Usage:   "log `LEVEL`: debug, info, warn, error (logs go to stderr; default info for serve, warn otherwise)",
	EnvVars: []string{"EMITD_LOG_LEVEL"},
}

var logFormatFlag = &cli.StringFlag{
	Name: "log-format",
	Usage: "log `FORMAT`: text (key=value) or json (every line on stderr one JSON object, the brokers' and " +
		"Watermill's logs and emitd's own notes included)",
	Value:   "text",
	EnvVars: []string{"EMITD_LOG_FORMAT"},
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "emitd",
		Usage: "execute slot reservation commands and publish their events to the configured bus",
		Description: "emitd consumes commands (CreateSlots, ReserveSlot, CancelSlot, CheckIn, CheckOut, OpenSlot,\n" +
			"CloseSlots, UnattendSlots) from a queue, runs them against the slot aggregate, commits the new\n" +
			"state together with EventBridge-shaped event envelopes, and relays each envelope (and its\n" +
			"analytics copy) to the bus chosen in the configuration. Commands that cannot be processed go\n" +
			"to a poison queue. Without --config it runs on the embedded default: an in-process NATS\n" +
			"JetStream broker on 127.0.0.1:" + strconv.Itoa(natsjs.DefaultEmbeddedPort) + " and SQLite, both under ./data.",
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		// --raw takes JSON, which has commas: never split a flag value on them.
		DisableSliceFlagSeparator: true,
		Commands: []*cli.Command{
			serveCommand(),
			sendCommand(),
			tailCommand(),
			dlqCommand(),
			replayCommand(),
			configCommand(),
			scheduleCommand(),
			statusCommand(),
			catalogCommand(),
		},
		// In json mode the error a command ends with is a JSON line too.
		ExitErrHandler: func(c *cli.Context, err error) {
			if err == nil || c == nil || !jsonLogs(c) {
				cli.HandleExitCoder(err)
				return
			}
			code := 1
			var ec cli.ExitCoder
			if errors.As(err, &ec) {
				code = ec.ExitCode()
			}
			if msg := err.Error(); msg != "" {
				slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil)).Error(msg, "exit_code", code)
			}
			cli.OsExiter(code)
		},
	}
}

// jsonLogs says whether --log-format json was given (to this command).
func jsonLogs(c *cli.Context) bool {
	for _, cc := range c.Lineage() {
		if cc.IsSet("log-format") {
			return strings.EqualFold(cc.String("log-format"), "json")
		}
	}
	return strings.EqualFold(os.Getenv("EMITD_LOG_FORMAT"), "json")
}

// note tells the operator something on stderr (what was moved, a
// summary): a plain line, or in json mode a JSON object at level INFO,
// whatever --log-level says (it is the command's answer, not chatter).
func note(c *cli.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if jsonLogs(c) {
		slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil)).Info(strings.TrimRight(msg, "\n"))
		return
	}
	fmt.Fprint(c.App.ErrWriter, msg)
}

// loadConfig loads --config or the built-in default; problems exit with 2.
func loadConfig(c *cli.Context) (*configs.Config, error) {
	cfg, err := configs.Load(c.String("config"))
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return cfg, nil
}

func configSource(c *cli.Context) string {
	if p := c.String("config"); p != "" {
		return p
	}
	return configs.EmbeddedName
}

func newLogger(c *cli.Context) watermill.LoggerAdapter {
	var level slog.Level
	name := c.String("log-level")
	if name == "" {
		name = "warn" // one-shot commands print results, not the broker's chatter
		if c.Command.Name == "serve" {
			name = "info"
		}
	}
	switch strings.ToLower(name) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(c.App.ErrWriter, opts)
	if jsonLogs(c) {
		h = slog.NewJSONHandler(c.App.ErrWriter, opts)
	}
	l := slog.New(h)
	// Libraries that write with the standard log package land here too,
	// in the same format.
	slog.SetDefault(l)
	return watermill.NewSlogLogger(l)
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
