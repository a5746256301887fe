package kafka_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// The record any Kafka consumer reads: key = slot id (UUID without one),
// value = the entry JSON bytes unchanged, headers = metadata + UUID, and the
// partition any Kafka client would pick for that key.
func TestPublishNativeRecord(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	const topic = "bus-orders"

	var envs []domain.Envelope
	var msgs []*message.Message
	for i := range 12 {
		env := envelope("orders", fmt.Sprintf("slot-%d", i%5), i)
		if i%4 == 3 {
			env.SlotID, env.CorrelationID = "", "" // no slot: key falls back to the UUID
		}
		envs = append(envs, env)
		msgs = append(msgs, toMessage(t, env))
	}
	if err := pub.Publish(topic, msgs[:3]...); err != nil { // a batch
		t.Fatal(err)
	}
	for _, m := range msgs[3:] { // and one at a time
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}

	byID := map[string]int{}
	for i, env := range envs {
		byID[env.ID] = i
	}
	kafkaPartition := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	for _, rec := range readRecords(t, brokers, topic, len(envs)) {
		h := map[string]string{}
		for _, hd := range rec.Headers {
			if _, dup := h[hd.Key]; dup {
				t.Errorf("header %s twice", hd.Key)
			}
			h[hd.Key] = string(hd.Value)
		}
		i, ok := byID[h[publisher.MetaEventID]]
		if !ok {
			t.Fatalf("record with unknown event-id header: %v", h)
		}
		env, msg := envs[i], msgs[i]
		wantKey := env.SlotID
		if wantKey == "" {
			wantKey = env.ID
		}
		if string(rec.Key) != wantKey {
			t.Errorf("event %d: key %q, want %q", i, rec.Key, wantKey)
		}
		entry, _ := json.Marshal(env)
		if !bytes.Equal(rec.Value, msg.Payload) || !bytes.Equal(rec.Value, entry) {
			t.Errorf("event %d: value %s, want the entry JSON %s", i, rec.Value, entry)
		}
		want := map[string]string{
			kafka.UUIDHeader:         env.ID,
			publisher.MetaSource:     env.Source,
			publisher.MetaDetailType: env.DetailType,
			publisher.MetaEventID:    env.ID,
		}
		if env.CorrelationID != "" {
			want[publisher.MetaCorrelationID] = env.CorrelationID
		}
		if env.SlotID != "" {
			want[publisher.MetaSlotID] = env.SlotID
		}
		if fmt.Sprint(h) != fmt.Sprint(want) {
			t.Errorf("event %d: headers %v, want %v", i, h, want)
		}
		if p := kafkaPartition.Partition(&kgo.Record{Key: rec.Key}, kafkatest.Partitions); int32(p) != rec.Partition {
			t.Errorf("event %d: key %q on partition %d, Kafka clients (murmur2) put it on %d", i, rec.Key, rec.Partition, p)
		}
	}
}

// What the adapter publishes comes back through the Watermill subscriber
// unchanged: UUID, payload bytes, metadata, and so the envelope.
func TestRoundTripThroughSubscriber(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	const topic = "bus-roundtrip"

	sent := map[string]*message.Message{}
	envs := map[string]domain.Envelope{}
	var batch []*message.Message
	for i := range 20 {
		env := envelope("roundtrip", fmt.Sprintf("slot-%d", i%3), i)
		if i%5 == 0 {
			env.SlotID = ""
		}
		msg := toMessage(t, env)
		sent[msg.UUID], envs[msg.UUID] = msg, env
		batch = append(batch, msg)
	}
	if err := pub.Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}

	ch := subscribe(t, newSubscriber(t, brokers, "roundtrip"), topic)
	for range len(sent) {
		got := receive(t, ch, "round trip")
		want, ok := sent[got.UUID]
		if !ok {
			t.Fatalf("unexpected or repeated message %q", got.UUID)
		}
		delete(sent, got.UUID)
		if !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("%s: payload %s, want %s", got.UUID, got.Payload, want.Payload)
		}
		if fmt.Sprint(got.Metadata) != fmt.Sprint(want.Metadata) {
			t.Errorf("%s: metadata %v, want %v", got.UUID, got.Metadata, want.Metadata)
		}
		env, err := publisher.FromMessage(got)
		if err != nil {
			t.Fatal(err)
		}
		if wantEnv := envs[got.UUID]; env != wantEnv {
			t.Errorf("%s: envelope %+v, want %+v", got.UUID, env, wantEnv)
		}
		rec, _ := kafka.RecordFromCtx(got.Context())
		key := rec.Key
		if slot := got.Metadata.Get(publisher.MetaSlotID); slot != "" && string(key) != slot {
			t.Errorf("%s: key %q on the context, want slot %q", got.UUID, key, slot)
		}
		got.Ack()
	}
}

// Many slots interleaved over 4 partitions, published from several
// goroutines (each owning some slots): every slot's events arrive in the
// order they were published.
func TestPerSlotOrder(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	const (
		topic      = "bus-order"
		slots      = 40
		perSlot    = 25
		publishers = 4
	)
	createTopic(t, brokers, topic)
	ch := subscribe(t, newSubscriber(t, brokers, "order"), topic)

	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for g := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range perSlot {
				var batch []*message.Message
				for s := g; s < slots; s += publishers { // interleave this goroutine's slots
					env := envelope("order", fmt.Sprintf("slot-%02d", s), seq)
					msg, err := publisher.ToMessage(env)
					if err != nil {
						errs <- err
						return
					}
					msg.Metadata.Set("seq", fmt.Sprint(seq))
					batch = append(batch, msg)
				}
				if err := pub.Publish(topic, batch...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}

	next := map[string]int{}
	partitions := map[int32]bool{}
	slotPartition := map[string]int32{}
	for range slots * perSlot {
		msg := receive(t, ch, "ordered stream")
		slot := msg.Metadata.Get(publisher.MetaSlotID)
		seq := msg.Metadata.Get("seq")
		if want := fmt.Sprint(next[slot]); seq != want {
			t.Fatalf("slot %s: got seq %s, want %s", slot, seq, want)
		}
		next[slot]++
		rec, _ := kafka.RecordFromCtx(msg.Context())
		p := rec.Partition
		partitions[p] = true
		if prev, ok := slotPartition[slot]; ok && prev != p {
			t.Errorf("slot %s on partitions %d and %d", slot, prev, p)
		}
		slotPartition[slot] = p
		msg.Ack()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(next) != slots {
		t.Errorf("%d slots seen, want %d", len(next), slots)
	}
	if len(partitions) != kafkatest.Partitions {
		t.Errorf("messages on %d partitions, want all %d", len(partitions), kafkatest.Partitions)
	}
}

// A nacked message is delivered again, the same one (records after it in
// its partition may come in between: many are in flight at once), and the
// group's offset does not pass it until it is acked.
func TestNackRedelivers(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	const topic = "bus-nack"
	first := toMessage(t, envelope("nack", "slot-a", 0))
	second := toMessage(t, envelope("nack", "slot-a", 1))
	if err := pub.Publish(topic, first, second); err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, brokers, "nack")
	ch := subscribe(t, sub, topic)

	firsts := 0
	for firsts < 4 {
		got := receive(t, ch, "a delivery")
		switch got.UUID {
		case first.UUID:
			if !bytes.Equal(got.Payload, first.Payload) {
				t.Fatalf("redelivery changed the payload")
			}
			firsts++
			if firsts < 4 {
				got.Nack()
			} else {
				got.Ack()
			}
		case second.UUID:
			got.Ack()
		default:
			t.Fatalf("unexpected %s", got.UUID)
		}
	}
	// Both acked: a new member of the group gets neither again.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(topic, toMessage(t, envelope("nack", "slot-a", 2))); err != nil {
		t.Fatal(err)
	}
	got := receive(t, subscribe(t, newSubscriber(t, brokers, "nack"), topic), "after reopening")
	if got.UUID == first.UUID || got.UUID == second.UUID {
		t.Fatalf("acked message %s delivered again after reopening", got.UUID)
	}
	got.Ack()
}

// Two subscribers in one group share the partitions (each partition goes to
// exactly one of them) and together receive every message.
func TestConsumerGroupSharesPartitions(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	const topic, group, n = "bus-group", "commands", 400
	createTopic(t, brokers, topic)

	a := collect(subscribe(t, newSubscriber(t, brokers, group), topic))
	b := collect(subscribe(t, newSubscriber(t, brokers, group), topic))

	// Wait until the group is stable with both members holding partitions,
	// so that no rebalance moves partitions while messages flow.
	adm := newAdmin(t, brokers)
	waitFor(t, "group stable with two members", func() bool {
		ctx, cancel := ctxWait()
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g := gs[group]
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			c, ok := m.Assigned.AsConsumer()
			if !ok || len(c.Topics) == 0 || len(c.Topics[0].Partitions) == 0 {
				return false
			}
		}
		return true
	})

	want := map[string]bool{}
	var batch []*message.Message
	for i := range n {
		msg := toMessage(t, envelope("group", fmt.Sprintf("slot-%d", i%37), i))
		want[msg.UUID] = true
		batch = append(batch, msg)
	}
	if err := pub.Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}

	seen := func() map[string]bool {
		s := map[string]bool{}
		for _, m := range append(a.snapshot(), b.snapshot()...) {
			s[m.UUID] = true
		}
		return s
	}
	waitFor(t, "every message received", func() bool { return len(seen()) == n })

	partsOf := func(c *collector) map[int32]bool {
		ps := map[int32]bool{}
		for _, m := range c.snapshot() {
			rec, _ := kafka.RecordFromCtx(m.Context())
			p := rec.Partition
			ps[p] = true
		}
		return ps
	}
	pa, pb := partsOf(a), partsOf(b)
	if len(pa) == 0 || len(pb) == 0 {
		t.Fatalf("one subscriber got nothing: partitions %v and %v", pa, pb)
	}
	for p := range pa {
		if pb[p] {
			t.Errorf("partition %d consumed by both subscribers", p)
		}
	}
	if len(pa)+len(pb) != kafkatest.Partitions {
		t.Errorf("partitions %v + %v, want all %d", pa, pb, kafkatest.Partitions)
	}
	for id := range seen() {
		if !want[id] {
			t.Errorf("unexpected message %s", id)
		}
	}
	t.Logf("subscriber A: %d messages on partitions %v; B: %d on %v",
		len(a.snapshot()), pa, len(b.snapshot()), pb)
}

// Close a subscriber mid-stream and open another in the same group: every
// message arrives, and what the first acked is not replayed (its committed
// offsets are honoured) except, at most, the last ack of each partition
// racing the close.
func TestCloseMidStreamAndResume(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	const topic, group, n, firstHalf = "bus-resume", "resume", 300, 120
	createTopic(t, brokers, topic)

	all := map[string]bool{}
	var batch []*message.Message
	for i := range n {
		msg := toMessage(t, envelope("resume", fmt.Sprintf("slot-%d", i%11), i))
		all[msg.UUID] = true
		batch = append(batch, msg)
	}
	if err := pub.Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}

	sub1, err := kafka.NewSubscriber(kafka.Config{Brokers: brokers, ConsumerGroup: group}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ch1 := subscribe(t, sub1, topic)
	acked := map[string]bool{}
	for range firstHalf {
		msg := receive(t, ch1, "first subscriber")
		acked[msg.UUID] = true
		msg.Ack()
	}
	// The next message is in flight, never acked: it must come again.
	inFlight := receive(t, ch1, "in-flight message")
	if err := sub1.Close(); err != nil {
		t.Fatal(err)
	}
	for range ch1 { // closed: drains and ends
	}

	ch2 := subscribe(t, newSubscriber(t, brokers, group), topic)
	got := map[string]bool{}
	replayed := 0
	for len(acked)+len(got)-replayed < n {
		msg := receive(t, ch2, fmt.Sprintf("resumed subscriber (%d+%d of %d)", len(acked), len(got), n))
		if got[msg.UUID] {
			t.Fatalf("%s delivered twice to the same subscriber", msg.UUID)
		}
		got[msg.UUID] = true
		if acked[msg.UUID] {
			replayed++
		}
		msg.Ack()
	}
	if !got[inFlight.UUID] {
		t.Errorf("in-flight message %s (never acked) not delivered again", inFlight.UUID)
	}
	for id := range all {
		if !acked[id] && !got[id] {
			t.Errorf("message %s lost", id)
		}
	}
	if replayed > kafkatest.Partitions {
		t.Errorf("%d acked messages replayed after reopen: committed offsets not honoured", replayed)
	}
	t.Logf("first subscriber acked %d, second received %d (%d of them replays)", len(acked), len(got), replayed)
}

// A topic that does not exist (no auto creation) is a failure of the whole
// topic, not of its messages: none is refused (the relay would move them to
// the dead letters one by one and lose their order); Publish returns the
// plain error, recognisable with errors.Is(err, kafka.ErrUnknownTopic), and
// the messages stay pending until an operator creates the topic.
func TestUnknownTopicIsPendingNotRefused(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1)) // auto creation off, as on many clusters
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pub := newPublisher(t, kafka.Config{Brokers: c.ListenAddrs(), Sarama: fastRetries})

	msgs := []*message.Message{
		toMessage(t, envelope("nope", "s1", 0)),
		toMessage(t, envelope("nope", "s1", 1)),
		toMessage(t, envelope("nope", "s2", 2)),
	}
	err = pub.Publish("no-such-topic", msgs...)
	if _, isBatch := publisher.AsBatchError(err); isBatch || !errors.Is(err, kafka.ErrUnknownTopic) || !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Fatalf("Publish: %v; want the plain ErrUnknownTopic (every message pending), no BatchError", err)
	}
	t.Logf("missing topic: %v", err)
}

// A message over the size limit is refused on its own; the rest of the
// batch is delivered.
func TestTooLargeMessageIsRefusedAlone(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	const topic = "bus-large"

	small1 := toMessage(t, envelope("large", "s", 0))
	big := toMessage(t, envelope("large", "s", 1))
	big.Payload = bytes.Repeat([]byte("x"), 2<<20)
	small2 := toMessage(t, envelope("large", "s", 2))
	err := pub.Publish(topic, small1, big, small2)
	be, ok := publisher.AsBatchError(err)
	if !ok {
		t.Fatalf("Publish: %v, want a *publisher.BatchError", err)
	}
	if len(be.Refused) != 1 || !errors.Is(be.Refused[big.UUID], kafka.ErrMessageTooLarge) || len(be.Pending) != 0 {
		t.Fatalf("refused %v, pending %v; want only %s refused as too large", be.Refused, be.Pending, big.UUID)
	}
	var ids []string
	for _, r := range readRecords(t, brokers, topic, 2) {
		ids = append(ids, string(r.Key)+"/"+headerOf(r, kafka.UUIDHeader))
	}
	if want := []string{"s/" + small1.UUID, "s/" + small2.UUID}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("records %v, want %v", ids, want)
	}
}

// Metadata that would collide with the UUID header is refused, not sent.
func TestReservedMetadataIsRefused(t *testing.T) {
	brokers := kafkatest.Start(t)
	pub := newPublisher(t, kafka.Config{Brokers: brokers})
	bad := toMessage(t, envelope("reserved", "s", 0))
	bad.Metadata.Set(kafka.UUIDHeader, "spoofed")
	be, ok := publisher.AsBatchError(pub.Publish("bus-reserved", bad))
	if !ok || !errors.Is(be.Refused[bad.UUID], kafka.ErrInvalidMessage) {
		t.Fatalf("got %v, want %s refused as invalid", be, bad.UUID)
	}
}

// A broker that is gone is a transient failure: the plain error (the whole
// batch stays pending), never a refusal.
func TestBrokerDownIsTransient(t *testing.T) {
	c := kafkatest.StartCluster(t)
	pub := newPublisher(t, kafka.Config{Brokers: c.ListenAddrs(), Sarama: fastRetries})
	if err := pub.Publish("bus-down", toMessage(t, envelope("down", "s", 0))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	err := pub.Publish("bus-down", toMessage(t, envelope("down", "s", 1)), toMessage(t, envelope("down", "s", 2)))
	if err == nil {
		t.Fatal("publish to a closed broker succeeded")
	}
	if _, ok := publisher.AsBatchError(err); ok || errors.Is(err, kafka.ErrUnknownTopic) {
		t.Fatalf("got %v, want a plain transient error", err)
	}
	t.Logf("broker down: %v", err)
}

// Records written by other producers (no UUID header) still unmarshal.
func TestUnmarshalForeignRecord(t *testing.T) {
	m := kafka.Marshaler{}
	msg, err := m.Unmarshal(&sarama.ConsumerMessage{Topic: "t", Partition: 2, Offset: 7, Value: []byte(`{}`)})
	if err != nil || msg.UUID != "kafka:t/2/7" {
		t.Fatalf("got %v, %v; want UUID kafka:t/2/7", msg, err)
	}
	msg, err = m.Unmarshal(&sarama.ConsumerMessage{Headers: []*sarama.RecordHeader{
		{Key: []byte(publisher.MetaEventID), Value: []byte("ev-1")},
	}})
	if err != nil || msg.UUID != "ev-1" || msg.Metadata.Get(publisher.MetaEventID) != "ev-1" {
		t.Fatalf("got %v, %v; want UUID ev-1 from the event-id header", msg, err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []kafka.Config{
		{},
		{Brokers: []string{"x:1"}, InitialOffset: "latest"},
		{Brokers: []string{"x:1"}, KafkaVersion: "banana"},
	} {
		if _, err := kafka.NewSubscriber(cfg, nil); err == nil {
			t.Errorf("NewSubscriber(%+v): no error", cfg)
		}
		if _, err := kafka.NewPublisher(cfg, nil); err == nil {
			t.Errorf("NewPublisher(%+v): no error", cfg)
		}
	}
}

func fastRetries(c *sarama.Config) {
	c.Metadata.Retry.Max = 1
	c.Metadata.Retry.Backoff = 10 * time.Millisecond
	c.Producer.Retry.Max = 1
	c.Producer.Retry.Backoff = 10 * time.Millisecond
	c.Net.DialTimeout = time.Second
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
