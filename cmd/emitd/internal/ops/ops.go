// Package ops is what operators do beside a running daemon: move the poison
// queue into the dead-letter store, list and purge dead letters, replay
// them. The CLI's dlq and replay commands are thin shells around it.
package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/cmd/emitd/internal/stores"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/publisher"
)

// Ops holds the store and, once needed, the brokers.
type Ops struct {
	cfg      *configs.Config
	logger   watermill.LoggerAdapter
	Store    stores.Store
	commands broker.Broker
	events   broker.Broker
}

// Open opens the store beside a running daemon: SQLite in WAL mode lets
// this process work next to `emitd serve`, and PostgreSQL is shared anyway.
func Open(cfg *configs.Config, logger watermill.LoggerAdapter) (*Ops, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	store, err := stores.Open(context.Background(), cfg, stores.Operator)
	if err != nil {
		return nil, err
	}
	return &Ops{cfg: cfg, logger: logger, Store: store}, nil
}

// Close closes what Open and later calls opened.
func (o *Ops) Close() error {
	var errs []error
	for _, b := range []broker.Broker{o.commands, o.events} {
		if b != nil {
			errs = append(errs, b.Close())
		}
	}
	errs = append(errs, o.Store.Close())
	return errors.Join(errs...)
}

func (o *Ops) commandsBroker(ctx context.Context) (broker.Broker, error) {
	if o.commands == nil {
		b, err := brokers.Open(ctx, o.cfg.Commands.Broker, o.cfg, o.logger)
		if err != nil {
			return nil, fmt.Errorf("commands broker %s: %w", o.cfg.Commands.Broker, err)
		}
		o.commands = b
	}
	return o.commands, nil
}

func (o *Ops) eventsBroker(ctx context.Context) (broker.Broker, error) {
	if o.events == nil {
		b, err := brokers.Open(ctx, o.cfg.Events.Broker, o.cfg, o.logger)
		if err != nil {
			return nil, fmt.Errorf("events broker %s: %w", o.cfg.Events.Broker, err)
		}
		o.events = b
	}
	return o.events, nil
}

// Sync moves what waits on the poison queue into the store and says how
// many dead letters it moved.
func (o *Ops) Sync(ctx context.Context) (int, error) {
	b, err := o.commandsBroker(ctx)
	if err != nil {
		return 0, err
	}
	sub, err := b.Subscriber(broker.SubscribeOptions{Group: broker.DeadLetterGroup, FromBeginning: true})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return publisher.SyncDeadLetters(ctx, sub, o.cfg.Commands.DLQTopic, o.Store,
		broker.SettleTime(o.cfg.Commands.Broker), time.Second)
}

// Replayer returns a replayer on the configured brokers (none are opened for
// a dry run: it publishes nothing).
func (o *Ops) Replayer(ctx context.Context, maxReplays int, dryRun bool) (*publisher.Replayer, error) {
	r := &publisher.Replayer{Store: o.Store, CommandTopic: o.cfg.Commands.Topic, ResultsTopic: o.cfg.Commands.ResultsTopic, Policy: publisher.NewPolicy(o.cfg.EmitPolicy()),
		Format:     brokers.EventFormat(o.cfg),
		MaxReplays: maxReplays, DryRun: dryRun, Logger: o.logger}
	if dryRun {
		return r, nil
	}
	cb, err := o.commandsBroker(ctx)
	if err != nil {
		return nil, err
	}
	eb, err := o.eventsBroker(ctx)
	if err != nil {
		return nil, err
	}
	r.Commands, r.Events = cb.Publisher(), eb.Publisher()
	return r, nil
}

// BusReplay says how to re-emit from a bus's dead-letter queue.
type BusReplay struct {
	MaxReplays int
	DryRun     bool
	Filter     publisher.BusDLQFilter
	// Visibility is how long a replay hides each message it reads from
	// the queue's other readers, while it re-emits it (a dry run hides
	// nothing).
	Visibility time.Duration
}

// BusReemitter opens a bus's dead-letter queue (an SQS queue name or URL)
// and returns what re-emits its events, on the configured events broker,
// and the queue, which the caller closes (what was left in it becomes
// visible again). A dry run opens no broker and hides nothing; a real run
// first checks that the configuration's buses exist: EventBridge takes an
// event for a bus that does not exist and drops it, and the message would
// be deleted from the queue for an event nobody got.
func (o *Ops) BusReemitter(ctx context.Context, queue string, opts BusReplay) (*publisher.Reemitter, *brokers.BusDLQ, error) {
	accepts, err := brokers.BusDeadLetters(o.cfg)
	if err != nil {
		return nil, nil, err
	}
	visibility := opts.Visibility
	if opts.DryRun {
		visibility = 0
	}
	r := &publisher.Reemitter{Store: o.Store, Accepts: accepts, Broker: o.cfg.Events.Broker,
		Policy: publisher.NewPolicy(o.cfg.EmitPolicy()), MaxReplays: opts.MaxReplays, DryRun: opts.DryRun, Filter: opts.Filter}
	if !opts.DryRun {
		eb, err := o.eventsBroker(ctx)
		if err != nil {
			return nil, nil, err
		}
		if err := eb.EnsureTopics(ctx, o.cfg.Events.DomainBus, o.cfg.Events.AnalyticsBus); err != nil {
			return nil, nil, err
		}
		r.Events = eb.Publisher()
	}
	q, err := brokers.OpenBusDLQ(ctx, o.cfg, queue, visibility, o.logger)
	if err != nil {
		return nil, nil, err
	}
	r.Queue = q
	return r, q, nil
}

// ListBusDLQ reads a bus's dead-letter queue without taking anything from
// it (every receive has a visibility timeout of zero) and returns the
// messages the filter selects, each with its event's replay count from the
// store.
func (o *Ops) ListBusDLQ(ctx context.Context, queue string, f publisher.BusDLQFilter) ([]publisher.BusDeadLetter, error) {
	q, err := brokers.OpenBusDLQ(ctx, o.cfg, queue, 0, o.logger)
	if err != nil {
		return nil, err
	}
	var out []publisher.BusDeadLetter
	for f.Limit <= 0 || len(out) < f.Limit {
		batch, err := q.Next(ctx)
		if err != nil {
			return out, err
		}
		if len(batch) == 0 {
			break
		}
		for _, d := range batch {
			if f.Matches(d) && (f.Limit <= 0 || len(out) < f.Limit) {
				out = append(out, d)
			}
		}
	}
	var ids []string
	for _, d := range out {
		if d.EventID != "" {
			ids = append(ids, d.EventID)
		}
	}
	counts, err := o.Store.EventReplays(ctx, ids)
	if err != nil {
		return out, err
	}
	for i := range out {
		out[i].Replays = counts[out[i].EventID]
	}
	return out, nil
}
