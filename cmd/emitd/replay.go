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
			"With --from-queue QUEUE it re-emits the events of a bus's dead-letter queue instead: the events\n" +
			"the bus took but could not deliver to a consumer. QUEUE is an SQS queue (name or URL, AWS\n" +
			"settings from the configuration) that an EventBridge rule target (body: the event; attributes\n" +
			"RULE_ARN, TARGET_ARN, ERROR_CODE, ...) or an SNS subscription (body: the notification, or the\n" +
			"message with raw delivery) sends its undelivered events to. Each event goes back, exactly as it\n" +
			"was (Source, DetailType, Detail byte for byte, Resources; metadata.id unchanged, so consumers\n" +
			"drop repeats), to the bus it was on: the rule's bus, or the topic's, which must be one of the\n" +
			"configuration's buses, through events.broker (eventbridge or sns). A message leaves the queue\n" +
			"only after the bus took its event: a crash in the middle loses nothing. Refused, reported and\n" +
			"left in the queue: a message that cannot be read (not JSON, no detail), an unknown bus, an event\n" +
			"the emit policy does not allow there, an event re-emitted --max-replays times already (counted\n" +
			"in the store, per metadata.id). A dry run reads with a visibility timeout of 0 and changes nothing.\n\n" +
			"Examples:\n" +
			"  emitd replay --dry-run                        # what would go back\n" +
			"  emitd replay --reason 'retries exhausted'     # after fixing the store\n" +
			"  emitd replay --kind event --since 1h\n" +
			"  emitd replay --config aws.yaml --from-queue ReservationBusDlq --dry-run\n" +
			"  emitd replay --config aws.yaml --from-queue ReservationBusDlq --detail-type Opened --older-than 10m",
		Flags: append(append([]cli.Flag{configFlag, logLevelFlag, logFormatFlag, noSyncFlag,
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be replayed; change nothing"},
			&cli.IntFlag{Name: "max-replays", Value: 3, Usage: "leave dead letters replayed `N` times already in place (with --from-queue: events re-emitted N times)"},
		}, filterFlags...), append([]cli.Flag{fromQueueFlag, visibilityFlag}, queueFilterFlags...)...),
		Action: func(c *cli.Context) error {
			if c.String("from-queue") != "" {
				return replayFromQueue(c)
			}
			if err := checkFlagsFor(c); err != nil {
				return err
			}
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
