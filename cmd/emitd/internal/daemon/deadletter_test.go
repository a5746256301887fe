package daemon_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	_ "modernc.org/sqlite"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/cmd/emitd/internal/daemon"
	"github.com/emitd/emitd/cmd/emitd/internal/ops"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// setup is one broker configuration the dead-letter tests run on.
type setup struct {
	name string
	cfg  *configs.Config
	// browse: the commands topic can be read without taking messages from
	// the daemon (not so on SQS, where a receive hides the message).
	browse bool
	eb     *ebtest.Server // events go to EventBridge
}

func loadShipped(t *testing.T, file string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load(filepath.Join("..", "..", "..", "..", "configs", file))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Router.Retry.InitialInterval = 10 * time.Millisecond
	cfg.Router.Retry.MaxInterval = 50 * time.Millisecond
	cfg.Relay.PollInterval = 50 * time.Millisecond
	off, no := "", false // see testConfig
	cfg.HTTP.Listen, cfg.Schedule.Enabled = &off, &no
	return cfg
}

// setups: the embedded broker, Kafka (kfake), SQS (fauxqs) with EventBridge
// (ebtest): configs/embedded.yaml, kafka.yaml and aws.yaml as shipped, with
// addresses and timings for a test.
var setups = map[string]func(t *testing.T) *setup{
	"embedded": func(t *testing.T) *setup {
		return &setup{name: "embedded", cfg: testConfig(t), browse: true}
	},
	"kafka": func(t *testing.T) *setup {
		cfg := loadShipped(t, "kafka.yaml")
		kafka.SectionOf(cfg).Brokers = kafkatest.Start(t)
		return &setup{name: "kafka", cfg: cfg, browse: true}
	},
	"sqs": func(t *testing.T) *setup {
		endpoint := awstest.StartFauxqs(t)
		eb := ebtest.New(ebtest.Options{Buses: []string{"reservation", "analytics"}, RejectUnknownBus: true})
		t.Cleanup(eb.Close)
		awstest.SetEnv(t, map[string]string{"AWS_ENDPOINT_URL_SQS": endpoint, "AWS_ENDPOINT_URL_EVENTBRIDGE": eb.URL})
		cfg := loadShipped(t, "aws.yaml")
		// A nacked SQS message comes back when its visibility ends: keep it short.
		cfg.Router.HandlerTimeout = time.Second
		cfg.Router.Retry.MaxElapsed = 4 * time.Second
		sqs.SectionOf(cfg).VisibilityTimeout = 9 * time.Second // maxElapsed + the 5s margin
		sqs.SectionOf(cfg).ReceiveWaitTime = time.Second
		return &setup{name: "sqs", cfg: cfg, eb: eb}
	},
}

func eachSetup(t *testing.T, test func(t *testing.T, s *setup)) {
	for _, name := range []string{"embedded", "kafka", "sqs"} {
		t.Run(name, func(t *testing.T) { test(t, setups[name](t)) })
	}
}

// faultyStore is the real store with faults switched on and off by the test.
type faultyStore struct {
	domain.Store
	mu        sync.Mutex
	down      bool // every batch fails as an unreachable database does: commands wait
	refuse    bool // the store refuses to record any accepted command: it is that command's fault
	batches   atomic.Int64
	failures  atomic.Int64 // batches that failed by a fault
	panicOn   string       // reading this slot panics (a real bug: a write to a nil map)
	accepting atomic.Int64 // batches that committed an accepted command
}

func (f *faultyStore) set(down, refuse bool) {
	f.mu.Lock()
	f.down, f.refuse = down, refuse
	f.mu.Unlock()
}

func (f *faultyStore) faults() (down, refuse bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down, f.refuse
}

func (f *faultyStore) Batch(ctx context.Context, fn func(context.Context, domain.Tx) error) error {
	f.batches.Add(1)
	if down, _ := f.faults(); down {
		f.failures.Add(1)
		return fmt.Errorf("%w: dial tcp 127.0.0.1:5432: connection refused", domain.ErrUnavailable)
	}
	accepted := false
	err := f.Store.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		return fn(ctx, faultyTx{Tx: tx, f: f, accepted: &accepted})
	})
	if err == nil && accepted {
		f.accepting.Add(1)
	}
	return err
}

type faultyTx struct {
	domain.Tx
	f        *faultyStore
	accepted *bool
}

func (t faultyTx) Slots(ctx context.Context, ids []string) (map[string]domain.Slot, error) {
	if slices.Contains(ids, t.f.panicOn) {
		var m map[string]int
		m["boom"]++
	}
	return t.Tx.Slots(ctx, ids)
}

func (t faultyTx) Save(ctx context.Context, commits []domain.Commit) error {
	for _, c := range commits {
		if c.Record && c.Outcome.Status == domain.OutcomeAccepted {
			if _, refuse := t.f.faults(); refuse {
				t.f.failures.Add(1)
				return errors.New("CHECK constraint failed: the store refuses this command")
			}
			*t.accepted = true
		}
	}
	return t.Tx.Save(ctx, commits)
}

func withFaults(f *faultyStore) daemon.Option {
	return daemon.WithStoreWrapper(func(s domain.Store) domain.Store { f.Store = s; return f })
}

// operator is what `emitd dlq` and `emitd replay` do, in-process.
func operator(t *testing.T, cfg *configs.Config) *ops.Ops {
	t.Helper()
	o, err := ops.Open(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// deadLetters syncs the poison queue until n dead letters are in the store.
func deadLetters(t *testing.T, o *ops.Ops, n int) []publisher.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if _, err := o.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		dls, err := o.Store.DeadLetters(context.Background(), publisher.DeadLetterFilter{Kind: publisher.KindCommand})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) >= n {
			return dls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want %d", len(dls), n)
		}
	}
}

func replay(t *testing.T, o *ops.Ops, dryRun bool, f publisher.DeadLetterFilter) publisher.Summary {
	t.Helper()
	r, err := o.Replayer(context.Background(), 3, dryRun)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Replay(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestPermanentFailuresGoToTheDLQAtOnce: every permanent class lands in the
// poison queue on the first attempt, with its reason, bytes unchanged, while
// the valid commands beside it are processed.
func TestPermanentFailuresGoToTheDLQAtOnce(t *testing.T) {
	eachSetup(t, func(t *testing.T, s *setup) {
		faults := &faultyStore{panicOn: uuid.NewString()}
		r := start(t, s.cfg, withFaults(faults))
		results := r.read(t, s.cfg.Commands.ResultsTopic)
		o := operator(t, s.cfg)

		poison := map[string]string{ // payload -> what the reason must say
			`not json at all`: "not valid JSON",
			`{"type":"DeleteEverything","id":"` + uuid.NewString() + `"}`:                                   "unknown command type",
			`{"type":"CreateSlots","id":"` + uuid.NewString() + `","data":{"startHour":25}}`:                "data.startHour",
			`{"type":"CreateSlots","id":"` + uuid.NewString() + `","version":2}`:                            "version",
			`{"type":"CheckIn","id":"` + uuid.NewString() + `","data":{"slotId":"` + faults.panicOn + `"}}`: "handler panic: assignment to entry in nil map at ",
		}
		var msgs []*message.Message
		var valid []string
		for payload := range poison {
			id := uuid.NewString()
			valid = append(valid, id)
			msgs = append(msgs, message.NewMessage(uuid.NewString(), []byte(payload)),
				message.NewMessage(id, []byte(`{"type":"CreateSlots","id":"`+id+`","data":{"date":"2026-12-03","count":1}}`)))
		}
		r.sendRaw(t, msgs...)

		got := outcomes(t, results.waitN(t, "outcomes", len(valid)+len(poison))) // poison is answered too
		for _, id := range valid {
			if got[id].Status != domain.OutcomeAccepted {
				t.Errorf("valid command %s beside poison: %+v", id, got[id])
			}
		}
		seen := map[string]int{}
		for _, d := range deadLetters(t, o, len(poison)) {
			seen[string(d.Payload)]++
			want, ok := poison[string(d.Payload)]
			switch {
			case !ok:
				t.Errorf("dead letter payload %q was never sent (bytes changed?)", d.Payload)
			case !strings.Contains(d.Reason, want):
				t.Errorf("payload %q: reason %q does not say %q", d.Payload, d.Reason, want)
			case d.Class != "permanent" || d.Attempts != 1 || d.Origin != s.cfg.Commands.Topic || d.Digest != publisher.Digest(d.Payload):
				t.Errorf("payload %q: class %s, attempts %d, origin %s, digest ok %v", d.Payload, d.Class, d.Attempts, d.Origin, d.Digest == publisher.Digest(d.Payload))
			}
			if strings.Contains(d.Reason, "panic") && !strings.Contains(d.Reason, "faultyTx.Slots") {
				t.Errorf("panic reason does not say where: %q", d.Reason)
			}
		}
		for payload := range poison {
			if seen[payload] != 1 {
				t.Errorf("payload %q dead-lettered %d times, want once", payload, seen[payload])
			}
		}
	})
}

// TestTransientFailureRetriedDeadLetteredAndReplayedOnce: a command the
// store keeps refusing, while it answers, is retried up to the bound, then
// dead-lettered as "retries exhausted", and recorded so, so that no later
// delivery of it is accepted behind the poison queue's back. A dry run
// changes nothing. Once the store takes it, replay processes the command
// exactly once, with the original bytes.
func TestTransientFailureRetriedDeadLetteredAndReplayedOnce(t *testing.T) {
	eachSetup(t, func(t *testing.T, s *setup) {
		s.cfg.Router.Retry.MaxRetries = ptr(3)
		faults := &faultyStore{}
		faults.set(false, true)
		r := start(t, s.cfg, withFaults(faults))
		results := r.read(t, s.cfg.Commands.ResultsTopic)
		o := operator(t, s.cfg)

		payload := `{"type":"CreateSlots","id":"` + uuid.NewString() + `","data":{"date":"2026-12-06","count":1}}`
		orig := message.NewMessage(uuid.NewString(), []byte(payload))
		orig.Metadata.Set(publisher.MetaCorrelationID, "corr-"+s.name)
		orig.Metadata.Set("sender", "billing-service")
		r.sendRaw(t, orig)

		dls := deadLetters(t, o, 1)
		d := dls[0]
		if d.Class != "transient" || d.Attempts != 4 || !strings.Contains(d.Reason, "retries exhausted after 4 attempts") ||
			!strings.Contains(d.Reason, "the store refuses this command") || faults.failures.Load() != 4 {
			t.Fatalf("dead letter %+v after %d store failures; want transient, 4 attempts (1 + maxRetries 3)", d, faults.failures.Load())
		}
		if string(d.Payload) != payload || d.Metadata["sender"] != "billing-service" || d.Metadata[publisher.MetaCorrelationID] != "corr-"+s.name {
			t.Fatalf("dead letter lost the original bytes or metadata: %q %v", d.Payload, d.Metadata)
		}

		dry := replay(t, o, true, publisher.DeadLetterFilter{})
		if dry.Replayed != 1 || dry.Results[0].Action != "would-replay" {
			t.Fatalf("dry run: %+v", dry)
		}
		batches := faults.batches.Load()
		time.Sleep(200 * time.Millisecond)
		if left, _ := o.Store.DeadLetters(context.Background(), publisher.DeadLetterFilter{}); len(left) != 1 || faults.batches.Load() != batches {
			t.Fatalf("dry run changed something: %d dead letters, %d batches (were %d)", len(left), faults.batches.Load(), batches)
		}

		faults.set(false, false) // the operator fixed the store
		sum := replay(t, o, false, publisher.DeadLetterFilter{Reason: "retries exhausted"})
		if sum.Replayed != 1 || sum.Failed != 0 {
			t.Fatalf("replay: %+v", sum)
		}
		// The sender heard "dead-lettered", then, after the replay, "accepted".
		answers := results.waitN(t, "outcomes", 2)
		var statuses []string
		for _, m := range answers {
			for id, oc := range outcomes(t, []*message.Message{m}) {
				if !strings.Contains(payload, id) || oc.CorrelationID != "corr-"+s.name {
					t.Fatalf("outcome %+v is not the command's", oc)
				}
				statuses = append(statuses, oc.Status)
			}
		}
		slices.Sort(statuses) // SQS keeps no order
		if fmt.Sprint(statuses) != fmt.Sprint([]string{domain.OutcomeAccepted, domain.OutcomeDeadLettered}) {
			t.Fatalf("outcomes %v, want one dead-lettered and, after the replay, one accepted", statuses)
		}
		if left := deadLetters(t, o, 0); len(left) != 0 {
			t.Fatalf("%d dead letters after replay", len(left))
		}
		if n := faults.accepting.Load(); n != 1 {
			t.Fatalf("%d batches accepted the command, want exactly 1", n)
		}
		if s.browse { // what went back is what was sent, byte for byte
			// (Kafka orders per partition only: find the replay by its counter.)
			cmds := r.read(t, s.cfg.Commands.Topic).waitN(t, "commands", 2)
			var again *message.Message
			for _, m := range cmds {
				if m.Metadata.Get(publisher.DLQReplays) == "1" {
					again = m
				}
			}
			if again == nil || string(again.Payload) != payload || again.Metadata.Get("sender") != "billing-service" ||
				again.Metadata.Get(publisher.MetaCorrelationID) != "corr-"+s.name || again.Metadata.Get(publisher.DLQReason) != "" {
				t.Fatalf("replayed message not found, or not the original bytes and metadata: %v", again)
			}
		}
	})
}

// TestReplayRefusesTamperedAndStopsLoops: a dead letter whose payload no
// longer matches its digest is refused; a command that keeps failing is
// replayed three times and the fourth replay is refused by the loop guard.
func TestReplayRefusesTamperedAndStopsLoops(t *testing.T) {
	eachSetup(t, func(t *testing.T, s *setup) {
		s.cfg.Router.Retry.MaxRetries = ptr(1)
		faults := &faultyStore{}
		faults.set(false, true) // never fixed
		r := start(t, s.cfg, withFaults(faults))
		o := operator(t, s.cfg)
		r.send(t, create("2026-12-07", 9, 1))

		for round := 0; round <= 3; round++ {
			dls := deadLetters(t, o, 1)
			if len(dls) != 1 || dls[0].Replays != round {
				t.Fatalf("round %d: dead letters %+v", round, dls)
			}
			sum := replay(t, o, false, publisher.DeadLetterFilter{})
			if round < 3 && sum.Replayed != 1 {
				t.Fatalf("replay %d: %+v", round+1, sum)
			}
			if round == 3 && (sum.Skipped != 1 || !strings.Contains(sum.Results[0].Why, "replayed 3 times already")) {
				t.Fatalf("fourth replay was not stopped: %+v", sum)
			}
		}

		// Tamper with the payload in the store: replay must refuse it.
		dls := deadLetters(t, o, 1)
		db, err := sql.Open("sqlite", filepath.Join(s.cfg.DataDir, "emitd.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`UPDATE dead_letters SET payload = ?, replays = 0 WHERE id = ?`,
			strings.Replace(string(dls[0].Payload), "2026-12-07", "2026-12-08", 1), dls[0].ID); err != nil {
			t.Fatal(err)
		}
		sum := replay(t, o, false, publisher.DeadLetterFilter{IDs: []string{dls[0].ID}})
		if sum.Skipped != 1 || !strings.Contains(sum.Results[0].Why, "does not match its digest") {
			t.Fatalf("tampered dead letter: %+v", sum)
		}
	})
}

// TestInFlightAtShutdownIsRedeliveredNotDeadLettered: a command waiting for
// the store when the daemon stops is left for redelivery, and after a
// restart it is processed once; nothing reaches the poison queue.
func TestInFlightAtShutdownIsRedeliveredNotDeadLettered(t *testing.T) {
	eachSetup(t, func(t *testing.T, s *setup) {
		faults := &faultyStore{}
		faults.set(true, false)
		r := start(t, s.cfg, withFaults(faults))
		ids := r.send(t, create("2026-12-09", 9, 1))
		for faults.failures.Load() < 2 { // it is waiting for the store: in flight
			time.Sleep(10 * time.Millisecond)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}

		r2 := start(t, s.cfg) // healthy store
		results := r2.read(t, s.cfg.Commands.ResultsTopic)
		got := outcomes(t, results.waitN(t, "outcomes", 1))
		if got[ids[0]].Status != domain.OutcomeAccepted {
			t.Fatalf("after restart: %+v", got)
		}
		if dls := deadLetters(t, operator(t, s.cfg), 0); len(dls) != 0 {
			t.Fatalf("in-flight command was dead-lettered: %+v", dls)
		}
	})
}

// TestRefusedEventIsDeadLetteredAndReplayedToItsBus: EventBridge refuses one
// event for good; it lands in the event dead letters with its exact bytes,
// the events after it still reach the bus, and `replay --kind event` puts it
// on its original bus once EventBridge accepts it.
func TestRefusedEventIsDeadLetteredAndReplayedToItsBus(t *testing.T) {
	s := setups["sqs"](t)
	r := start(t, s.cfg)
	results := r.read(t, s.cfg.Commands.ResultsTopic)
	s.eb.FailEntriesIf("InvalidArgument", func(e ebtest.Entry) bool {
		return e.Bus == "reservation" && e.DetailType == "Created" && strings.Contains(e.Detail, `"startTime":"2026-12-10T07:00:00.000Z"`)
	})
	r.send(t, create("2026-12-10", 6, 3))
	results.waitN(t, "outcomes", 1)
	o := operator(t, s.cfg)

	var dl publisher.DeadLetter
	deadline := time.Now().Add(wait)
	for {
		dls, err := o.Store.DeadLetters(context.Background(), publisher.DeadLetterFilter{Kind: publisher.KindEvent})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == 1 {
			dl = dls[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d event dead letters", len(dls))
		}
		time.Sleep(20 * time.Millisecond)
	}
	env, err := publisher.FromMessage(message.NewMessage(dl.ID, dl.Payload))
	if err != nil || dl.Origin != "reservation" || !strings.Contains(dl.Reason, "InvalidArgument") || !strings.Contains(env.Detail, "2026-12-10T07:00:00.000Z") {
		t.Fatalf("event dead letter %+v: %v", dl, err)
	}
	// The other two Created events and all three analytics copies flowed on.
	waitAccepted(t, s.eb, 5)

	s.eb.ClearFaults()
	sum := replay(t, o, false, publisher.DeadLetterFilter{Kind: publisher.KindEvent})
	if sum.Replayed != 1 {
		t.Fatalf("replay: %+v", sum)
	}
	acc := waitAccepted(t, s.eb, 6)
	last := acc[len(acc)-1]
	if last.Bus != "reservation" || last.Detail != env.Detail || last.Source != env.Source || last.DetailType != env.DetailType {
		t.Fatalf("replayed entry %+v, want the dead letter's exact entry", last)
	}
	if left, _ := o.Store.DeadLetters(context.Background(), publisher.DeadLetterFilter{}); len(left) != 0 {
		t.Fatalf("%d dead letters left", len(left))
	}
}

func waitAccepted(t *testing.T, srv *ebtest.Server, n int) []ebtest.Entry {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		acc := srv.Accepted()
		if len(acc) >= n {
			return acc
		}
		if time.Now().After(deadline) {
			t.Fatalf("EventBridge accepted %d entries, want %d", len(acc), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ptr(n int) *int { return &n }

// slowStore takes its time to commit, like a store under load.
type slowStore struct {
	domain.Store
	entered chan struct{}
	once    sync.Once
}

func (s *slowStore) Batch(ctx context.Context, fn func(context.Context, domain.Tx) error) error {
	s.once.Do(func() { close(s.entered) })
	time.Sleep(500 * time.Millisecond)
	return s.Store.Batch(ctx, fn)
}

// TestInFlightCommandFinishesAndIsAcknowledged: a command being committed
// when the daemon is told to stop finishes, is answered, and its ack reaches
// the broker, so it does not come back after the restart.
func TestInFlightCommandFinishesAndIsAcknowledged(t *testing.T) {
	eachSetup(t, func(t *testing.T, s *setup) {
		slow := &slowStore{entered: make(chan struct{})}
		r := start(t, s.cfg, daemon.WithStoreWrapper(func(st domain.Store) domain.Store { slow.Store = st; return slow }))
		ids := r.send(t, create("2026-12-11", 9, 1))
		<-slow.entered
		if err := r.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}

		r2 := start(t, s.cfg)
		results := r2.read(t, s.cfg.Commands.ResultsTopic)
		if s.name == "embedded" { // JetStream says directly whether the ack landed
			nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsjs.EmbeddedSectionOf(s.cfg).Port))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := nc.JetStream()
			info, err := js.ConsumerInfo(natsjs.Config{}.StreamName(s.cfg.Commands.Topic), s.cfg.Commands.Group)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
				t.Fatalf("after restart the command is still unacknowledged: ack pending %d, pending %d, redelivered %d",
					info.NumAckPending, info.NumPending, info.NumRedelivered)
			}
		}
		// Elsewhere: a lost ack would bring the command back (Kafka at once
		// from the last committed offset, SQS after the visibility timeout)
		// and its outcome would be sent twice.
		marker := r2.send(t, create("2026-12-12", 9, 1))
		results.waitFor(t, "the marker's outcome", func(m []*message.Message) bool { _, ok := outcomes(t, m)[marker[0]]; return ok })
		if s.name == "sqs" {
			time.Sleep(sqs.SectionOf(s.cfg).VisibilityTimeout + time.Second)
		} else {
			time.Sleep(2 * time.Second)
		}
		n := 0
		for _, m := range results.all() {
			if strings.Contains(string(m.Payload), ids[0]) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the in-flight command was answered %d times, want once (processed again after the restart?)", n)
		}
	})
}

// TestReplayedEventTakesTheBusFormat: event dead letters keep the envelope
// as an EventBridge entry (emitd's own form, whatever the bus's format was),
// and replay re-emits it in the format the bus uses now, with its event id:
// here a CloudEvent in each mode, which the CloudEvents SDK reads back as
// the relay would have sent it.
func TestReplayedEventTakesTheBusFormat(t *testing.T) {
	for _, mode := range []string{configs.ModeBinary, configs.ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Events.Format, cfg.Events.CloudEvents.Mode = configs.FormatCloudEvents, mode
			r := start(t, cfg)
			bus := r.read(t, cfg.Events.AnalyticsBus)
			o := operator(t, cfg)

			f := domain.EnvelopeFactory{Meta: cfg.Metadata, DomainBus: cfg.Events.DomainBus, AnalyticsBus: cfg.Events.AnalyticsBus}
			start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			envs, err := f.Events(domain.Decision{Changes: []domain.Change{{Event: domain.EventCreated, Slot: domain.Slot{
				SlotID: uuid.NewString(), Status: domain.StatusOpen, TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}}}},
				"corr-replay", start.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			env := envs[1] // the analytics copy
			dl, err := publisher.EventDeadLetterOf(env, "refused: a test", time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Store.AddDeadLetters(context.Background(), []publisher.DeadLetter{dl}); err != nil {
				t.Fatal(err)
			}
			if sum := replay(t, o, false, publisher.DeadLetterFilter{Kind: publisher.KindEvent}); sum.Replayed != 1 {
				t.Fatalf("replay: %+v", sum)
			}
			got := bus.waitN(t, "replayed events", 1)[0]
			if got.UUID != env.ID {
				t.Errorf("replayed message id %s, want the event id %s", got.UUID, env.ID)
			}
			if mode == configs.ModeBinary && string(got.Payload) != env.Detail {
				t.Errorf("binary: body %s, want the Detail", got.Payload)
			}
			ev, err := contract.CloudEventOfMessage(got)
			if err != nil {
				t.Fatalf("replayed message is no CloudEvent: %v\n%v %s", err, got.Metadata, got.Payload)
			}
			want, _ := publisher.CloudEventOf(env)
			if err := contract.SameCloudEvent(ev, want); err != nil {
				t.Error(err)
			}
			if got.Metadata.Get(publisher.DLQReplays) != "1" {
				t.Errorf("replay count %q, want 1", got.Metadata.Get(publisher.DLQReplays))
			}
		})
	}
}
