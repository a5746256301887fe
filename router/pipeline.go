package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// Pipeline decides and commits commands in batches: every command taken
// from the queue joins the batch that forms while the previous one commits,
// and one store transaction decides and records the whole batch (group
// commit). Per command nothing changes: idempotency by command id, rejection,
// poison classification and the outcome are decided one command at a time,
// in the order the broker delivered them, each seeing what the ones before
// it in its batch changed.
//
// The pipeline sits between the commands subscriber and the Watermill
// router: Intake wraps the subscriber and hands each message to the
// pipeline, in delivery order, before the router sees it; the router's
// handler (Handler.Handle) waits for the message's result. The router
// acknowledges a message only after its batch has committed, and the
// adapters acknowledge in bulk.
//
// Failures never cost a command its place in line. A batch that fails as a
// whole because the store is unavailable is tried again, with backoff,
// before anything after it, for as long as the store stays away: nothing is
// dead-lettered because of an outage, and commands queued behind wait their
// turn. Any other failure of a batch splits it, so the command that causes
// it is found and the rest go on; a lone command that keeps failing is
// retried within the retry policy, then dead-lettered.
type Pipeline struct {
	Store     domain.Store
	Aggregate domain.Aggregate
	Factory   domain.EnvelopeFactory
	Now       func() time.Time
	// MaxBatch bounds the commands of one transaction.
	MaxBatch int
	// MaxInFlight bounds the commands taken from the broker and not yet
	// acknowledged (queued, deciding, or dead-lettering).
	MaxInFlight int
	// MaxBytes is commands.maxBytes: a larger message is dead-lettered
	// before anything reads it.
	MaxBytes int
	// Timeout bounds one attempt at one batch (router.handlerTimeout).
	Timeout time.Duration
	Retry   RetryPolicy
	// Ping tells whether the store answers; when a lone command keeps
	// failing, it tells an outage (wait) from a command at fault
	// (dead-letter). Nil: every failure is the command's.
	Ping     func(context.Context) error
	OnCommit func() // wakes the relays after each commit
	// OnHold is called now and then while the pipeline waits for an
	// unavailable store, to keep the brokers from redelivering what waits
	// (the Intake sets it).
	OnHold func()
	Stats  *Stats
	Logger watermill.LoggerAdapter

	queue    chan *item
	stopping chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	started  sync.Once
	outage   outage
}

// item is one message in the pipeline.
type item struct {
	msg      *message.Message
	received time.Time
	cmd      domain.Command
	parsed   bool // cmd is a valid command (its id is its own)
	corr     string
	replays  int
	// invalid is set when the message cannot be decided at all: too large,
	// not a command, retries exhausted. It is dead-lettered in its turn.
	invalid *DeadLetterError

	attempts    int
	first, last time.Time // failures

	done chan struct{}
	err  error // nil: processed, acknowledge; *DeadLetterError: poison it; else: leave for redelivery
}

func (it *item) finish(err error) {
	it.err = err
	close(it.done)
}

type itemKey struct{}

func itemOf(msg *message.Message) *item {
	it, _ := msg.Context().Value(itemKey{}).(*item)
	return it
}

// ErrStopping is the result of a command that was not decided because the
// daemon is stopping: it is left for redelivery, never dead-lettered.
var ErrStopping = errors.New("emitd is stopping: command left for redelivery")

// DeadLetterError is the result of a command that goes to the poison queue:
// why (Reason, bounded, for people), the bounded reason code for counters,
// and whether retrying could ever have helped (Class).
type DeadLetterError struct {
	Code     string
	Reason   string
	Class    Class
	Attempts int
	First    time.Time
	Last     time.Time
	Err      error
}

func (e *DeadLetterError) Error() string { return e.Reason }
func (e *DeadLetterError) Unwrap() error { return e.Err }

// maxReason bounds every reason that a dead letter, an outcome or a log
// line carries: reasons quote input (a field name, a type), and input can
// be megabytes.
const maxReason = 1024

func boundReason(s string) string {
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && s[cut]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		cut--
	}
	return s[:cut] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

func deadLetterOf(err error, attempts int, first, last time.Time) *DeadLetterError {
	class := Classify(err)
	reason := err.Error()
	if class == Transient {
		reason = fmt.Sprintf("retries exhausted after %d attempts: %s", attempts, reason)
	}
	return &DeadLetterError{Code: ReasonCode(err), Reason: boundReason(reason), Class: class,
		Attempts: attempts, First: first, Last: last, Err: err}
}

func (p *Pipeline) start() {
	p.started.Do(func() {
		if p.MaxBatch <= 0 {
			p.MaxBatch = 256
		}
		if p.MaxInFlight < p.MaxBatch {
			p.MaxInFlight = 4 * p.MaxBatch
		}
		if p.Logger == nil {
			p.Logger = watermill.NopLogger{}
		}
		p.queue = make(chan *item, p.MaxInFlight)
		p.stopping = make(chan struct{})
		p.done = make(chan struct{})
		go p.run()
	})
}

// Stop ends the pipeline: the batch committing finishes, a batch waiting for
// the store gives up, and everything queued is left for redelivery. It
// returns once nothing is being decided any more.
func (p *Pipeline) Stop() {
	p.start()
	p.stopOnce.Do(func() { close(p.stopping) })
	<-p.done
}

// admit makes the item for a message taken from the broker: what can be
// known without the store (size, shape, ids) is settled here, in order.
func (p *Pipeline) admit(msg *message.Message) *item {
	now := time.Now()
	it := &item{msg: msg, received: now, done: make(chan struct{})}
	it.replays, _ = strconv.Atoi(msg.Metadata.Get(publisher.DLQReplays))
	if p.MaxBytes > 0 && len(msg.Payload) > p.MaxBytes {
		// Checked first: nothing reads a message over the limit.
		it.invalid = &DeadLetterError{Code: "too_large", Class: Permanent, Attempts: 1, First: now, Last: now,
			Reason: fmt.Sprintf("command is %d bytes, over the limit of %d (commands.maxBytes)", len(msg.Payload), p.MaxBytes)}
		it.corr = msg.Metadata.Get(publisher.MetaCorrelationID)
		return it
	}
	cmd, err := domain.ParseCommand(msg.Payload)
	it.cmd, it.parsed = cmd, err == nil
	it.corr = cmd.CorrelationID
	if it.corr == "" {
		it.corr = msg.Metadata.Get(publisher.MetaCorrelationID)
	}
	if err != nil {
		if it.cmd.ID == "" {
			id, typ, corr := domain.PeekIDs(msg.Payload)
			it.cmd.ID, it.cmd.Type = id, typ
			if it.corr == "" {
				it.corr = corr
			}
		}
		it.invalid = deadLetterOf(err, 1, now, now)
	}
	return it
}

// run is the committer: it takes what the queue holds, up to MaxBatch, as
// one batch, and never starts a batch before the previous one is settled.
func (p *Pipeline) run() {
	defer close(p.done)
	for {
		var first *item
		select {
		case first = <-p.queue:
		case <-p.stopping:
			p.drain()
			return
		}
		batch := []*item{first}
	fill:
		for len(batch) < p.MaxBatch {
			select {
			case it := <-p.queue:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		p.process(batch)
	}
}

// drain leaves everything still queued for redelivery.
func (p *Pipeline) drain() {
	for {
		select {
		case it := <-p.queue:
			it.finish(ErrStopping)
		default:
			return
		}
	}
}

func (p *Pipeline) isStopping() bool {
	select {
	case <-p.stopping:
		return true
	default:
		return false
	}
}

// maxConflicts bounds the immediate re-runs of a batch that lost a race to
// another instance; past it the conflict counts as an ordinary failure.
const maxConflicts = 5

// process settles a batch: committed, split, retried or dead-lettered.
func (p *Pipeline) process(batch []*item) {
	conflicts := 0
	for {
		if p.isStopping() {
			for _, it := range batch {
				it.finish(ErrStopping)
			}
			return
		}
		results, err := p.commit(batch)
		if err == nil {
			p.outage.recovered(p.Logger)
			for i, it := range batch {
				p.Stats.count(results[i], it)
				it.finish(results[i].err)
			}
			if p.OnCommit != nil {
				p.OnCommit()
			}
			return
		}
		switch {
		case errors.Is(err, domain.ErrConflict) && conflicts < maxConflicts:
			// Another instance decided on the same slot or command first:
			// decide again, at once, on what it wrote.
			conflicts++
			continue
		case errors.Is(err, domain.ErrUnavailable):
			p.hold(err, len(batch))
			continue
		case len(batch) > 1:
			// Something in the batch fails it: halve it, in order, until
			// the command at fault stands alone; the rest commit.
			half := len(batch) / 2
			p.process(batch[:half])
			p.process(batch[half:])
			return
		}
		// A lone command failed: that is an attempt at it.
		it := batch[0]
		now := time.Now()
		it.attempts++
		if it.first.IsZero() {
			it.first = now
		}
		it.last = now
		if p.Ping != nil {
			ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
			perr := p.Ping(ctx)
			cancel()
			if perr != nil {
				p.hold(fmt.Errorf("%w: %w", domain.ErrUnavailable, perr), 1)
				continue
			}
		}
		if it.invalid != nil {
			// Even recording that it is dead-lettered fails, with a store
			// that answers: retry that within the budget too, then leave
			// it for redelivery (a dead letter is never dropped).
			if !p.retryWait(it, err) {
				p.Logger.Error("cannot record a dead letter; left for redelivery", err,
					watermill.LogFields{"message_uuid": Clip(it.msg.UUID)})
				it.finish(fmt.Errorf("record dead letter: %w", err))
				return
			}
			continue
		}
		if p.retryWait(it, err) {
			continue
		}
		// Retries exhausted: this command is dead-lettered, and recorded
		// as such, so a later delivery of it is not processed behind the
		// poison queue's back.
		it.invalid = deadLetterOf(err, it.attempts, it.first, it.last)
	}
}

// retryWait waits before the next attempt at a lone failing command and
// says whether the retry policy allows one.
func (p *Pipeline) retryWait(it *item, err error) bool {
	wait := p.Retry.delay(it.attempts)
	if Classify(err) == Permanent || it.attempts > p.Retry.MaxRetries ||
		time.Now().Add(wait+p.Timeout).Sub(it.received) > p.Retry.MaxElapsed {
		return false
	}
	p.Stats.retried()
	p.Logger.Info("command failed, retrying", watermill.LogFields{
		"message_uuid": Clip(it.msg.UUID), "attempt": it.attempts, "retry_in": wait.String(), "error": boundReason(err.Error())})
	return p.sleep(wait)
}

// holdTouch is how often, while the store is away, the brokers are told
// that the messages waiting are still being worked on: well inside the
// shortest redelivery deadline emitd accepts (the retry budget's 5 s margin
// below it).
const holdTouch = 5 * time.Second

// hold waits while the store is unavailable: loudly once, then quietly,
// with backoff, until it answers or the daemon stops.
func (p *Pipeline) hold(err error, n int) {
	attempt := p.outage.begin(p.Logger, err, n)
	if p.OnHold != nil && p.outage.touchDue(holdTouch) {
		p.OnHold()
	}
	d := p.Retry.delay(min(attempt, 30))
	p.sleep(d)
}

func (p *Pipeline) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stopping:
		return false
	}
}

// result is what one commit attempt made of an item; it is counted only
// once the batch has committed.
type result struct {
	err    error  // the item's result (see item.err)
	status string // accepted, rejected, duplicate or dead_lettered
	code   string // the rejection's rule
}

func (s *Stats) count(r result, it *item) {
	switch r.status {
	case domain.OutcomeAccepted:
		s.accepted()
	case domain.OutcomeRejected:
		s.rejected(string(it.cmd.Type) + "." + r.code)
	case "duplicate":
		s.duplicate()
	default:
		return // dead-lettered: counted once its dead letter is kept (PoisonQueue)
	}
	// A duplicate of a command dead-lettered for good goes to the poison
	// queue again: it is seen there, once (DeadLettered).
	if s != nil && s.Observer != nil && r.err == nil {
		s.Observer.Committed(it.cmd.Type, r.status, time.Since(it.received))
	}
}

// commit decides and records one batch in one transaction and returns each
// item's result.
func (p *Pipeline) commit(batch []*item) (results []result, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	// A panic outside the aggregate (in the store, say) fails the batch;
	// splitting it then finds the command that causes it.
	defer func() {
		if v := recover(); v != nil {
			results, err = nil, newPanicError(v)
		}
	}()
	err = p.Store.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		results = make([]result, len(batch))
		var ids, targets []string
		for _, it := range batch {
			if it.parsed {
				ids = append(ids, it.cmd.ID)
			}
			if it.invalid == nil {
				targets = append(targets, it.cmd.TargetSlot())
			}
		}
		stored, err := tx.Processed(ctx, ids)
		if err != nil {
			return err
		}
		src := domain.NewBatchSource(tx)
		if err := src.Prefetch(ctx, targets); err != nil {
			return err
		}
		commits := make([]domain.Commit, 0, len(batch))
		for i, it := range batch {
			c, res, err := p.decide(ctx, it, stored, src)
			if err != nil {
				return err
			}
			if c.Record {
				stored[c.Outcome.CommandID] = domain.Processed{Outcome: c.Outcome, Replays: c.Replays}
			}
			commits = append(commits, c)
			results[i] = res
		}
		return tx.Save(ctx, commits)
	})
	return results, err
}

// decide is one command's turn in its batch: the commit it writes and its
// result. An error fails the whole batch (the store failed while deciding).
func (p *Pipeline) decide(ctx context.Context, it *item, stored map[string]domain.Processed, src *domain.BatchSource) (domain.Commit, result, error) {
	now := p.Now()
	corr := it.corr
	if corr == "" {
		// The command enters the system here without one; the message stays
		// as it came (a dead letter keeps the original metadata).
		corr = uuid.NewString()
	}
	outcome := domain.Outcome{CommandID: it.cmd.ID, CorrelationID: corr, Type: it.cmd.Type, At: now}
	if outcome.CommandID == "" {
		outcome.CommandID = it.msg.UUID // bytes with no command id: the message id stands in
	}

	// Only a valid command is recognised by its id: bytes that fail to parse
	// are not the command whose id they happen to carry.
	if prev, ok := stored[it.cmd.ID]; ok && it.parsed && !prev.Redo(it.replays) {
		// Processed before (or earlier in this batch): the same answer again.
		c := domain.Commit{Outcome: prev.Outcome}
		if prev.Outcome.Status == domain.OutcomeDeadLettered {
			// A redelivery of a command dead-lettered for good: its dead
			// letter is made again (the poison queue keeps one copy), and
			// it is not processed behind the poison queue's back.
			return c, result{status: "duplicate", err: &DeadLetterError{Code: "retries_exhausted", Class: Transient,
				Reason: prev.Outcome.Reason, Attempts: it.attempts + 1, First: it.received, Last: now,
				Err: errors.New(prev.Outcome.Reason)}}, nil
		}
		return c, result{status: "duplicate"}, nil
	}

	if it.invalid == nil {
		decision, err := p.decideSafely(ctx, it.cmd, now, src)
		var rejected *domain.RejectedError
		switch {
		case errors.As(err, &rejected):
			outcome.Status, outcome.Reason = domain.OutcomeRejected, boundReason(rejected.Reason)
			return domain.Commit{Outcome: outcome, Record: true, Replays: it.replays},
				result{status: domain.OutcomeRejected, code: rejected.Code}, nil
		case err != nil && Classify(err) == Permanent:
			it.invalid = deadLetterOf(err, it.attempts+1, now, now)
		case err != nil:
			return domain.Commit{}, result{}, err // the store failed: the whole batch
		default:
			envs, err := p.Factory.Events(decision, corr, now)
			if err != nil {
				it.invalid = deadLetterOf(MarkPermanent(fmt.Errorf("make envelopes for %s %s: %w", it.cmd.Type, it.cmd.ID, err)), it.attempts+1, now, now)
				break
			}
			src.Apply(decision)
			c := domain.Commit{Outcome: outcome, Record: true, Replays: it.replays, Envelopes: envs}
			c.Outcome.Status = domain.OutcomeAccepted
			for _, ch := range decision.Changes {
				c.Slots = append(c.Slots, ch.Slot)
			}
			for _, e := range envs {
				c.Outcome.EventIDs = append(c.Outcome.EventIDs, e.ID)
			}
			return c, result{status: domain.OutcomeAccepted}, nil
		}
	}
	// Dead-lettered: the sender is answered, and a command that could have
	// succeeded (a transient failure) is recorded, so that no later delivery
	// is accepted while its dead letter waits for the operator. Bytes that
	// can never succeed need no record: the same bytes fail the same way,
	// and a corrected command may reuse the id.
	dl := it.invalid
	outcome.Status, outcome.Reason = domain.OutcomeDeadLettered, dl.Reason
	return domain.Commit{Outcome: outcome, Record: it.parsed && dl.Class == Transient, Replays: it.replays},
		result{status: "dead_lettered", err: dl}, nil
}

// decideSafely runs the aggregate, turning a panic into a *PanicError
// naming where it happened (permanent: the same command panics again).
func (p *Pipeline) decideSafely(ctx context.Context, cmd domain.Command, now time.Time, src domain.SlotSource) (d domain.Decision, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return p.Aggregate.Decide(ctx, cmd, now, src)
}

// outage tracks a store outage, so that it is logged once when it begins
// and once when it ends, not at every attempt.
type outage struct {
	mu       sync.Mutex
	since    time.Time
	attempts int
	waiting  int
	touched  time.Time
}

// touchDue says whether the waiting messages are due to be touched.
func (o *outage) touchDue(every time.Duration) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if time.Since(o.touched) < every {
		return false
	}
	o.touched = time.Now()
	return true
}

func (o *outage) begin(logger watermill.LoggerAdapter, err error, n int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts++
	if o.since.IsZero() {
		o.since = time.Now()
		o.waiting = n
		logger.Error("store unavailable: commands wait for it (none is dead-lettered for it)", err,
			watermill.LogFields{"waiting_commands": n})
	}
	return o.attempts
}

func (o *outage) recovered(logger watermill.LoggerAdapter) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return
	}
	logger.Info("store available again; commands flow", watermill.LogFields{
		"outage": time.Since(o.since).Round(time.Millisecond).String(), "attempts": o.attempts})
	o.since, o.attempts, o.waiting, o.touched = time.Time{}, 0, 0, time.Time{}
}
