package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/cmd/emitd/internal/ops"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/publisher"
)

var filterFlags = []cli.Flag{
	&cli.StringSliceFlag{Name: "id", Usage: "only the dead letter with this `ID` (repeatable; with --from-queue, the event's metadata.id)"},
	&cli.StringFlag{Name: "kind", Usage: "only `KIND` command, event or outcome"},
	&cli.StringFlag{Name: "reason", Usage: "only dead letters whose reason contains `TEXT` (any case)"},
	&cli.StringFlag{Name: "since", Usage: "only dead letters that first failed (with --from-queue: entered the queue) after `WHEN` " +
		"(RFC 3339 time, or a duration such as 2h)"},
	&cli.IntFlag{Name: "limit", Usage: "at most `N` dead letters (0: all)"},
}

var noSyncFlag = &cli.BoolFlag{Name: "no-sync", Usage: "do not read the poison queue first; work on what the store holds"}

func dlqCommand() *cli.Command {
	return &cli.Command{
		Name:  "dlq",
		Usage: "inspect and purge dead letters (commands from the poison queue, events the bus refused)",
		Description: "Dead letters are commands that could not be processed (they arrive on commands.dlqTopic,\n" +
			"on whatever broker carries commands) and events the bus refused for good (kept in the store\n" +
			"when the relay gives up on them). Each subcommand first moves what waits on the poison\n" +
			"queue into the store (--no-sync skips that), then works there, the same on every broker.",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "one JSON line per dead letter: id, kind, origin, reason, errorClass, attempts, replays, firstFailure",
				Description: "Lists emitd's dead letters (the poison queue is moved into the store first, unless --no-sync).\n\n" +
					"With --from-queue QUEUE it lists a bus's dead-letter queue instead (an SQS queue that an\n" +
					"EventBridge rule target or an SNS subscription sends what it could not deliver to), taking\n" +
					"nothing from it: every receive has a visibility timeout of 0, so each message stays visible\n" +
					"to the queue's other readers. One JSON line per message: messageId, from (eventbridge-rule,\n" +
					"sns-subscription), eventId (metadata.id), detailType, bus, rule, target, topic, errorCode,\n" +
					"errorMessage, exhaustedRetryCondition, retryAttempts, deadLetteredAt, receives, replays (the\n" +
					"store's count of its re-emits) and problem (why it cannot be re-emitted). SQS raises a\n" +
					"message's receive count on every receive, and picks what each receive returns: on a large\n" +
					"queue the listing is a sample, ending after five receives that bring nothing new.\n\n" +
					"Examples:\n" +
					"  emitd dlq list --kind event --since 2h\n" +
					"  emitd dlq list --config aws.yaml --from-queue ReservationBusDlq --error-code SDK_CLIENT_ERROR",
				Flags: append(append([]cli.Flag{configFlag, logLevelFlag, logFormatFlag, noSyncFlag}, filterFlags...), append([]cli.Flag{fromQueueFlag}, queueFilterFlags...)...),
				Action: func(c *cli.Context) error {
					if c.String("from-queue") != "" {
						return listFromQueue(c)
					}
					if err := checkFlagsFor(c); err != nil {
						return err
					}
					env, err := openDLQ(c)
					if err != nil {
						return err
					}
					defer env.Close()
					dls, err := env.Store.DeadLetters(c.Context, env.filter)
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					for _, d := range dls {
						b, _ := json.Marshal(d)
						fmt.Fprintln(c.App.Writer, string(b))
					}
					return nil
				},
			},
			{
				Name:      "show",
				Usage:     "print a dead letter whole, payload and metadata included (every one with that id)",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{configFlag, logLevelFlag, logFormatFlag, noSyncFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("give exactly one dead letter ID (see emitd dlq list)", 2)
					}
					env, err := openDLQ(c)
					if err != nil {
						return err
					}
					defer env.Close()
					dls, err := env.Store.DeadLetters(c.Context, publisher.DeadLetterFilter{IDs: []string{c.Args().First()}})
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					if len(dls) == 0 {
						return cli.Exit(fmt.Sprintf("no dead letter %s", c.Args().First()), 1)
					}
					// Two different messages may carry one id: show each.
					for _, d := range dls {
						b, _ := json.MarshalIndent(showable(d), "", "  ")
						fmt.Fprintln(c.App.Writer, string(b))
					}
					return nil
				},
			},
			{
				Name:  "purge",
				Usage: "remove dead letters by id or filter, after asking (or with --yes)",
				Flags: append([]cli.Flag{configFlag, logLevelFlag, logFormatFlag, noSyncFlag,
					&cli.BoolFlag{Name: "all", Usage: "select every dead letter (no filter needed)"},
					&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask"},
				}, filterFlags...),
				Action: func(c *cli.Context) error {
					env, err := openDLQ(c)
					if err != nil {
						return err
					}
					defer env.Close()
					if !c.Bool("all") && len(env.filter.IDs) == 0 && env.filter.Kind == "" && env.filter.Reason == "" && env.filter.Since.IsZero() {
						return cli.Exit("say what to purge: --id, --kind, --reason, --since, or --all", 2)
					}
					dls, err := env.Store.DeadLetters(c.Context, env.filter)
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					if len(dls) == 0 {
						fmt.Fprintln(c.App.Writer, "removed 0 dead letters: none matches")
						return nil
					}
					if !c.Bool("yes") {
						fmt.Fprintf(c.App.ErrWriter, "remove %d dead letters for good? [y/N] ", len(dls))
						answer, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
						if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
							return cli.Exit("nothing removed", 1)
						}
					}
					keys := make([]publisher.DeadLetterKey, len(dls))
					for i, d := range dls {
						keys[i] = d.Key()
					}
					n, err := env.Store.DeleteDeadLetters(c.Context, keys)
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					fmt.Fprintf(c.App.Writer, "removed %d dead letters\n", n)
					return nil
				},
			},
		},
	}
}

// dlqEnv is what the dlq and replay commands work with.
type dlqEnv struct {
	*ops.Ops
	cfg    *configs.Config
	filter publisher.DeadLetterFilter
}

// openDLQ opens the store beside a running daemon and, unless --no-sync,
// moves the poison queue into it first.
func openDLQ(c *cli.Context) (*dlqEnv, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	f, err := parseFilter(c)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	o, err := ops.Open(cfg, newLogger(c))
	if err != nil {
		return nil, cli.Exit(err.Error(), 1)
	}
	env := &dlqEnv{Ops: o, cfg: cfg, filter: f}
	if c.Bool("no-sync") {
		return env, nil
	}
	if c.Bool("dry-run") {
		// Moving the poison queue into the store acknowledges messages on
		// the broker: a dry run changes nothing, so it shows the store only.
		note(c, "dry run: showing what the store holds; `emitd dlq list` moves new dead letters in first\n")
		return env, nil
	}
	n, err := o.Sync(c.Context)
	if err != nil {
		o.Close()
		return nil, cli.Exit(fmt.Sprintf("cannot read the poison queue %s: %v (--no-sync works on what the store holds)", cfg.Commands.DLQTopic, err), 1)
	}
	if n > 0 {
		note(c, "moved %d new dead letters from %s into the store\n", n, cfg.Commands.DLQTopic)
	}
	return env, nil
}

func parseFilter(c *cli.Context) (publisher.DeadLetterFilter, error) {
	f := publisher.DeadLetterFilter{IDs: c.StringSlice("id"), Kind: c.String("kind"), Reason: c.String("reason"), Limit: c.Int("limit")}
	if f.Kind != "" && f.Kind != publisher.KindCommand && f.Kind != publisher.KindEvent && f.Kind != publisher.KindOutcome {
		return f, fmt.Errorf("--kind %q: want command, event or outcome", f.Kind)
	}
	if s := c.String("since"); s != "" {
		since, err := parseWhen(s)
		if err != nil {
			return f, fmt.Errorf("--since %q: %w", s, err)
		}
		f.Since = since
	}
	return f, nil
}

// parseWhen reads an RFC 3339 time, or a duration back from now.
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, errors.New("want an RFC 3339 time (2026-11-25T09:00:00Z) or a duration (2h)")
}

// showable is a dead letter with its payload and metadata, for `dlq show`.
func showable(d publisher.DeadLetter) any {
	type full struct {
		publisher.DeadLetter
		Payload       string            `json:"payload,omitempty"`
		PayloadBase64 []byte            `json:"payloadBase64,omitempty"`
		Metadata      map[string]string `json:"metadata"`
	}
	out := full{DeadLetter: d, Metadata: d.Metadata}
	if utf8.Valid(d.Payload) {
		out.Payload = string(d.Payload)
	} else {
		out.PayloadBase64 = d.Payload
	}
	return out
}
