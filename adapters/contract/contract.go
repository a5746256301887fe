// Package contract is the shared test suite every event adapter of emitd
// passes: envelopes go through the broker unchanged, and the delivery
// guarantees an adapter claims (order, consumer groups, persistence,
// redelivery) hold. It is imported only from _test files.
//
// Usage, from an adapter's test:
//
//	contract.Run(t, contract.Factory{
//		Name:          "natsjs-embedded",
//		NewPublisher:  func(t *testing.T) message.Publisher { ... },
//		NewSubscriber: func(t *testing.T, group string) message.Subscriber { ... },
//		NewTopic:      func(t *testing.T) string { ... },
//	}, contract.Features{PerKeyOrder: true, ConsumerGroups: true, ...})
//
// The factory owns cleanup: whatever it creates it closes or deletes through
// t.Cleanup. The suite closes the publishers and subscribers it is given too
// (Close must be idempotent, as Watermill's are).
//
// The style follows Watermill's own pubsub/tests suite (features declared per
// adapter, a subtest per guarantee), with two differences: every message is an
// emitd envelope made by publisher.ToMessage, and waits are generous deadlines
// only; nothing asserts how fast a broker is.
package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// Features declares what an adapter guarantees; a subtest whose guarantee is
// not declared is skipped, with the reason.
type Features struct {
	// PerKeyOrder: messages with the same slot-id metadata (the partition
	// key / message group) reach a single subscriber in publish order.
	PerKeyOrder bool
	// GlobalOrder: all messages of a topic reach a single subscriber in
	// publish order.
	GlobalOrder bool
	// ConsumerGroups: subscribers in the same group share the messages (each
	// message goes to one of them); every group gets every message.
	ConsumerGroups bool
	// Persistent: messages published before a subscriber subscribes are
	// received (after message.SubscribeInitializer, when the subscriber has
	// it, was called for the topic before publishing).
	Persistent bool
	// Redelivery: a Nacked message is delivered again.
	Redelivery bool
	// ExactlyOnce: no message is ever delivered twice, not even after a
	// subscriber closes with messages in flight.
	ExactlyOnce bool
	// InFlight: a subscriber delivers at least this many messages before
	// the first of them is acknowledged (emitd commits commands in batches:
	// a subscriber that waits for each ack caps a batch at one), and acks
	// given in any order lose nothing. 0: not declared.
	InFlight int
	// NativeCheck, optional, reads the messages back with the broker's own
	// client and asserts the native mapping (subject/routing key, headers,
	// body). The suite publishes sent to topic before it is called. For
	// brokers that route only to queues which exist, the suite first creates
	// a subscriber in group NativeGroup and calls SubscribeInitialize(topic)
	// on it when it is a message.SubscribeInitializer; NativeCheck then reads
	// that group's queue. NativeCheck consumes (acks) what it reads.
	NativeCheck func(t *testing.T, topic string, sent []domain.Envelope)
	// CloudEvents, optional, is the adapter's CloudEvents protocol binding:
	// the suite publishes CloudEvents in binary and in structured mode
	// (publisher.Format), reads them back with Read, the broker's own
	// client, and decodes them with the CloudEvents Go SDK.
	CloudEvents *CloudEventsBinding
}

// Factory makes the adapter's publishers, subscribers and topics.
type Factory struct {
	// Name names the adapter in every failure message; the top-level test
	// name when empty.
	Name string
	// NewPublisher returns a publisher ready to publish to topics made by
	// NewTopic.
	NewPublisher func(t *testing.T) message.Publisher
	// NewSubscriber returns a subscriber in consumer group group (never
	// empty; adapters without groups may ignore it). Two subscribers made
	// with the same group share one position on a topic.
	NewSubscriber func(t *testing.T, group string) message.Subscriber
	// NewTopic returns a unique topic, created on the broker if the broker
	// needs it (a NATS stream, a Kafka topic, an SNS topic ...).
	NewTopic func(t *testing.T) string
}

// NativeGroup is the consumer group whose queue exists when NativeCheck runs.
const NativeGroup = "native"

// WaitTimeout bounds every wait for a message. It is generous on purpose:
// the suite proves delivery, not speed, and runs under -race on busy
// machines. It is a variable so a slow broker's test can raise it.
var WaitTimeout = 90 * time.Second

// quietPeriod is how long the suite keeps listening after it has everything,
// to see duplicates or strays; it never fails a test by itself being short.
const quietPeriod = 500 * time.Millisecond

// Run runs the contract suite against the adapter f makes.
func Run(t *testing.T, f Factory, feat Features) {
	t.Helper()
	if f.NewPublisher == nil || f.NewSubscriber == nil || f.NewTopic == nil {
		t.Fatalf("contract: Factory needs NewPublisher, NewSubscriber and NewTopic")
	}
	s := &suite{f: f, feat: feat, name: f.Name}
	if s.name == "" {
		s.name = t.Name()
	}

	t.Run("EnvelopesUnchanged", s.envelopesUnchanged)
	t.Run("PerSlotOrder", s.perSlotOrder)
	t.Run("NackRedelivers", s.nackRedelivers)
	t.Run("ConsumerGroups", s.consumerGroups)
	t.Run("Persistence", s.persistence)
	t.Run("CloseWithoutLoss", s.closeWithoutLoss)
	t.Run("ManyInFlight", s.manyInFlight)
	t.Run("NativeMapping", s.nativeMapping)
	t.Run("Health", s.health)
	t.Run("CloudEventsBinary", func(t *testing.T) { s.cloudEvents(t, publisher.ModeBinary) })
	t.Run("CloudEventsStructured", func(t *testing.T) { s.cloudEvents(t, publisher.ModeStructured) })
}

type suite struct {
	f    Factory
	feat Features
	name string
}

func (s *suite) fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf("[%s] "+format, append([]any{s.name}, args...)...)
}

func (s *suite) errorf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Errorf("[%s] "+format, append([]any{s.name}, args...)...)
}

func (s *suite) logf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("[%s] "+format, append([]any{s.name}, args...)...)
}

// ---- fixtures ---------------------------------------------------------------

// Envelopes makes n realistic envelopes for bus, spread over the given slots
// round-robin, each slot's events numbered 1, 2, ... in data.seq. Exported so
// an adapter's own tests (benchmarks, restarts) use the same shapes.
func Envelopes(bus string, n int, slots []string) []domain.Envelope {
	events := []domain.EventName{domain.EventCreated, domain.EventOpened, domain.EventReserved,
		domain.EventCheckedIn, domain.EventCheckedOut, domain.EventCancelled, domain.EventClosed, domain.EventUnattended}
	seq := map[string]int{}
	base := time.Date(2025, 11, 25, 9, 30, 0, 0, time.UTC)
	out := make([]domain.Envelope, 0, n)
	for i := 0; i < n; i++ {
		slot := slots[i%len(slots)]
		seq[slot]++
		ev := events[(seq[slot]-1)%len(events)]
		dt, err := domain.DetailTypeOf(ev)
		if err != nil {
			panic(err)
		}
		id := uuid.NewString()
		corr := uuid.NewString()
		detail := map[string]any{
			"metadata": map[string]any{
				"id":            id,
				"correlationId": corr,
				"version":       1,
				"time":          base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
				"source":        "emitd.slots",
			},
			"data": map[string]any{
				"event":    string(ev),
				"slotId":   slot,
				"seq":      seq[slot],
				"version":  seq[slot],
				"venue":    "Salle Éole – niveau 2", // non-ASCII on purpose
				"startsAt": base.Add(48 * time.Hour).Format(time.RFC3339),
				"capacity": 12,
				"attendee": map[string]any{"id": fmt.Sprintf("att-%04d", i), "name": "Zoë O'Brien"},
				"tags":     []string{"analytics", "eu-west"},
			},
		}
		b, err := json.Marshal(detail)
		if err != nil {
			panic(err)
		}
		out = append(out, domain.Envelope{
			EventBusName:  bus,
			Source:        "emitd.slots",
			DetailType:    dt,
			Detail:        string(b),
			ID:            id,
			CorrelationID: corr,
			SlotID:        slot,
			Event:         ev,
		})
	}
	return out
}

// Slots returns k slot ids unique to this run.
func Slots(k int) []string {
	run := uuid.NewString()[:8]
	out := make([]string, k)
	for i := range out {
		out[i] = fmt.Sprintf("slot-%s-%02d", run, i)
	}
	return out
}

func seqOf(env domain.Envelope) int {
	var d struct {
		Data struct {
			Seq int `json:"seq"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(env.Detail), &d); err != nil {
		return -1
	}
	return d.Data.Seq
}

func group(prefix string) string {
	return prefix + "-" + uuid.NewString()[:8]
}

// ---- plumbing ---------------------------------------------------------------

func (s *suite) publisher(t *testing.T) message.Publisher {
	t.Helper()
	p := s.f.NewPublisher(t)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			s.errorf(t, "close publisher: %v", err)
		}
	})
	return p
}

func (s *suite) subscriber(t *testing.T, grp string) message.Subscriber {
	t.Helper()
	sub := s.f.NewSubscriber(t, grp)
	t.Cleanup(func() { s.closeSubscriber(t, sub) })
	return sub
}

func (s *suite) closeSubscriber(t *testing.T, sub message.Subscriber) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- sub.Close() }()
	select {
	case err := <-done:
		if err != nil {
			s.errorf(t, "close subscriber: %v", err)
		}
	case <-time.After(WaitTimeout):
		s.errorf(t, "close subscriber: still not closed after %s", WaitTimeout)
	}
}

func (s *suite) subscribe(t *testing.T, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		s.fatalf(t, "subscribe to %q: %v", topic, err)
	}
	return ch
}

func (s *suite) initialize(t *testing.T, sub message.Subscriber, topic string) {
	t.Helper()
	if si, ok := sub.(message.SubscribeInitializer); ok {
		if err := si.SubscribeInitialize(topic); err != nil {
			s.fatalf(t, "SubscribeInitialize(%q): %v", topic, err)
		}
	}
}

func toMessages(t *testing.T, envs []domain.Envelope) []*message.Message {
	t.Helper()
	msgs := make([]*message.Message, len(envs))
	for i, e := range envs {
		m, err := publisher.ToMessage(e)
		if err != nil {
			t.Fatalf("ToMessage: %v", err)
		}
		msgs[i] = m
	}
	return msgs
}

// publishOneByOne publishes each envelope in its own Publish call, in order.
func (s *suite) publishOneByOne(t *testing.T, p message.Publisher, topic string, envs []domain.Envelope) {
	t.Helper()
	for _, m := range toMessages(t, envs) {
		if err := p.Publish(topic, m); err != nil {
			s.fatalf(t, "publish %s to %q: %v", m.UUID, topic, err)
		}
	}
}

// collector reads a subscription, acking every message, and remembers what
// arrived and in which order (duplicates included).
type collector struct {
	mu       sync.Mutex
	order    []*message.Message
	count    map[string]int
	changed  chan struct{}
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// collect starts reading ch until stop is called or ch closes. When ack is
// false, messages are left unacknowledged (for the caller to decide).
func collect(ch <-chan *message.Message, ack bool) *collector {
	c := &collector{count: map[string]int{}, changed: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				c.mu.Lock()
				c.order = append(c.order, m)
				c.count[m.UUID]++
				c.mu.Unlock()
				if ack {
					m.Ack()
				}
				select {
				case c.changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	return c
}

func (c *collector) halt() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

func (c *collector) snapshot() ([]*message.Message, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := make(map[string]int, len(c.count))
	for k, v := range c.count {
		counts[k] = v
	}
	return append([]*message.Message(nil), c.order...), counts
}

// waitFor waits until every id in want has arrived in one of cs, or the
// timeout; it returns the ids still missing.
func waitFor(want []string, cs ...*collector) []string {
	deadline := time.After(WaitTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing []string
		seen := map[string]bool{}
		for _, c := range cs {
			_, counts := c.snapshot()
			for k := range counts {
				seen[k] = true
			}
		}
		for _, id := range want {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-deadline:
			return missing
		case <-tick.C:
		}
	}
}

func ids(envs []domain.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

func (s *suite) checkDuplicates(t *testing.T, what string, counts map[string]int) {
	t.Helper()
	dups := 0
	for _, n := range counts {
		if n > 1 {
			dups += n - 1
		}
	}
	if dups == 0 {
		return
	}
	if s.feat.ExactlyOnce {
		s.errorf(t, "%s: %d duplicate deliveries, but the adapter declares ExactlyOnce", what, dups)
	} else {
		s.logf(t, "%s: %d duplicate deliveries (allowed: at-least-once)", what, dups)
	}
}

// ---- subtests ---------------------------------------------------------------

// envelopesUnchanged: payload bytes, UUID, the five metadata keys arrive as
// sent, and publisher.FromMessage gives back the original envelope.
func (s *suite) envelopesUnchanged(t *testing.T) {
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	sub := s.subscriber(t, group("unchanged"))
	c := collect(s.subscribe(t, sub, topic), true)
	defer c.halt()

	envs := Envelopes(topic, 12, Slots(3))
	// Edge shapes: no correlation id, no slot id (ToMessage leaves the key
	// out, the broker must not invent it).
	envs[10].CorrelationID = ""
	envs[11].SlotID = ""
	sent := toMessages(t, envs)
	// Half in one Publish call (a batch), half one by one.
	if err := pub.Publish(topic, sent[:6]...); err != nil {
		s.fatalf(t, "publish batch: %v", err)
	}
	for _, m := range sent[6:] {
		if err := pub.Publish(topic, m); err != nil {
			s.fatalf(t, "publish: %v", err)
		}
	}

	if missing := waitFor(ids(envs), c); len(missing) > 0 {
		s.fatalf(t, "%d of %d envelopes not received within %s: %v", len(missing), len(envs), WaitTimeout, missing)
	}
	got, counts := c.snapshot()
	s.checkDuplicates(t, "envelopes", counts)
	byID := map[string]*message.Message{}
	for _, m := range got {
		byID[m.UUID] = m
	}
	keys := []string{publisher.MetaSource, publisher.MetaDetailType, publisher.MetaEventID, publisher.MetaCorrelationID, publisher.MetaSlotID}
	for i, want := range sent {
		m := byID[want.UUID]
		if m == nil {
			s.errorf(t, "envelope %d: no message with UUID %s", i, want.UUID)
			continue
		}
		if string(m.Payload) != string(want.Payload) {
			s.errorf(t, "envelope %d: payload changed:\n got %s\nwant %s", i, m.Payload, want.Payload)
		}
		for _, k := range keys {
			w, wok := want.Metadata[k]
			g, gok := m.Metadata[k]
			if wok != gok || g != w {
				s.errorf(t, "envelope %d: metadata %q = %q (present %v), want %q (present %v)", i, k, g, gok, w, wok)
			}
		}
		var extra []string
		for k := range m.Metadata {
			if _, ok := want.Metadata[k]; !ok {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			s.logf(t, "envelope %d: adapter added metadata keys %v", i, extra)
		}
		back, err := publisher.FromMessage(m)
		if err != nil {
			s.errorf(t, "envelope %d: FromMessage: %v", i, err)
			continue
		}
		orig := envs[i]
		orig.Event = "" // data.event lives in Detail; the message does not carry the field itself
		if back != orig {
			s.errorf(t, "envelope %d: FromMessage = %+v\nwant %+v", i, back, orig)
		}
	}
}

// perSlotOrder: several slots interleaved; each slot's sequence arrives in
// order (and, for GlobalOrder, the whole topic does).
func (s *suite) perSlotOrder(t *testing.T) {
	if !s.feat.PerKeyOrder && !s.feat.GlobalOrder {
		t.Skipf("[%s] neither PerKeyOrder nor GlobalOrder declared", s.name)
	}
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	sub := s.subscriber(t, group("order"))
	c := collect(s.subscribe(t, sub, topic), true)
	defer c.halt()

	slots := Slots(5)
	perSlot := 20
	// Interleave the slots in a random (seeded, logged) order, keeping each
	// slot's own sequence 1..perSlot.
	seed := time.Now().UnixNano()
	s.logf(t, "interleaving seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	bySlot := map[string][]domain.Envelope{}
	for _, e := range Envelopes(topic, len(slots)*perSlot, slots) {
		bySlot[e.SlotID] = append(bySlot[e.SlotID], e)
	}
	var envs []domain.Envelope
	for len(envs) < len(slots)*perSlot {
		sl := slots[rng.Intn(len(slots))]
		if len(bySlot[sl]) == 0 {
			continue
		}
		envs = append(envs, bySlot[sl][0])
		bySlot[sl] = bySlot[sl][1:]
	}
	s.publishOneByOne(t, pub, topic, envs)

	if missing := waitFor(ids(envs), c); len(missing) > 0 {
		s.fatalf(t, "%d of %d envelopes not received within %s", len(missing), len(envs), WaitTimeout)
	}
	got, counts := c.snapshot()
	s.checkDuplicates(t, "order", counts)

	// First deliveries only: a redelivered duplicate is judged by the
	// duplicate check, not as an order violation.
	seen := map[string]bool{}
	var firsts []domain.Envelope
	for _, m := range got {
		if seen[m.UUID] {
			continue
		}
		seen[m.UUID] = true
		e, err := publisher.FromMessage(m)
		if err != nil {
			s.fatalf(t, "FromMessage: %v", err)
		}
		firsts = append(firsts, e)
	}
	last := map[string]int{}
	for _, e := range firsts {
		n := seqOf(e)
		if n != last[e.SlotID]+1 {
			s.errorf(t, "slot %s: got seq %d after %d", e.SlotID, n, last[e.SlotID])
		}
		last[e.SlotID] = n
	}
	if s.feat.GlobalOrder {
		for i := range envs {
			if i >= len(firsts) || firsts[i].ID != envs[i].ID {
				s.errorf(t, "global order: position %d differs (declared GlobalOrder)", i)
				break
			}
		}
	}
}

// nackRedelivers: a Nacked message comes back, same UUID and payload.
func (s *suite) nackRedelivers(t *testing.T) {
	if !s.feat.Redelivery {
		t.Skipf("[%s] Redelivery not declared", s.name)
	}
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	sub := s.subscriber(t, group("nack"))
	ch := s.subscribe(t, sub, topic)

	envs := Envelopes(topic, 1, Slots(1))
	want := toMessages(t, envs)[0]
	if err := pub.Publish(topic, want); err != nil {
		s.fatalf(t, "publish: %v", err)
	}
	next := func(what string) *message.Message {
		t.Helper()
		select {
		case m, ok := <-ch:
			if !ok {
				s.fatalf(t, "%s: subscription closed", what)
			}
			return m
		case <-time.After(WaitTimeout):
			s.fatalf(t, "%s: nothing received within %s", what, WaitTimeout)
		}
		return nil
	}
	first := next("first delivery")
	if first.UUID != want.UUID {
		s.fatalf(t, "first delivery: UUID %s, want %s", first.UUID, want.UUID)
	}
	first.Nack()
	second := next("redelivery after Nack")
	if second.UUID != want.UUID || string(second.Payload) != string(want.Payload) {
		s.fatalf(t, "redelivery: got UUID %s payload %s, want UUID %s payload %s", second.UUID, second.Payload, want.UUID, want.Payload)
	}
	for _, k := range []string{publisher.MetaEventID, publisher.MetaSlotID, publisher.MetaCorrelationID} {
		if second.Metadata.Get(k) != want.Metadata.Get(k) {
			s.errorf(t, "redelivery: metadata %q = %q, want %q", k, second.Metadata.Get(k), want.Metadata.Get(k))
		}
	}
	second.Ack()
}

// consumerGroups: two subscribers of one group share the messages (each
// message to exactly one of them); a subscriber of another group gets all.
func (s *suite) consumerGroups(t *testing.T) {
	if !s.feat.ConsumerGroups {
		t.Skipf("[%s] ConsumerGroups not declared", s.name)
	}
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	g := group("shared")
	a := collect(s.subscribe(t, s.subscriber(t, g), topic), true)
	defer a.halt()
	b := collect(s.subscribe(t, s.subscriber(t, g), topic), true)
	defer b.halt()
	other := collect(s.subscribe(t, s.subscriber(t, group("other")), topic), true)
	defer other.halt()

	envs := Envelopes(topic, 60, Slots(6))
	s.publishOneByOne(t, pub, topic, envs)

	if missing := waitFor(ids(envs), a, b); len(missing) > 0 {
		s.fatalf(t, "group %s: %d of %d messages received by neither member within %s", g, len(missing), len(envs), WaitTimeout)
	}
	if missing := waitFor(ids(envs), other); len(missing) > 0 {
		s.errorf(t, "second group: %d of %d messages not received within %s", len(missing), len(envs), WaitTimeout)
	}
	time.Sleep(quietPeriod)
	_, ca := a.snapshot()
	_, cb := b.snapshot()
	_, co := other.snapshot()
	both := 0
	for id := range ca {
		if cb[id] > 0 {
			both++
		}
	}
	if both > 0 {
		s.errorf(t, "group %s: %d messages went to both members (want each to one of them)", g, both)
	}
	s.checkDuplicates(t, "group member a", ca)
	s.checkDuplicates(t, "group member b", cb)
	s.checkDuplicates(t, "second group", co)
	s.logf(t, "group %s: member a got %d, member b got %d; second group got %d", g, len(ca), len(cb), len(co))
}

// persistence: published before anyone subscribed, still received.
func (s *suite) persistence(t *testing.T) {
	if !s.feat.Persistent {
		t.Skipf("[%s] Persistent not declared", s.name)
	}
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	sub := s.subscriber(t, group("persist"))
	s.initialize(t, sub, topic)

	envs := Envelopes(topic, 10, Slots(2))
	s.publishOneByOne(t, pub, topic, envs)
	if err := pub.Close(); err != nil {
		s.fatalf(t, "close publisher: %v", err)
	}

	c := collect(s.subscribe(t, sub, topic), true)
	defer c.halt()
	if missing := waitFor(ids(envs), c); len(missing) > 0 {
		s.fatalf(t, "%d of %d messages published before subscribing not received within %s", len(missing), len(envs), WaitTimeout)
	}
	_, counts := c.snapshot()
	s.checkDuplicates(t, "persistence", counts)
}

// closeWithoutLoss: some messages consumed and acked, the subscriber closed
// with the rest unconsumed or in flight; a new subscriber of the same group
// gets every message that was not acked.
func (s *suite) closeWithoutLoss(t *testing.T) {
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	g := group("close")
	first := s.f.NewSubscriber(t, g)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.closeSubscriber(t, first)
		}
	})
	ch := s.subscribe(t, first, topic)

	const n, consume = 30, 10
	envs := Envelopes(topic, n, Slots(3))
	s.publishOneByOne(t, pub, topic, envs)

	acked := map[string]bool{}
	deadline := time.After(WaitTimeout)
	for len(acked) < consume {
		select {
		case m, ok := <-ch:
			if !ok {
				s.fatalf(t, "subscription closed after %d messages", len(acked))
			}
			acked[m.UUID] = true
			m.Ack()
		case <-deadline:
			s.fatalf(t, "only %d of %d messages received within %s", len(acked), consume, WaitTimeout)
		}
	}
	// One more is taken and left hanging: neither acked nor nacked when the
	// subscriber closes (a handler interrupted by shutdown).
	select {
	case m, ok := <-ch:
		if ok {
			s.logf(t, "message %s left unacknowledged at close", m.UUID)
		}
	case <-time.After(WaitTimeout):
		s.fatalf(t, "message %d not received within %s", consume+1, WaitTimeout)
	}
	s.closeSubscriber(t, first)
	closed = true

	var rest []string
	for _, e := range envs {
		if !acked[e.ID] {
			rest = append(rest, e.ID)
		}
	}
	c := collect(s.subscribe(t, s.subscriber(t, g), topic), true)
	defer c.halt()
	if missing := waitFor(rest, c); len(missing) > 0 {
		s.fatalf(t, "lost on close: %d of the %d unacknowledged messages never reached the next subscriber of group %s within %s", len(missing), len(rest), g, WaitTimeout)
	}
	time.Sleep(quietPeriod)
	_, counts := c.snapshot()
	again := 0
	for id := range counts {
		if acked[id] {
			again++
		}
	}
	if again > 0 {
		if s.feat.ExactlyOnce {
			s.errorf(t, "%d acked messages delivered again after close (declared ExactlyOnce)", again)
		} else {
			s.logf(t, "%d acked messages delivered again after close (ack still in flight at close; allowed)", again)
		}
	}
	s.checkDuplicates(t, "after close", counts)
}

// manyInFlight: InFlight messages arrive before any is acknowledged; they
// are then acknowledged newest first, and a new subscriber of the group
// gets none of them again, but the ones published after.
func (s *suite) manyInFlight(t *testing.T) {
	if s.feat.InFlight == 0 {
		t.Skipf("[%s] InFlight not declared", s.name)
	}
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	g := group("inflight")
	first := s.f.NewSubscriber(t, g)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.closeSubscriber(t, first)
		}
	})
	ch := s.subscribe(t, first, topic)
	n := s.feat.InFlight
	envs := Envelopes(topic, n, Slots(4))
	if err := pub.Publish(topic, toMessages(t, envs)...); err != nil {
		s.fatalf(t, "publish: %v", err)
	}
	var held []*message.Message
	deadline := time.After(WaitTimeout)
	for len(held) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				s.fatalf(t, "subscription closed after %d messages", len(held))
			}
			held = append(held, m)
		case <-deadline:
			s.fatalf(t, "only %d of %d messages delivered before the first ack (within %s): the subscriber waits for acks", len(held), n, WaitTimeout)
		}
	}
	for i := len(held) - 1; i >= 0; i-- {
		held[i].Ack()
	}
	s.closeSubscriber(t, first)
	closed = true

	later := Envelopes(topic, 3, Slots(1))
	if err := pub.Publish(topic, toMessages(t, later)...); err != nil {
		s.fatalf(t, "publish: %v", err)
	}
	c := collect(s.subscribe(t, s.subscriber(t, g), topic), true)
	defer c.halt()
	if missing := waitFor(ids(later), c); len(missing) > 0 {
		s.fatalf(t, "%d messages published after the close never arrived", len(missing))
	}
	time.Sleep(quietPeriod)
	_, counts := c.snapshot()
	again := 0
	for _, e := range envs {
		if counts[e.ID] > 0 {
			again++
		}
	}
	if again > 0 && s.feat.ExactlyOnce {
		s.errorf(t, "%d acknowledged messages delivered again", again)
	} else if again > 0 {
		s.logf(t, "%d acknowledged messages delivered again (an ack still in flight at close; allowed)", again)
	}
}

// nativeMapping: the broker's own client sees the native mapping.
func (s *suite) nativeMapping(t *testing.T) {
	if s.feat.NativeCheck == nil {
		t.Skipf("[%s] no NativeCheck", s.name)
	}
	topic := s.f.NewTopic(t)
	pub := s.publisher(t)
	s.initialize(t, s.subscriber(t, NativeGroup), topic)
	envs := Envelopes(topic, 5, Slots(2))
	envs[4].CorrelationID = ""
	s.publishOneByOne(t, pub, topic, envs)
	s.feat.NativeCheck(t, topic, envs)
}

// EntryJSON is the body every adapter puts on the wire for env: the
// EventBridge entry JSON, as publisher.ToMessage makes it. For NativeCheck
// implementations.
func EntryJSON(t *testing.T, env domain.Envelope) []byte {
	t.Helper()
	m, err := publisher.ToMessage(env)
	if err != nil {
		t.Fatalf("ToMessage: %v", err)
	}
	return m.Payload
}

// HeaderKeys are the metadata keys a NativeCheck expects as broker headers
// for env (correlation_id and slot-id only when set).
func HeaderKeys(env domain.Envelope) map[string]string {
	h := map[string]string{
		publisher.MetaSource:     env.Source,
		publisher.MetaDetailType: env.DetailType,
		publisher.MetaEventID:    env.ID,
	}
	if env.CorrelationID != "" {
		h[publisher.MetaCorrelationID] = env.CorrelationID
	}
	if env.SlotID != "" {
		h[publisher.MetaSlotID] = env.SlotID
	}
	return h
}
