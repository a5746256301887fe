package publisher_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/eventbridge/ebtest"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/sqlite"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

const wait = 60 * time.Second

// commitSlots commits n CreateSlots-like commands, each with a domain event
// and its analytics copy, through the real envelope factory and store.
func commitSlots(t testing.TB, store *sqlite.Store, n int) []domain.Envelope {
	t.Helper()
	f := domain.EnvelopeFactory{Meta: domain.DefaultMetadata(), DomainBus: "reservation", AnalyticsBus: "analytics"}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var all []domain.Envelope
	for i := range n {
		start := now.Add(time.Duration(i+1) * time.Hour)
		slot := domain.Slot{SlotID: uuid.NewString(), Status: domain.StatusOpen, Version: 1, CreatedAt: now, UpdatedAt: now,
			TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}}
		envs, err := f.Events(domain.Decision{Changes: []domain.Change{{Slot: slot, Event: domain.EventCreated}}}, uuid.NewString(), now)
		if err != nil {
			t.Fatal(err)
		}
		c := domain.Commit{Slots: []domain.Slot{slot}, Envelopes: envs,
			Outcome: domain.Outcome{CommandID: uuid.NewString(), Status: domain.OutcomeAccepted, At: now}}
		c.Record = true
		if err := store.Batch(context.Background(), func(ctx context.Context, tx domain.Tx) error {
			return tx.Save(ctx, []domain.Commit{c})
		}); err != nil {
			t.Fatal(err)
		}
		all = append(all, envs...)
	}
	return all
}

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.TempDir(), sqlite.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func eventRelay(store *sqlite.Store, pub message.Publisher) *publisher.Relay {
	return publisher.NewRelay("events", publisher.EventFeed{Outbox: store}, pub, nil)
}

func runRelay(t *testing.T, r *publisher.Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
}

func waitOutboxEmpty(t *testing.T, s *sqlite.Store) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n, err := s.OutboxLen(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d envelopes", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// readBus reads a NATS bus from the beginning until n messages arrived.
func readBus(t *testing.T, url, bus string, n int) []*message.Message {
	t.Helper()
	sub, err := natsjs.NewSubscriber(natsjs.Config{URL: url, DeliverAll: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ch, err := sub.Subscribe(ctx, bus)
	if err != nil {
		t.Fatal(err)
	}
	var got []*message.Message
	for len(got) < n {
		select {
		case m := <-ch:
			got = append(got, m)
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("%s: %d of %d messages", bus, len(got), n)
		}
	}
	return got
}

// TestRelayPublishesInCommitOrderAcrossBusOutage commits events while the
// bus (an embedded NATS JetStream server) is down; once it is back, every
// envelope arrives on its bus, in commit order, byte for byte as committed,
// each domain event before its analytics copy.
func TestRelayPublishesInCommitOrderAcrossBusOutage(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	startBus := func() func() {
		srv, _, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: filepath.Join(dir, "nats"), Port: port})
		if err != nil {
			t.Fatal(err)
		}
		return func() { srv.Shutdown(); srv.WaitForShutdown() }
	}
	stopBus := startBus()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	pub, err := natsjs.NewPublisher(natsjs.Config{URL: url, Topics: []string{"reservation", "analytics"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })

	store := openStore(t)
	relay := eventRelay(store, pub)
	relay.BatchSize, relay.PollInterval, relay.MaxBackoff = 7, 20*time.Millisecond, 200*time.Millisecond
	first := commitSlots(t, store, 5)
	runRelay(t, relay)
	waitOutboxEmpty(t, store)

	stopBus()
	second := commitSlots(t, store, 20) // committed while the bus is down
	time.Sleep(300 * time.Millisecond)  // let the relay fail against the down bus
	if n, _ := store.OutboxLen(context.Background()); n != 40 {
		t.Fatalf("outbox holds %d envelopes while the bus is down, want all 40", n)
	}
	stopBus = startBus()
	defer stopBus()
	relay.Notify()
	waitOutboxEmpty(t, store)

	all := append(first, second...)
	for _, bus := range []string{"reservation", "analytics"} {
		var want []domain.Envelope
		for _, e := range all {
			if e.EventBusName == bus {
				want = append(want, e)
			}
		}
		got := readBus(t, url, bus, len(want))
		for i, m := range got {
			env, err := publisher.FromMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			if env.ID != want[i].ID || env.Detail != want[i].Detail || env.Source != want[i].Source {
				t.Fatalf("%s #%d: got event %s, want %s (commit order) with identical Detail", bus, i, env.ID, want[i].ID)
			}
		}
	}
}

// TestRelayDeadLettersRefusedEnvelopeAndFlowsOn: an envelope the bus refuses
// for good (EventBridge answers InvalidArgument for it) leaves the outbox for
// the event dead letters with its exact bytes and the error; the events
// after it still reach the bus. A throttled one is retried, not dead-lettered.
func TestRelayDeadLettersRefusedEnvelopeAndFlowsOn(t *testing.T) {
	awstest.SetEnv(t, nil)
	srv := ebtest.New(ebtest.Options{Buses: []string{"reservation", "analytics"}, RejectUnknownBus: true})
	t.Cleanup(srv.Close)
	pub, err := eventbridge.NewPublisher(context.Background(), eventbridge.Config{Endpoint: srv.URL,
		BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := openStore(t)
	envs := commitSlots(t, store, 6)
	poisoned := envs[4] // the third command's domain event
	srv.FailEntriesIf("InvalidArgument", func(e ebtest.Entry) bool { return e.Detail == poisoned.Detail })
	srv.FailNextEntries(1, "ThrottlingException", envs[6].ID) // transient: retried

	relay := eventRelay(store, pub)
	relay.PollInterval = 20 * time.Millisecond
	runRelay(t, relay)
	waitOutboxEmpty(t, store)

	dls, err := store.DeadLetters(context.Background(), publisher.DeadLetterFilter{Kind: publisher.KindEvent})
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 {
		t.Fatalf("%d event dead letters, want exactly the refused envelope", len(dls))
	}
	wantMsg, _ := publisher.ToMessage(poisoned)
	if d := dls[0]; d.ID != poisoned.ID || string(d.Payload) != string(wantMsg.Payload) || d.Origin != "reservation" ||
		!strings.Contains(d.Reason, "InvalidArgument") || d.Digest != publisher.Digest(d.Payload) {
		t.Fatalf("event dead letter %+v (payload %s), want the refused envelope's exact bytes, its bus and the error", d, d.Payload)
	}
	accepted := map[string]bool{}
	for _, e := range srv.Accepted() {
		accepted[e.Detail] = true
	}
	for i, e := range envs {
		if i != 4 && !accepted[e.Detail] {
			t.Errorf("envelope %d (%s on %s) never reached EventBridge", i, e.ID, e.EventBusName)
		}
	}
	if len(srv.Accepted()) != len(envs)-1 {
		t.Errorf("EventBridge accepted %d entries, want %d", len(srv.Accepted()), len(envs)-1)
	}
}

// flakyBus is a real in-memory bus (Watermill's GoChannel) that records the
// global order of what it accepted, and refuses publishes to one bus while
// that bus is down.
type flakyBus struct {
	*gochannel.GoChannel
	mu    sync.Mutex
	down  map[string]bool
	order []string // event ids, as accepted across all buses
}

func (f *flakyBus) Publish(topic string, msgs ...*message.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[topic] {
		return fmt.Errorf("bus %s unreachable", topic)
	}
	for _, m := range msgs {
		f.order = append(f.order, m.UUID)
	}
	return f.GoChannel.Publish(topic, msgs...)
}

func (f *flakyBus) setDown(bus string, v bool) { f.mu.Lock(); f.down[bus] = v; f.mu.Unlock() }

// TestRelayKeepsEachDomainEventBeforeItsAnalyticsCopy: after an analytics
// bus outage, a batch starts with analytics envelopes left behind; the domain
// events committed meanwhile must still precede their own analytics copies,
// and each bus must see commit order.
func TestRelayKeepsEachDomainEventBeforeItsAnalyticsCopy(t *testing.T) {
	bus := &flakyBus{GoChannel: gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}), down: map[string]bool{}}
	store := openStore(t)
	relay := eventRelay(store, bus)
	relay.PollInterval, relay.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	relay.TopicOrder = []string{"reservation", "analytics"}

	bus.setDown("analytics", true)
	envs := commitSlots(t, store, 1)
	runRelay(t, relay)
	time.Sleep(200 * time.Millisecond) // D1 out, A1 waiting
	envs = append(envs, commitSlots(t, store, 3)...)
	time.Sleep(100 * time.Millisecond)
	bus.setDown("analytics", false)
	relay.Notify()
	waitOutboxEmpty(t, store)

	pos := map[string]int{}
	for i, id := range bus.order {
		pos[id] = i
	}
	if len(pos) != len(envs) {
		t.Fatalf("bus accepted %d distinct envelopes, want %d", len(pos), len(envs))
	}
	for i := 0; i < len(envs); i += 2 {
		d, a := envs[i], envs[i+1]
		if pos[d.ID] > pos[a.ID] {
			t.Errorf("command %d: analytics copy published before its domain event (order %v)", i/2, bus.order)
		}
		if i > 0 && (pos[envs[i-2].ID] > pos[d.ID] || pos[envs[i-1].ID] > pos[a.ID]) {
			t.Errorf("command %d: a bus saw it before the previous command's event", i/2)
		}
	}
}
