package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/kafka/kafkatest"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// wait is how long a test waits for something that should happen at once;
// generous, never a timing assertion.
const wait = 60 * time.Second

var logger watermill.LoggerAdapter = watermill.NopLogger{}

func envelope(bus, slot string, seq int) domain.Envelope {
	id := watermill.NewUUID()
	return domain.Envelope{
		EventBusName:  bus,
		Source:        "emitd.test",
		DetailType:    "SlotChanged",
		Detail:        fmt.Sprintf(`{"metadata":{"id":%q},"data":{"slotId":%q,"seq":%d,"text":"h\u00e9 \"q\" <&>"}}`, id, slot, seq),
		ID:            id,
		CorrelationID: "corr-" + id[:8],
		SlotID:        slot,
	}
}

func toMessage(t testing.TB, env domain.Envelope) *message.Message {
	t.Helper()
	msg, err := publisher.ToMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func newPublisher(t testing.TB, cfg kafka.Config) message.Publisher {
	t.Helper()
	pub, err := kafka.NewPublisher(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func newSubscriber(t testing.TB, brokers []string, group string) message.Subscriber {
	t.Helper()
	sub, err := kafka.NewSubscriber(kafka.Config{
		Brokers:         brokers,
		ConsumerGroup:   group,
		NackResendSleep: 10 * time.Millisecond,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func subscribe(t testing.TB, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// receive returns the next message of ch, failing the test after wait.
func receive(t testing.TB, ch <-chan *message.Message, what string) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		return msg
	case <-time.After(wait):
		t.Fatalf("%s: nothing within %s", what, wait)
	}
	return nil
}

// createTopic creates topic with kafkatest.Partitions partitions, so that
// consumer groups see every partition from the start.
func createTopic(t testing.TB, brokers []string, topic string, opts ...kgo.Opt) {
	t.Helper()
	adm := newAdmin(t, brokers, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, kafkatest.Partitions, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

func newAdmin(t testing.TB, brokers []string, opts ...kgo.Opt) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// readRecords reads n records of topic from the start with a plain franz-go
// client (opts: its TLS and SASL): what any Kafka consumer sees.
func readRecords(t testing.TB, brokers []string, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d of %d records within %s", topic, len(recs), n, wait)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// collector drains a subscription in the background, acking everything,
// and remembers what came.
type collector struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func collect(ch <-chan *message.Message) *collector {
	c := &collector{}
	go func() {
		for msg := range ch {
			c.mu.Lock()
			c.msgs = append(c.msgs, msg)
			c.mu.Unlock()
			msg.Ack()
		}
	}()
	return c
}

func (c *collector) snapshot() []*message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*message.Message(nil), c.msgs...)
}

// waitFor polls done until it holds, failing after wait.
func waitFor(t testing.TB, what string, done func() bool) {
	t.Helper()
	deadline := time.After(wait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-deadline:
			t.Fatalf("%s: not within %s", what, wait)
		case <-tick.C:
		}
	}
}

func ctxWait() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), wait)
}
