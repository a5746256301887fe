package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "put dead letters back where they came from: commands to their topic, events to their bus",
		Description: "What goes back is the original payload, byte for byte, and the original metadata without the\n" +
			"poison context, with the replay count raised. A dead letter leaves the store only after the\n" +
			"broker took the message. Refused, and reported: a payload that no longer matches its digest,\n" +
			"one replayed --max-replays times already, an event the emit policy does not allow on its bus.\n\n" +
			"Examples:\n" +
			"  emitd replay --dry-run                        # what would go back\n" +
			"  emitd replay --reason 'retries exhausted'     # after fixing the store\n" +
			"  emitd replay --kind event --since 1h",
		Flags: append([]cli.Flag{configFlag, logLevelFlag, logFormatFlag, noSyncFlag,
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be replayed; change nothing"},
			&cli.IntFlag{Name: "max-replays", Value: 3, Usage: "leave dead letters replayed `N` times already in place"},
		}, filterFlags...),
		Action: func(c *cli.Context) error {
			env, err := openDLQ(c)
			if err != nil {
				return err
			}
			defer env.Close()
			r, err := env.Replayer(c.Context, c.Int("max-replays"), c.Bool("dry-run"))
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			sum, err := r.Replay(c.Context, env.filter)
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			for _, res := range sum.Results {
				b, _ := json.Marshal(res)
				fmt.Fprintln(c.App.Writer, string(b))
			}
			verb := "replayed"
			if r.DryRun {
				verb = "would replay"
			}
			note(c, "%s %d, skipped %d, failed %d\n", verb, sum.Replayed, sum.Skipped, sum.Failed)
			if sum.Failed > 0 {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}
