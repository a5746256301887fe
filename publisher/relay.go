package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/domain"
)

// Pending is one committed message waiting in an outbox, as the relay
// publishes it.
type Pending struct {
	Seq   int64 // commit order
	Topic string
	Msg   *message.Message
	// Refuse, when set, says why this record must never be published (the
	// emit policy forbids it): the relay dead-letters it instead.
	Refuse error
	rec    any // the feed's own record, for DeadLetter
}

// Refusal is a pending record that will never be delivered, and why.
type Refusal struct {
	Pending
	Reason string
	Code   string // CodeRefused or CodePolicy
	At     time.Time
}

// Feed is one outbox as the relay sees it.
type Feed interface {
	// Pending returns up to limit records waiting after the number after,
	// in commit order.
	Pending(ctx context.Context, after int64, limit int) ([]Pending, error)
	// MarkSent removes delivered records.
	MarkSent(ctx context.Context, seqs []int64) error
	// DeadLetter moves records refused for good to the dead letters.
	DeadLetter(ctx context.Context, refused []Refusal) error
}

// EventFeed is the outbox of envelopes: each goes to its bus, if the emit
// policy allows it there.
type EventFeed struct {
	Outbox Outbox
	Policy *Policy // nil allows everything
	Format Format  // how envelopes travel (zero: EventBridge entries)
}

// Pending implements Feed.
func (f EventFeed) Pending(ctx context.Context, after int64, limit int) ([]Pending, error) {
	recs, err := f.Outbox.PendingEnvelopes(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Pending, 0, len(recs))
	for _, rec := range recs {
		msg, err := f.Format.Message(rec.Envelope)
		if err != nil {
			return nil, err
		}
		out = append(out, Pending{Seq: rec.Seq, Topic: rec.Envelope.EventBusName, Msg: msg, rec: rec.Envelope,
			Refuse: f.Policy.Check(rec.Envelope.EventBusName, rec.Envelope.DetailType)})
	}
	return out, nil
}

// MarkSent implements Feed.
func (f EventFeed) MarkSent(ctx context.Context, seqs []int64) error {
	return f.Outbox.MarkSent(ctx, seqs)
}

// DeadLetter implements Feed: the envelopes become event dead letters, in
// the same transaction that removes them from the outbox.
func (f EventFeed) DeadLetter(ctx context.Context, refused []Refusal) error {
	dls := make([]EventDeadLetter, len(refused))
	for i, r := range refused {
		dls[i] = EventDeadLetter{Seq: r.Seq, Envelope: r.rec.(domain.Envelope), Reason: r.Reason, Code: r.Code, At: r.At}
	}
	return f.Outbox.DeadLetterEvents(ctx, dls)
}

// OutcomeFeed is the outbox of outcomes: every one goes to the results
// topic, on the commands broker.
type OutcomeFeed struct {
	Outbox OutcomeOutbox
	Topic  string
	// DeadLetters keeps an outcome the broker refuses for good (none should
	// be: outcomes are small JSON of emitd's own).
	DeadLetters DeadLetterStore
}

// Pending implements Feed.
func (f OutcomeFeed) Pending(ctx context.Context, after int64, limit int) ([]Pending, error) {
	recs, err := f.Outbox.PendingOutcomes(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Pending, 0, len(recs))
	for _, rec := range recs {
		out = append(out, Pending{Seq: rec.Seq, Topic: f.Topic, Msg: OutcomeMessage(rec), rec: rec})
	}
	return out, nil
}

// OutcomeMessage is the message an outcome is published as: the outcome
// JSON, with its correlation id in the metadata. Its id was fixed at commit,
// so a relay that sends it twice sends the same message.
func OutcomeMessage(rec OutcomeRecord) *message.Message {
	msg := message.NewMessage(rec.MessageID, rec.Payload)
	if rec.CorrelationID != "" {
		msg.Metadata.Set(MetaCorrelationID, rec.CorrelationID)
	}
	return msg
}

// MarkSent implements Feed.
func (f OutcomeFeed) MarkSent(ctx context.Context, seqs []int64) error {
	return f.Outbox.MarkOutcomesSent(ctx, seqs)
}

// DeadLetter implements Feed: the outcome is kept as a dead letter of kind
// outcome (replay sends it to the results topic), then leaves the outbox.
// Adding a dead letter twice keeps one, so a crash in between loses nothing.
func (f OutcomeFeed) DeadLetter(ctx context.Context, refused []Refusal) error {
	if f.DeadLetters == nil {
		return errors.New("no dead-letter store for refused outcomes")
	}
	dls := make([]DeadLetter, len(refused))
	seqs := make([]int64, len(refused))
	for i, r := range refused {
		md := map[string]string{}
		for k, v := range r.Msg.Metadata {
			md[k] = v
		}
		dls[i] = DeadLetter{ID: r.Msg.UUID, Kind: KindOutcome, Origin: f.Topic, Reason: r.Reason, Code: r.Code, Class: "refused",
			Attempts: 1, First: r.At, Last: r.At, Digest: Digest(r.Msg.Payload), Payload: r.Msg.Payload, Metadata: md}
		seqs[i] = r.Seq
	}
	if err := f.DeadLetters.AddDeadLetters(ctx, dls); err != nil {
		return err
	}
	return f.Outbox.MarkOutcomesSent(ctx, seqs)
}

// Relay publishes committed messages from an outbox to their topics, in
// commit order, and removes them once the broker has them. Delivery is at
// least once: a crash between publish and MarkSent publishes a message
// again, with the same id, so consumers can drop the repeat.
//
// A failure of one message (too large, refused by its broker for good, or
// forbidden by the emit policy) dead-letters that message and the rest flow
// on. A failure of the whole topic or broker (down, a missing topic, no
// permission, throttling) dead-letters nothing: the messages stay in the
// outbox, in order, and the relay tries again with backoff, saying so
// loudly once and again once it is over.
type Relay struct {
	Name      string // in log lines: "events" or "outcomes"
	Feed      Feed
	Publisher message.Publisher
	Logger    watermill.LoggerAdapter
	// TopicOrder lists the topics in the order a batch publishes to them:
	// for events the domain bus first, so that every domain event goes out
	// before its analytics copy even when an earlier round left analytics
	// envelopes behind. Topics not listed follow, in the order they appear.
	TopicOrder []string

	// Observer sees each publish and what it settled (the metrics); nil:
	// none.
	Observer RelayObserver

	BatchSize    int           // records read per store round trip
	PollInterval time.Duration // how often to look without a Notify
	MaxBackoff   time.Duration // cap of the wait after a failed publish

	wake chan struct{}
	// after is the last number handled (sent or dead-lettered) by the loop
	// running now: the next read starts after it, so the relay does not
	// wait for its deletes to be written. A loop starts from 0: what a
	// store had not deleted yet is published again (at least once).
	after int64

	published    atomic.Int64
	deadLettered atomic.Int64

	mu        sync.Mutex
	downSince time.Time // a topic or the store has been failing since
	downLast  time.Time // last log line about it
	downCount int
}

// RelayObserver sees what a relay does, as it is done: a publish call as it
// returns, deliveries and dead letters once the store recorded them.
type RelayObserver interface {
	// Publish: one Publish call to topic of n messages took d (err: the
	// call failed as a whole).
	Publish(topic string, n int, d time.Duration, err error)
	// Sent: n messages for topic were delivered and left the outbox.
	Sent(topic string, n int)
	// DeadLettered: one message for topic moved to the dead letters, with
	// the reason code (CodeRefused, CodePolicy).
	DeadLettered(topic, code string)
}

// NewRelay fills in defaults.
func NewRelay(name string, f Feed, p message.Publisher, logger watermill.LoggerAdapter) *Relay {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Relay{Name: name, Feed: f, Publisher: p, Logger: logger, BatchSize: 256,
		PollInterval: 500 * time.Millisecond, MaxBackoff: 5 * time.Second, wake: make(chan struct{}, 1)}
}

// Notify tells the relay that something was committed; it never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Published and DeadLettered count messages since start.
func (r *Relay) Published() int64    { return r.published.Load() }
func (r *Relay) DeadLettered() int64 { return r.deadLettered.Load() }

// Run relays until ctx ends, then flushes what is left for up to flushTimeout.
func (r *Relay) Run(ctx context.Context, flushTimeout time.Duration) error {
	r.loop(ctx)
	return r.flush(flushTimeout)
}

// RunLeased relays while this instance holds the lease name, so that one
// instance at a time relays an outbox, in commit order. When it loses the
// lease (its store connection broke) it stops at once and waits to take
// the lease again; another instance has taken over meanwhile. When ctx
// ends it flushes, still holding the lease, then lets it go.
func (r *Relay) RunLeased(ctx context.Context, l Leaser, name string, flushTimeout time.Duration) error {
	for {
		held, release, err := l.Lease(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.Logger.Error("relay "+r.Name+": cannot take the lease; trying again", err, nil)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(r.MaxBackoff):
			}
			continue
		}
		r.Logger.Info("relay "+r.Name+": this instance relays", watermill.LogFields{"lease": name})
		r.loop(held)
		if ctx.Err() != nil {
			err := r.flush(flushTimeout)
			release()
			return err
		}
		release()
		r.Logger.Error("relay "+r.Name+": lost the lease; another instance relays until this one takes it again", held.Err(),
			watermill.LogFields{"lease": name})
	}
}

// loop relays until ctx ends.
func (r *Relay) loop(ctx context.Context) {
	r.after = 0
	backoff := time.Duration(0)
	for {
		pending, err := r.drain(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil || pending:
			backoff = nextBackoff(backoff, r.MaxBackoff)
			r.failing(err, backoff)
		default:
			r.recovered()
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
			if backoff > 0 { // a commit does not make a down broker come back
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

// failing logs a failure of the whole topic or store: at once when it
// begins, then once a minute with the count, never at every retry.
func (r *Relay) failing(err error, retryIn time.Duration) {
	if err == nil {
		return // only messages left pending: logged as they were
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.downCount++
	if r.downSince.IsZero() {
		r.downSince = now
	} else if now.Sub(r.downLast) < time.Minute {
		return
	}
	r.Logger.Error("relay "+r.Name+": publishing fails; messages stay in the outbox, in order, and are tried again", err,
		watermill.LogFields{"failing_for": now.Sub(r.downSince).Round(time.Second).String(), "attempts": r.downCount, "retry_in": retryIn.String()})
	r.downLast = now
}

func (r *Relay) recovered() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downSince.IsZero() {
		return
	}
	r.Logger.Info("relay "+r.Name+": publishing works again", watermill.LogFields{
		"failed_for": time.Since(r.downSince).Round(time.Millisecond).String(), "attempts": r.downCount})
	r.downSince, r.downLast, r.downCount = time.Time{}, time.Time{}, 0
}

// flush drains the outbox at shutdown, retrying a broker that fails for a
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
				err = errors.New("broker kept messages pending")
			}
			return fmt.Errorf("relay %s: flush at shutdown: %w (unsent messages stay in the outbox for the next start)", r.Name, err)
		case <-time.After(backoff):
		}
	}
}

// drain publishes batches until the outbox is empty. pending reports that
// some messages could not be delivered and wait for a later try.
func (r *Relay) drain(ctx context.Context) (pending bool, err error) {
	for {
		recs, err := r.Feed.Pending(ctx, r.after, r.BatchSize)
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

// publishBatch publishes one batch, one Publish call per topic, in
// TopicOrder. If a topic leaves a message pending, nothing committed after
// it goes to any other topic in this round, which keeps each analytics copy
// behind its domain event. On the topic itself, messages after the pending
// one may already have gone out in the same call (EventBridge resends only
// failed entries), so a partial failure can reorder a bus that keeps no
// order anyway.
func (r *Relay) publishBatch(ctx context.Context, recs []Pending) (pending bool, err error) {
	type group struct {
		topic string
		recs  []Pending
	}
	var groups []*group
	byTopic := map[string]*group{}
	for _, topic := range r.TopicOrder {
		byTopic[topic] = &group{topic: topic}
		groups = append(groups, byTopic[topic])
	}
	for _, rec := range recs {
		g, ok := byTopic[rec.Topic]
		if !ok {
			g = &group{topic: rec.Topic}
			byTopic[g.topic] = g
			groups = append(groups, g)
		}
		g.recs = append(g.recs, rec)
	}

	const none = int64(1<<63 - 1)
	cut := none // messages with Seq >= cut wait for the next round
	var sent []int64
	sentByTopic := map[string]int{}
	var dead []Refusal
	var lastErr error
	for _, g := range groups {
		var msgs []*message.Message
		recOf := map[string]Pending{}
		for _, rec := range g.recs {
			if rec.Seq >= cut {
				break
			}
			if rec.Refuse != nil {
				// Never publish it; keep it, exact bytes, for operations.
				dead = append(dead, Refusal{Pending: rec, Reason: rec.Refuse.Error(), Code: CodePolicy, At: time.Now().UTC()})
				continue
			}
			rec.Msg.SetContext(ctx)
			recOf[rec.Msg.UUID] = rec
			msgs = append(msgs, rec.Msg)
		}
		if len(msgs) == 0 {
			continue
		}
		began := time.Now()
		perr := r.Publisher.Publish(g.topic, msgs...)
		be, isBatch := AsBatchError(perr)
		if r.Observer != nil {
			var whole error
			if perr != nil && !isBatch {
				whole = perr
			}
			r.Observer.Publish(g.topic, len(msgs), time.Since(began), whole)
		}
		if perr != nil && !isBatch {
			lastErr = fmt.Errorf("publish to %q: %w", g.topic, perr)
			cut = min(cut, recOf[msgs[0].UUID].Seq)
			continue
		}
		for _, msg := range msgs {
			rec := recOf[msg.UUID]
			switch {
			case be != nil && be.Refused[msg.UUID] != nil:
				dead = append(dead, Refusal{Pending: rec, Reason: be.Refused[msg.UUID].Error(), Code: CodeRefused, At: time.Now().UTC()})
			case be != nil && be.Pending[msg.UUID] != nil:
				cut = min(cut, rec.Seq)
				lastErr = fmt.Errorf("publish to %q: %w", g.topic, be.Pending[msg.UUID])
			default:
				sent = append(sent, rec.Seq)
				sentByTopic[g.topic]++
			}
		}
	}
	if len(dead) > 0 {
		// The broker will never take these; keep them (exact bytes, topic,
		// error) as dead letters so the rest flows on.
		if err := r.Feed.DeadLetter(ctx, dead); err != nil {
			return false, fmt.Errorf("dead-letter refused messages: %w", err)
		}
		for _, d := range dead {
			r.Logger.Error("relay "+r.Name+": refused for good; moved to the dead letters", errors.New(d.Reason),
				watermill.LogFields{"message_uuid": d.Msg.UUID, "topic": d.Topic})
		}
		r.deadLettered.Add(int64(len(dead)))
		if r.Observer != nil {
			for _, d := range dead {
				r.Observer.DeadLettered(d.Topic, d.Code)
			}
		}
	}
	if len(sent) > 0 {
		if err := r.Feed.MarkSent(ctx, sent); err != nil {
			return false, fmt.Errorf("mark sent: %w", err)
		}
		r.published.Add(int64(len(sent)))
		if r.Observer != nil {
			for topic, n := range sentByTopic {
				r.Observer.Sent(topic, n)
			}
		}
	}
	// Read on after what is settled: everything before the first message
	// that waits, or the whole batch.
	if cut != none {
		r.after = max(r.after, cut-1)
	} else {
		r.after = max(r.after, recs[len(recs)-1].Seq)
	}
	return cut != none, lastErr
}

func nextBackoff(cur, maxWait time.Duration) time.Duration {
	if cur == 0 {
		return 50 * time.Millisecond
	}
	return min(cur*2, maxWait)
}
