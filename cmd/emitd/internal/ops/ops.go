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
	commands brokers.Broker
	events   brokers.Broker
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
	for _, b := range []brokers.Broker{o.commands, o.events} {
		if b != nil {
			errs = append(errs, b.Close())
		}
	}
	errs = append(errs, o.Store.Close())
	return errors.Join(errs...)
}

func (o *Ops) commandsBroker(ctx context.Context) (brokers.Broker, error) {
	if o.commands == nil {
		b, err := brokers.Open(ctx, o.cfg.Commands.Broker, o.cfg, o.logger)
		if err != nil {
			return nil, fmt.Errorf("commands broker %s: %w", o.cfg.Commands.Broker, err)
		}
		o.commands = b
	}
	return o.commands, nil
}

func (o *Ops) eventsBroker(ctx context.Context) (brokers.Broker, error) {
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
	sub, err := b.Subscriber(brokers.SubscribeOptions{Group: brokers.DeadLetterGroup, FromBeginning: true})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return publisher.SyncDeadLetters(ctx, sub, o.cfg.Commands.DLQTopic, o.Store,
		brokers.SettleTime(o.cfg.Commands.Broker), time.Second)
}

// Replayer returns a replayer on the configured brokers (none are opened for
// a dry run: it publishes nothing).
func (o *Ops) Replayer(ctx context.Context, maxReplays int, dryRun bool) (*publisher.Replayer, error) {
	r := &publisher.Replayer{Store: o.Store, CommandTopic: o.cfg.Commands.Topic, ResultsTopic: o.cfg.Commands.ResultsTopic, Policy: publisher.NewPolicy(o.cfg.EmitPolicy()),
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
