package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/sqlite"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
	"github.com/emitd/emitd/router"
)

const wait = 30 * time.Second

func TestClassify(t *testing.T) {
	_, invalid := domain.ParseCommand([]byte(`{"type":"Nope","id":"x"}`))
	cases := map[string]struct {
		err  error
		want router.Class
	}{
		"invalid command":  {invalid, router.Permanent},
		"wrapped invalid":  {fmt.Errorf("decide: %w", invalid), router.Permanent},
		"panic":            {&router.PanicError{Value: "boom", Where: "x"}, router.Permanent},
		"marked permanent": {router.MarkPermanent(errors.New("cannot make envelopes")), router.Permanent},
		"store error":      {errors.New("CHECK constraint failed"), router.Transient},
		"timeout":          {fmt.Errorf("commit: %w", context.DeadlineExceeded), router.Transient},
		"conflict":         {fmt.Errorf("slot x: %w", domain.ErrConflict), router.Transient},
	}
	for name, c := range cases {
		if got := router.Classify(c.err); got != c.want {
			t.Errorf("%s: Classify = %s, want %s", name, got, c.want)
		}
	}
	for err, want := range map[error]string{invalid: "unknown_type", &router.PanicError{}: "panic",
		errors.New("CHECK constraint failed"): "retries_exhausted"} {
		if got := router.ReasonCode(err); got != want {
			t.Errorf("ReasonCode(%v) = %s, want %s", err, got, want)
		}
	}
}

// queue is the commands topic of these tests: it hands out every message
// at once, as a broker with a wide in-flight window does, and records what
// the router acknowledged and what it gave back.
type queue struct {
	ch     chan *message.Message
	mu     sync.Mutex
	acked  []string
	nacked []string
	closed bool
}

func newQueue() *queue { return &queue{ch: make(chan *message.Message, 10000)} }

func (q *queue) Subscribe(context.Context, string) (<-chan *message.Message, error) { return q.ch, nil }

func (q *queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	return nil
}

func (q *queue) send(msgs ...*message.Message) {
	for _, m := range msgs {
		go func() {
			select {
			case <-m.Acked():
				q.mu.Lock()
				q.acked = append(q.acked, m.UUID)
				q.mu.Unlock()
			case <-m.Nacked():
				q.mu.Lock()
				q.nacked = append(q.nacked, m.UUID)
				q.mu.Unlock()
			}
		}()
		q.ch <- m
	}
}

func (q *queue) counts() (acked, nacked int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.acked), len(q.nacked)
}

// countingStore is the real store, counting its batches, with faults the
// test switches: an outage (every batch fails as an unreachable database
// does), and a command the store refuses to record.
type countingStore struct {
	domain.Store
	batches atomic.Int64
	mu      sync.Mutex
	down    bool
	refuse  string // command id whose acceptance the store refuses
	failed  atomic.Int64
}

func (s *countingStore) setDown(v bool) { s.mu.Lock(); s.down = v; s.mu.Unlock() }

func (s *countingStore) Batch(ctx context.Context, fn func(context.Context, domain.Tx) error) error {
	s.batches.Add(1)
	s.mu.Lock()
	down, refuse := s.down, s.refuse
	s.mu.Unlock()
	if down {
		s.failed.Add(1)
		return fmt.Errorf("%w: connection refused", domain.ErrUnavailable)
	}
	return s.Store.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		return fn(ctx, refusingTx{Tx: tx, refuse: refuse, failed: &s.failed})
	})
}

type refusingTx struct {
	domain.Tx
	refuse string
	failed *atomic.Int64
}

func (t refusingTx) Save(ctx context.Context, commits []domain.Commit) error {
	for _, c := range commits {
		if t.refuse != "" && c.Outcome.CommandID == t.refuse && c.Outcome.Status == domain.OutcomeAccepted {
			t.failed.Add(1)
			return errors.New("CHECK constraint failed: refused")
		}
	}
	return t.Tx.Save(ctx, commits)
}

type harness struct {
	q      *queue
	store  *sqlite.Store
	counts *countingStore
	dlq    <-chan *message.Message
	pipe   *router.Pipeline
	r      *message.Router
	stop   func()
}

type options struct {
	maxBatch int
	maxBytes int
	agg      domain.Aggregate
	retries  int
	dlqPub   message.Publisher // default: an in-memory topic
}

func start(t *testing.T, o options) *harness {
	t.Helper()
	store, err := sqlite.Open(t.TempDir(), sqlite.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &harness{q: newQueue(), store: store, counts: &countingStore{Store: store}}
	if o.maxBatch == 0 {
		o.maxBatch = 1000
	}
	if o.retries == 0 {
		o.retries = 2
	}
	retry := router.RetryPolicy{MaxRetries: o.retries, InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond, MaxElapsed: wait}
	h.pipe = &router.Pipeline{
		Store: h.counts, Aggregate: o.agg,
		Factory:  domain.EnvelopeFactory{Meta: domain.DefaultMetadata(), DomainBus: "reservation", AnalyticsBus: "analytics"},
		Now:      func() time.Time { return time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC) },
		MaxBatch: o.maxBatch, MaxInFlight: 10000, MaxBytes: o.maxBytes, Timeout: 5 * time.Second, Retry: retry,
		Ping: store.Ping,
	}
	dlqPub := o.dlqPub
	if dlqPub == nil {
		ch := gochannel.NewGoChannel(gochannel.Config{Persistent: true, OutputChannelBuffer: 10000}, nil)
		t.Cleanup(func() { ch.Close() })
		if h.dlq, err = ch.Subscribe(context.Background(), "dlq"); err != nil {
			t.Fatal(err)
		}
		dlqPub = ch
	}
	stopping := make(chan struct{})
	pq := router.NewPoisonQueue(router.PoisonQueue{Publisher: dlqPub, Topic: "dlq", Store: store, Instance: "test",
		Retry: retry, Timeout: time.Second, Stopping: stopping})
	r, _, err := router.New("commands", h.q, h.pipe, pq, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Running()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			close(stopping)
			if err := r.Close(); err != nil {
				t.Errorf("close router: %v", err)
			}
			<-done
		})
	}
	t.Cleanup(h.stop)
	return h
}

func command(typ string, data any) *message.Message {
	id := uuid.NewString()
	b, _ := json.Marshal(map[string]any{"type": typ, "id": id, "data": data})
	return message.NewMessage(id, b)
}

func createOne(day, hour int) *message.Message {
	return command("CreateSlots", map[string]any{"date": fmt.Sprintf("2030-01-%02d", day), "startHour": hour, "count": 1})
}

// outcomes waits until n outcomes are in the outcome outbox and returns
// them by command id, and in commit order.
func (h *harness) outcomes(t *testing.T, n int) (map[string]domain.Outcome, []domain.Outcome) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		recs, err := h.store.PendingOutcomes(context.Background(), 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= n {
			by := map[string]domain.Outcome{}
			var order []domain.Outcome
			for _, r := range recs {
				var o domain.Outcome
				if err := json.Unmarshal(r.Payload, &o); err != nil {
					t.Fatal(err)
				}
				by[o.CommandID] = o
				order = append(order, o)
			}
			return by, order
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outcomes, want %d", len(recs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) waitAcked(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if a, _ := h.q.counts(); a >= n {
			return
		}
		if time.Now().After(deadline) {
			a, nk := h.q.counts()
			t.Fatalf("%d acked, %d nacked; want %d acked", a, nk, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) deadLetter(t *testing.T) *message.Message {
	t.Helper()
	select {
	case m := <-h.dlq:
		m.Ack()
		return m
	case <-time.After(wait):
		t.Fatal("no dead letter")
	}
	return nil
}

// Commands taken together are decided and committed many per transaction.
func TestGroupCommit(t *testing.T) {
	h := start(t, options{maxBatch: 100})
	var msgs []*message.Message
	for i := range 600 {
		msgs = append(msgs, createOne(1+i/24, i%24))
	}
	h.q.send(msgs...)
	by, _ := h.outcomes(t, 600)
	for _, m := range msgs {
		if o := by[m.UUID]; o.Status != domain.OutcomeAccepted || len(o.EventIDs) != 2 {
			t.Fatalf("command %s: %+v", m.UUID, o)
		}
	}
	h.waitAcked(t, 600)
	if n := h.counts.batches.Load(); n > 60 || n < 6 {
		t.Errorf("%d store transactions for 600 commands with batches of at most 100; want between 6 and 60", n)
	}
	if recs, _ := h.store.PendingEnvelopes(context.Background(), 0, 10000); len(recs) != 1200 {
		t.Errorf("%d envelopes in the outbox, want 1200", len(recs))
	}
}

// Two commands for one slot are decided in the order they were queued, also
// inside one batch: each sees what the one before it did.
func TestOneSlotInOrderInsideABatch(t *testing.T) {
	h := start(t, options{})
	h.q.send(createOne(1, 9))
	_, order := h.outcomes(t, 1)
	recs, _ := h.store.PendingEnvelopes(context.Background(), 0, 10)
	slotID := recs[0].Envelope.SlotID
	if order[0].Status != domain.OutcomeAccepted || slotID == "" {
		t.Fatalf("create: %+v", order)
	}
	before := h.counts.batches.Load()

	ref := map[string]any{"slotId": slotID}
	steps := []struct {
		msg    *message.Message
		status string
	}{
		{command("ReserveSlot", map[string]any{"slotId": slotID, "hostName": "Sam Person"}), domain.OutcomeAccepted},
		{command("ReserveSlot", map[string]any{"slotId": slotID, "hostName": "Alex Other"}), domain.OutcomeRejected},
		{command("CheckIn", ref), domain.OutcomeAccepted},
		{command("CheckOut", ref), domain.OutcomeAccepted},
		{command("CheckOut", ref), domain.OutcomeRejected},
		{command("ReserveSlot", map[string]any{"slotId": slotID, "hostName": "Alex Other"}), domain.OutcomeAccepted},
		{command("CancelSlot", ref), domain.OutcomeAccepted},
	}
	// Queued together, before the pipeline takes any: one batch.
	h.pipe.MaxBatch = len(steps)
	var msgs []*message.Message
	for _, s := range steps {
		msgs = append(msgs, s.msg)
	}
	h.q.send(msgs...)
	by, _ := h.outcomes(t, 1+len(steps))
	for i, s := range steps {
		if o := by[s.msg.UUID]; o.Status != s.status {
			t.Errorf("step %d: %s (%s), want %s", i, o.Status, o.Reason, s.status)
		}
	}
	if n := h.counts.batches.Load() - before; n > 2 {
		t.Logf("%d transactions for the %d steps (the pipeline took them as they came)", n, len(steps))
	}
	recs, _ = h.store.PendingEnvelopes(context.Background(), 0, 100)
	var events []string
	for _, r := range recs {
		if r.Envelope.EventBusName == "reservation" {
			events = append(events, string(r.Envelope.Event))
		}
	}
	if got := strings.Join(events, ","); got != "CREATED,RESERVED,CHECKED_IN,CHECKED_OUT,RESERVED,CANCELLED" {
		t.Errorf("events %s", got)
	}
}

// A command that fails (here: the store refuses to record it) does not take
// its batch down: the others commit, it alone is retried, then
// dead-lettered and recorded, so a redelivery is not accepted later.
func TestAFailingCommandDoesNotTakeItsBatchDown(t *testing.T) {
	h := start(t, options{retries: 2})
	var msgs []*message.Message
	for i := range 40 {
		msgs = append(msgs, createOne(1, i%24))
	}
	bad := msgs[17]
	h.counts.mu.Lock()
	h.counts.refuse = bad.UUID
	h.counts.mu.Unlock()
	h.q.send(msgs...)
	by, _ := h.outcomes(t, 40)
	for _, m := range msgs {
		want := domain.OutcomeAccepted
		if m == bad {
			want = domain.OutcomeDeadLettered
		}
		if o := by[m.UUID]; o.Status != want {
			t.Errorf("command %s: %s, want %s", m.UUID, o.Status, want)
		}
	}
	if o := by[bad.UUID]; !strings.Contains(o.Reason, "retries exhausted after 3 attempts") || !strings.Contains(o.Reason, "refused") {
		t.Errorf("reason %q", o.Reason)
	}
	dl := h.deadLetter(t)
	if dl.UUID != bad.UUID || string(dl.Payload) != string(bad.Payload) || dl.Metadata.Get(publisher.DLQClass) != "transient" ||
		dl.Metadata.Get(publisher.DLQAttempts) != "3" {
		t.Errorf("dead letter %s %v", dl.UUID, dl.Metadata)
	}
	h.waitAcked(t, 40)

	// The same message again, now that the store would take it: it was
	// dead-lettered, so it is not accepted behind the poison queue's back.
	h.counts.mu.Lock()
	h.counts.refuse = ""
	h.counts.mu.Unlock()
	again := message.NewMessage(bad.UUID, bad.Payload)
	h.q.send(again)
	_, order := h.outcomes(t, 41)
	if last := order[40]; last.CommandID != bad.UUID || last.Status != domain.OutcomeDeadLettered {
		t.Errorf("redelivered dead letter: %+v, want the dead-lettered answer again", last)
	}
	if dl := h.deadLetter(t); dl.UUID != bad.UUID {
		t.Errorf("redelivery's dead letter %s", dl.UUID)
	}
	// An operator's replay (a higher replay count) is processed.
	replayed := message.NewMessage(uuid.NewString(), bad.Payload)
	replayed.Metadata.Set(publisher.DLQReplays, "1")
	h.q.send(replayed)
	_, order = h.outcomes(t, 42)
	if last := order[41]; last.CommandID != bad.UUID || last.Status != domain.OutcomeAccepted {
		t.Errorf("replayed command: %+v, want accepted", last)
	}
}

// While the store is unavailable, commands wait in order; none is
// dead-lettered; they flow when it is back.
func TestAStoreOutageDeadLettersNothing(t *testing.T) {
	h := start(t, options{retries: 1})
	h.q.send(createOne(1, 9))
	h.outcomes(t, 1)
	recs, _ := h.store.PendingEnvelopes(context.Background(), 0, 10)
	slotID := recs[0].Envelope.SlotID

	h.counts.setDown(true)
	reserve := command("ReserveSlot", map[string]any{"slotId": slotID, "hostName": "Sam Person"})
	checkIn := command("CheckIn", map[string]any{"slotId": slotID})
	h.q.send(reserve, checkIn)
	for h.counts.failed.Load() < 5 { // well past maxRetries: it waits anyway
		time.Sleep(5 * time.Millisecond)
	}
	if _, n := h.q.counts(); n != 0 {
		t.Fatalf("%d commands given back during the outage", n)
	}
	h.counts.setDown(false)
	by, _ := h.outcomes(t, 3)
	if by[reserve.UUID].Status != domain.OutcomeAccepted || by[checkIn.UUID].Status != domain.OutcomeAccepted {
		t.Fatalf("after the outage: reserve %+v, check-in %+v", by[reserve.UUID], by[checkIn.UUID])
	}
	select {
	case m := <-h.dlq:
		t.Fatalf("dead-lettered during an outage: %s", m.Payload)
	case <-time.After(100 * time.Millisecond):
	}
}

// While the store is away, the messages waiting are reported in progress
// to their broker, so that none is redelivered behind the ones that wait.
func TestAnOutageKeepsTheBrokerWaiting(t *testing.T) {
	h := start(t, options{})
	h.counts.setDown(true)
	var touched atomic.Int64
	var msgs []*message.Message
	for i := range 3 {
		m := createOne(6, i)
		m.SetContext(publisher.WithInProgress(context.Background(), func() { touched.Add(1) }))
		msgs = append(msgs, m)
	}
	h.q.send(msgs...)
	deadline := time.Now().Add(wait)
	for touched.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d in-progress signals during the outage, want one per waiting message", touched.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.counts.setDown(false)
	h.outcomes(t, 3)
}

// A panic while deciding dead-letters that command alone, naming where.
func TestAPanicDeadLettersOnlyItsCommand(t *testing.T) {
	var calls atomic.Int64
	agg := domain.Aggregate{NewID: func() string {
		if calls.Add(1) == 3 {
			var m map[string]int
			m["x"]++
		}
		return uuid.NewString()
	}}
	h := start(t, options{agg: agg})
	var msgs []*message.Message
	for i := range 5 {
		msgs = append(msgs, createOne(2, i))
	}
	h.q.send(msgs...)
	by, _ := h.outcomes(t, 5)
	dead := 0
	for _, m := range msgs {
		switch o := by[m.UUID]; o.Status {
		case domain.OutcomeDeadLettered:
			dead++
			if !strings.Contains(o.Reason, "handler panic: assignment to entry in nil map at ") || !strings.Contains(o.Reason, "router_test.go") {
				t.Errorf("panic reason %q does not say where", o.Reason)
			}
		case domain.OutcomeAccepted:
		default:
			t.Errorf("command %s: %+v", m.UUID, o)
		}
	}
	if dead != 1 {
		t.Errorf("%d dead-lettered, want the one that panicked", dead)
	}
	if dl := h.deadLetter(t); dl.Metadata.Get(publisher.DLQClass) != "permanent" {
		t.Errorf("dead letter class %q", dl.Metadata.Get(publisher.DLQClass))
	}
}

// A command over commands.maxBytes is dead-lettered before anything reads
// it; the reason gives both sizes, and the sender is answered under the
// message id (nothing read the command's own id).
func TestTooLargeIsDeadLetteredUnread(t *testing.T) {
	h := start(t, options{maxBytes: 200})
	big := command("ReserveSlot", map[string]any{"slotId": uuid.NewString(), "hostName": strings.Repeat("x", 300)})
	ok := createOne(3, 9)
	h.q.send(big, ok)
	by, _ := h.outcomes(t, 2)
	if o := by[big.UUID]; o.Status != domain.OutcomeDeadLettered || !strings.Contains(o.Reason, fmt.Sprintf("command is %d bytes, over the limit of 200 (commands.maxBytes)", len(big.Payload))) {
		t.Errorf("too large: %+v", o)
	}
	if by[ok.UUID].Status != domain.OutcomeAccepted {
		t.Errorf("the command beside it: %+v", by[ok.UUID])
	}
	if dl := h.deadLetter(t); string(dl.Payload) != string(big.Payload) {
		t.Errorf("dead letter payload changed")
	}
}

// The same command twice in one batch is processed once.
func TestDuplicateInOneBatch(t *testing.T) {
	h := start(t, options{})
	m := createOne(4, 9)
	h.q.send(m, message.NewMessage(uuid.NewString(), m.Payload))
	_, order := h.outcomes(t, 2)
	if order[0].Status != domain.OutcomeAccepted || order[1].Status != domain.OutcomeAccepted || order[0].CommandID != order[1].CommandID ||
		fmt.Sprint(order[0].EventIDs) != fmt.Sprint(order[1].EventIDs) {
		t.Errorf("outcomes %+v: want the same answer twice", order)
	}
	if recs, _ := h.store.PendingEnvelopes(context.Background(), 0, 10); len(recs) != 2 {
		t.Errorf("%d envelopes, want one command's 2", len(recs))
	}
}

// At shutdown, commands waiting for the store are left for redelivery:
// given back, not acknowledged, not dead-lettered.
func TestStopLeavesWaitingCommandsForRedelivery(t *testing.T) {
	h := start(t, options{})
	h.counts.setDown(true)
	var msgs []*message.Message
	for i := range 20 {
		msgs = append(msgs, createOne(5, i))
	}
	h.q.send(msgs...)
	for h.counts.failed.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	h.stop()
	time.Sleep(50 * time.Millisecond) // for the queue to record the last nacks
	acked, nacked := h.q.counts()
	if untaken := len(h.q.ch); acked != 0 || nacked+untaken != 20 || nacked == 0 {
		t.Errorf("after stop: %d acked, %d given back, %d never taken; want none acked, the others given back or left", acked, nacked, untaken)
	}
	select {
	case m := <-h.dlq:
		t.Errorf("dead-lettered at shutdown: %s", m.Payload)
	default:
	}
}

// A dead letter the poison topic refuses is kept whole in the store, and
// the command is acknowledged: it never loops.
func TestDeadLetterThePoisonTopicRefusesIsKeptInTheStore(t *testing.T) {
	closed := gochannel.NewGoChannel(gochannel.Config{}, nil)
	closed.Close() // every publish fails
	h := start(t, options{dlqPub: closed})
	bad := message.NewMessage(uuid.NewString(), []byte(`not json`))
	bad.Metadata.Set("sender", "billing")
	h.q.send(bad)
	h.waitAcked(t, 1)
	dls, err := h.store.DeadLetters(context.Background(), publisher.DeadLetterFilter{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters in the store: %v, %v", dls, err)
	}
	if d := dls[0]; d.ID != bad.UUID || string(d.Payload) != "not json" || d.Metadata["sender"] != "billing" ||
		d.Origin != "commands" || !strings.Contains(d.Reason, "not valid JSON") || d.Digest != publisher.Digest([]byte("not json")) {
		t.Errorf("dead letter %+v", d)
	}
	if _, n := h.q.counts(); n != 0 {
		t.Errorf("%d nacks: a dead letter that fits the store must not loop", n)
	}
}
