package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Relay publishes committed envelopes from the outbox to their buses, in
// commit order, and removes them once the bus has them. Delivery is at least
// once: a crash between publish and MarkSent publishes an envelope again, with
// the same id, so consumers can drop the repeat.
type Relay struct {
	Outbox    Outbox
	Publisher message.Publisher
	Policy    *Policy // nil allows everything
	Logger    watermill.LoggerAdapter
	// BusOrder lists the buses in the order a batch publishes to them: the
	// domain bus first, so that every domain event goes out before its
	// analytics copy even when an earlier round left analytics envelopes
	// behind. Buses not listed follow, in the order they appear.
	BusOrder []string

	BatchSize    int           // envelopes read per store round trip
	PollInterval time.Duration // how often to look without a Notify
	MaxBackoff   time.Duration // cap of the wait after a failed publish

	wake chan struct{}

	published    atomic.Int64
	deadLettered atomic.Int64
}

// NewRelay fills in defaults.
func NewRelay(o Outbox, p message.Publisher, logger watermill.LoggerAdapter) *Relay {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Relay{Outbox: o, Publisher: p, Logger: logger, BatchSize: 256,
		PollInterval: 500 * time.Millisecond, MaxBackoff: 5 * time.Second, wake: make(chan struct{}, 1)}
}

// Notify tells the relay that something was committed; it never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Published and DeadLettered count envelopes since start.
func (r *Relay) Published() int64    { return r.published.Load() }
func (r *Relay) DeadLettered() int64 { return r.deadLettered.Load() }

// Run relays until ctx ends, then flushes what is left for up to flushTimeout.
func (r *Relay) Run(ctx context.Context, flushTimeout time.Duration) error {
	backoff := time.Duration(0)
	for {
		pending, err := r.drain(ctx)
		switch {
		case ctx.Err() != nil:
			return r.flush(flushTimeout)
		case err != nil || pending:
			backoff = nextBackoff(backoff, r.MaxBackoff)
			if err != nil {
				r.Logger.Error("relay: publish failed; envelopes stay in the outbox", err,
					watermill.LogFields{"retry_in": backoff.String()})
			}
		default:
			backoff = 0
		}
		wait := r.PollInterval
		if backoff > 0 {
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-r.wake:
			if backoff > 0 { // a commit does not make a down bus come back
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// flush drains the outbox at shutdown, retrying a bus that fails for a
// moment, for up to timeout. What it cannot deliver stays in the outbox for
// the next start.
func (r *Relay) flush(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	backoff := time.Duration(0)
	for {
		pending, err := r.drain(ctx)
		if err == nil && !pending {
			return nil
		}
		backoff = nextBackoff(backoff, r.MaxBackoff)
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("bus kept envelopes pending")
			}
			return fmt.Errorf("relay: flush at shutdown: %w (unsent envelopes stay in the outbox for the next start)", err)
		case <-time.After(backoff):
		}
	}
}

// drain publishes batches until the outbox is empty. pending reports that
// some envelopes could not be delivered and wait for a later try.
func (r *Relay) drain(ctx context.Context) (pending bool, err error) {
	for {
		recs, err := r.Outbox.PendingEnvelopes(ctx, r.BatchSize)
		if err != nil {
			return false, fmt.Errorf("read outbox: %w", err)
		}
		if len(recs) == 0 {
			return false, nil
		}
		pending, err := r.publishBatch(ctx, recs)
		if err != nil || pending {
			return pending, err
		}
		if len(recs) < r.BatchSize {
			return false, nil
		}
	}
}

// publishBatch publishes one batch, one Publish call per bus, in BusOrder.
// If a bus leaves an envelope pending, nothing committed after it goes to any
// other bus in this round, which keeps each analytics copy behind its domain
// event. On the bus itself, envelopes after the pending one may already have
// gone out in the same call (EventBridge resends only failed entries), so a
// partial failure can reorder a bus that keeps no order anyway.
func (r *Relay) publishBatch(ctx context.Context, recs []OutboxRecord) (pending bool, err error) {
	type group struct {
		bus  string
		recs []OutboxRecord
	}
	var groups []*group
	byBus := map[string]*group{}
	for _, bus := range r.BusOrder {
		byBus[bus] = &group{bus: bus}
		groups = append(groups, byBus[bus])
	}
	for _, rec := range recs {
		g, ok := byBus[rec.Envelope.EventBusName]
		if !ok {
			g = &group{bus: rec.Envelope.EventBusName}
			byBus[g.bus] = g
			groups = append(groups, g)
		}
		g.recs = append(g.recs, rec)
	}

	cut := int64(1<<63 - 1) // envelopes with Seq >= cut wait for the next round
	var sent []int64
	var dead []EventDeadLetter
	var lastErr error
	for _, g := range groups {
		var msgs []*message.Message
		seqOf := map[string]int64{}
		for _, rec := range g.recs {
			if rec.Seq >= cut {
				break
			}
			if err := r.Policy.Check(g.bus, rec.Envelope.DetailType); err != nil {
				// Never publish it; keep it, exact bytes, for operations.
				dead = append(dead, EventDeadLetter{Seq: rec.Seq, Envelope: rec.Envelope, Reason: err.Error(), At: time.Now().UTC()})
				continue
			}
			msg, err := ToMessage(rec.Envelope)
			if err != nil {
				return false, err
			}
			msg.SetContext(ctx)
			seqOf[msg.UUID] = rec.Seq
			msgs = append(msgs, msg)
		}
		if len(msgs) == 0 {
			continue
		}
		perr := r.Publisher.Publish(g.bus, msgs...)
		be, isBatch := AsBatchError(perr)
		if perr != nil && !isBatch {
			lastErr = fmt.Errorf("publish to bus %q: %w", g.bus, perr)
			cut = min(cut, seqOf[msgs[0].UUID])
			continue
		}
		for _, msg := range msgs {
			seq := seqOf[msg.UUID]
			switch {
			case be != nil && be.Refused[msg.UUID] != nil:
				env, _ := FromMessage(msg)
				dead = append(dead, EventDeadLetter{Seq: seq, Envelope: env,
					Reason: be.Refused[msg.UUID].Error(), At: time.Now().UTC()})
			case be != nil && be.Pending[msg.UUID] != nil:
				cut = min(cut, seq)
				lastErr = fmt.Errorf("publish to bus %q: %w", g.bus, be.Pending[msg.UUID])
			default:
				sent = append(sent, seq)
			}
		}
	}
	if len(dead) > 0 {
		// The bus will never take these; keep them (exact bytes, bus, error)
		// as event dead letters so the rest flows on.
		if err := r.Outbox.DeadLetterEvents(ctx, dead); err != nil {
			return false, fmt.Errorf("dead-letter refused envelopes: %w", err)
		}
		for _, d := range dead {
			r.Logger.Error("relay: bus refused envelope for good; moved to the event dead letters",
				errors.New(d.Reason), watermill.LogFields{"event_id": d.Envelope.ID, "bus": d.Envelope.EventBusName})
		}
		r.deadLettered.Add(int64(len(dead)))
	}
	if len(sent) > 0 {
		if err := r.Outbox.MarkSent(ctx, sent); err != nil {
			return false, fmt.Errorf("mark envelopes sent: %w", err)
		}
		r.published.Add(int64(len(sent)))
	}
	return cut != int64(1<<63-1), lastErr
}

func nextBackoff(cur, maxWait time.Duration) time.Duration {
	if cur == 0 {
		return 50 * time.Millisecond
	}
	return min(cur*2, maxWait)
}
