package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

func sendCommand() *cli.Command {
	return &cli.Command{
		Name:      "send",
		Usage:     "put commands on the command topic and print each command id",
		ArgsUsage: "[COMMAND_JSON...]",
		Description: "Each command is JSON: {\"type\":\"ReserveSlot\",\"id\":\"<uuid, generated if absent>\",\n" +
			"\"correlationId\":\"<optional, generated if absent>\",\"version\":1,\"data\":{...}}.\n" +
			"Types and data: CreateSlots {date, startHour, count}; ReserveSlot {slotId, hostName};\n" +
			"CancelSlot, CheckIn, CheckOut, OpenSlot {slotId}; CloseSlots, UnattendSlots (no data).\n" +
			"An invalid command is refused here, with the reason, and nothing is sent (unless --raw).\n\n" +
			"Examples:\n" +
			"  emitd send '{\"type\":\"CreateSlots\",\"data\":{\"date\":\"2026-11-26\"}}'\n" +
			"  emitd send -f commands.jsonl        # one command per line; - reads stdin\n" +
			"  emitd send --raw 'not json'         # bytes as given, to exercise the poison queue",
		Flags: []cli.Flag{
			configFlag,
			logLevelFlag, logFormatFlag,
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read one command per line from `FILE` (- for stdin)"},
			&cli.StringSliceFlag{Name: "raw", Usage: "send `TEXT` unchecked, as the message payload (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			var msgs []*message.Message
			var ids []string
			for _, raw := range c.StringSlice("raw") {
				msg := message.NewMessage(uuid.NewString(), []byte(raw))
				msgs, ids = append(msgs, msg), append(ids, msg.UUID)
			}
			inputs := c.Args().Slice()
			for _, in := range inputs {
				if strings.HasPrefix(in, "-") {
					return cli.Exit(fmt.Sprintf("%q looks like a flag after the commands: put flags first, e.g. emitd send --raw TEXT '{...}'", in), 2)
				}
			}
			if f := c.String("file"); f != "" {
				lines, err := readLines(f)
				if err != nil {
					return cli.Exit(err.Error(), 2)
				}
				inputs = append(inputs, lines...)
			}
			var problems []string
			for i, in := range inputs {
				msg, err := commandMessage([]byte(in))
				if err != nil {
					problems = append(problems, fmt.Sprintf("command %d: %v", i+1, err))
					continue
				}
				msgs, ids = append(msgs, msg), append(ids, msg.UUID)
			}
			if len(problems) > 0 {
				return cli.Exit("nothing sent:\n  "+strings.Join(problems, "\n  "), 2)
			}
			if len(msgs) == 0 {
				return cli.Exit("nothing to send: give commands as arguments, with -f FILE, or with --raw TEXT (see emitd send --help)", 2)
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			b, err := brokers.Open(c.Context, cfg.Commands.Broker, cfg, newLogger(c))
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			defer b.Close()
			const chunk = 500 // bounds memory per publish call on big files
			for start := 0; start < len(msgs); start += chunk {
				end := min(start+chunk, len(msgs))
				if err := b.Publisher().Publish(cfg.Commands.Topic, msgs[start:end]...); err != nil {
					for _, id := range ids[:start] {
						fmt.Fprintln(c.App.Writer, id)
					}
					return cli.Exit(fmt.Sprintf("sent %d of %d commands; then: %v", start, len(msgs), err), 1)
				}
			}
			for _, id := range ids {
				fmt.Fprintln(c.App.Writer, id)
			}
			return nil
		},
	}
}

// commandMessage validates a command, fills in its id and correlation id (the
// point where it enters the system) and makes the message.
func commandMessage(in []byte) (*message.Message, error) {
	withIDs, cmd, err := domain.EnsureIDs(in)
	if err != nil {
		return nil, err
	}
	if _, err := domain.ParseCommand(withIDs); err != nil {
		return nil, err
	}
	msg := message.NewMessage(cmd.ID, withIDs)
	msg.Metadata.Set(publisher.MetaCorrelationID, cmd.CorrelationID)
	return msg, nil
}

func readLines(path string) ([]string, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	return lines, sc.Err()
}
