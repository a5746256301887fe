package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/emitd/emitd/cmd/emitd/internal/ops"
	"github.com/emitd/emitd/publisher"
)

// Flags of --from-queue: a bus's dead-letter queue (an EventBridge rule
// target's, or an SNS subscription's) instead of emitd's dead-letter store.
var fromQueueFlag = &cli.StringFlag{Name: "from-queue", Usage: "work on the bus dead-letter queue `QUEUE` (an SQS queue name or URL) of an " +
	"EventBridge rule target or an SNS subscription, instead of emitd's dead letters"}

var queueFilterFlags = []cli.Flag{
	&cli.StringSliceFlag{Name: "detail-type", Usage: "with --from-queue: only events of DetailType `TYPE` (repeatable)"},
	&cli.StringSliceFlag{Name: "rule", Usage: "with --from-queue: only dead letters of the rule `RULE`, its ARN or its name (repeatable)"},
	&cli.StringSliceFlag{Name: "error-code", Usage: "with --from-queue: only dead letters whose ERROR_CODE is `CODE`, e.g. SDK_CLIENT_ERROR (repeatable)"},
	&cli.StringFlag{Name: "older-than", Usage: "with --from-queue: only messages that entered the queue at least `DURATION` ago (e.g. 10m)"},
}

var visibilityFlag = &cli.DurationFlag{Name: "visibility-timeout", Value: 5 * time.Minute,
	Usage: "with --from-queue: hide each message read from the queue's other readers for `D` while it is re-emitted; " +
		"longer than re-emitting ten events takes (what is left in the queue is made visible again at the end)"}

// storeOnly are the flags of the dead-letter store that mean nothing for a
// queue; queueOnly the reverse.
var (
	storeOnly = []string{"kind", "reason", "no-sync"}
	queueOnly = []string{"detail-type", "rule", "error-code", "older-than", "visibility-timeout"}
)

// checkFlagsFor refuses the flags that do not apply to where the command
// works (the store, or a queue), rather than ignoring them silently.
func checkFlagsFor(c *cli.Context) error {
	fromQueue := c.String("from-queue") != ""
	bad, where := queueOnly, "the flags of --from-queue"
	if fromQueue {
		bad, where = storeOnly, "for emitd's dead letters; with --from-queue filter by --detail-type, --rule, --error-code, --id (the event's metadata.id), --since, --older-than"
	}
	for _, name := range bad {
		if c.IsSet(name) {
			if fromQueue {
				return cli.Exit(fmt.Sprintf("--%s is %s", name, where), 2)
			}
			return cli.Exit(fmt.Sprintf("--%s is one of %s: give --from-queue QUEUE", name, where), 2)
		}
	}
	return nil
}

func parseQueueFilter(c *cli.Context) (publisher.BusDLQFilter, error) {
	f := publisher.BusDLQFilter{EventIDs: c.StringSlice("id"), DetailTypes: c.StringSlice("detail-type"), Rules: c.StringSlice("rule"),
		ErrorCodes: c.StringSlice("error-code"), Limit: c.Int("limit")}
	if s := c.String("since"); s != "" {
		since, err := parseWhen(s)
		if err != nil {
			return f, fmt.Errorf("--since %q: %w", s, err)
		}
		f.Since = since
	}
	if s := c.String("older-than"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return f, fmt.Errorf("--older-than %q: want a duration such as 10m or 2h", s)
		}
		f.Before = time.Now().Add(-d)
	}
	return f, nil
}

// openQueueOps loads the configuration and opens the store (for the replay
// counts); the poison queue is not touched.
func openQueueOps(c *cli.Context) (*ops.Ops, publisher.BusDLQFilter, error) {
	if err := checkFlagsFor(c); err != nil {
		return nil, publisher.BusDLQFilter{}, err
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, publisher.BusDLQFilter{}, err
	}
	f, err := parseQueueFilter(c)
	if err != nil {
		return nil, f, cli.Exit(err.Error(), 2)
	}
	o, err := ops.Open(cfg, newLogger(c))
	if err != nil {
		return nil, f, cli.Exit(err.Error(), 1)
	}
	return o, f, nil
}

// listFromQueue is `emitd dlq list --from-queue`.
func listFromQueue(c *cli.Context) error {
	o, f, err := openQueueOps(c)
	if err != nil {
		return err
	}
	defer o.Close()
	ctx, stop := signalContext(c.Context)
	defer stop()
	queue := c.String("from-queue")
	dls, err := o.ListBusDLQ(ctx, queue, f)
	for _, d := range dls {
		b, _ := json.Marshal(d)
		fmt.Fprintln(c.App.Writer, string(b))
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	fmt.Fprintf(c.App.ErrWriter, "listed %d messages of %s; none taken (every receive had a visibility timeout of 0)\n", len(dls), queue)
	return nil
}

// replayFromQueue is `emitd replay --from-queue`.
func replayFromQueue(c *cli.Context) error {
	o, f, err := openQueueOps(c)
	if err != nil {
		return err
	}
	defer o.Close()
	// Ctrl-C stops after the event in flight; what was read is made
	// visible again below, and nothing not taken by the bus is deleted.
	ctx, stop := signalContext(c.Context)
	defer stop()
	queue := c.String("from-queue")
	// SQS takes 0 to 12 hours; 0 would hide nothing from a second reader
	// while the event is on its way.
	if v := c.Duration("visibility-timeout"); v < time.Second || v > 12*time.Hour {
		return cli.Exit(fmt.Sprintf("--visibility-timeout %s: want 1s to 12h (SQS's range; long enough to re-emit ten events)", v), 2)
	}
	r, q, err := o.BusReemitter(ctx, queue, ops.BusReplay{MaxReplays: c.Int("max-replays"), DryRun: c.Bool("dry-run"),
		Filter: f, Visibility: c.Duration("visibility-timeout")})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	sum, runErr := r.Run(ctx)
	held := q.Held()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := q.Close(closeCtx); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "the %d messages left in %s come back when their visibility timeout (%s) ends: %v\n",
			held, queue, c.Duration("visibility-timeout"), err)
	}
	for _, res := range sum.Results {
		b, _ := json.Marshal(res)
		fmt.Fprintln(c.App.Writer, string(b))
	}
	verb := "replayed"
	if r.DryRun {
		verb = "would replay"
	}
	fmt.Fprintf(c.App.ErrWriter, "%s %d, skipped %d, failed %d\n", verb, sum.Replayed, sum.Skipped, sum.Failed)
	if sum.Unselected > 0 {
		fmt.Fprintf(c.App.ErrWriter, "%d messages not selected by the filters, left in the queue\n", sum.Unselected)
	}
	if runErr != nil {
		return cli.Exit(runErr.Error(), 1)
	}
	if sum.Failed > 0 {
		return cli.Exit("", 1)
	}
	return nil
}
