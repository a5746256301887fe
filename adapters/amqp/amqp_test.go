package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

const name = "amqp-rabbitmq"

// machineBroker returns the machine's RabbitMQ URL, or skips (fails under
// CI) when it is not reachable.
func machineBroker(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf("[%s] RabbitMQ at %s unusable: ", name, amqp.DefaultURL) + fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set: the broker is required)")
		}
		t.Skip(msg + " (set CI to make this a failure)")
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:5672", 2*time.Second)
	if err != nil {
		unavailable("%v", err)
	}
	_ = c.Close()
	conn, err := amqp091.Dial(amqp.DefaultURL)
	if err != nil {
		unavailable("%v", err)
	}
	_ = conn.Close()
	return amqp.DefaultURL
}

// queues remembers the durable queues a test declared, to delete them at
// the end: the machine's broker outlives the tests.
type queues struct {
	mu    sync.Mutex
	names map[string]bool
}

func (q *queues) add(n string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.names[n] = true
}

func (q *queues) deleteAll(t *testing.T, url string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for n := range q.names {
		ch, err := conn.Channel()
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		if _, err := ch.QueueDelete(n, false, false, false); err != nil {
			t.Logf("cleanup: delete queue %s: %v", n, err)
		}
		_ = ch.Close()
	}
	q.names = map[string]bool{}
}

// recording wraps a subscriber to learn the queues it declares.
type recording struct {
	*amqp.Subscriber
	group string
	q     *queues
}

func (r recording) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if r.group != "" {
		r.q.add(amqp.QueueName(topic, r.group))
	}
	return r.Subscriber.Subscribe(ctx, topic)
}

func (r recording) SubscribeInitialize(topic string) error {
	if r.group != "" {
		r.q.add(amqp.QueueName(topic, r.group))
	}
	return r.Subscriber.SubscribeInitialize(topic)
}

func testConfig(url string) amqp.Config {
	return amqp.Config{URL: url, Exchange: "emitd-test"}
}

func TestContract(t *testing.T) {
	url := machineBroker(t)
	cfg := testConfig(url)
	q := &queues{names: map[string]bool{}}
	t.Cleanup(func() { q.deleteAll(t, url) })

	f := contract.Factory{
		Name: name,
		NewPublisher: func(t *testing.T) message.Publisher {
			p, err := amqp.NewPublisher(cfg)
			if err != nil {
				t.Fatalf("[%s] NewPublisher: %v", name, err)
			}
			return p
		},
		NewSubscriber: func(t *testing.T, group string) message.Subscriber {
			s, err := amqp.NewSubscriber(cfg, group)
			if err != nil {
				t.Fatalf("[%s] NewSubscriber(%q): %v", name, group, err)
			}
			return recording{Subscriber: s, group: group, q: q}
		},
		// Topics are routing keys on one exchange: nothing to create.
		NewTopic: func(t *testing.T) string { return "emitd-test." + uuid.NewString()[:12] },
	}
	contract.Run(t, f, contract.Features{
		PerKeyOrder:    true,
		GlobalOrder:    true, // one queue, delivered in queue order
		ConsumerGroups: true,
		Persistent:     true, // once the group's queue is declared
		Redelivery:     true,
		InFlight:       20,
		NativeCheck: func(t *testing.T, topic string, sent []domain.Envelope) {
			nativeCheck(t, cfg, topic, sent)
		},
		CloudEvents: &contract.CloudEventsBinding{
			// the AMQP binding's, as the spec writes it
			Prefix: "cloudEvents:", Read: func(t *testing.T, topic string, n int) []contract.Native {
				return readNative(t, cfg, topic, n)
			}},
	})
}

// readNative takes n messages from the native group's queue with
// amqp091-go, no Watermill: headers are the application properties, the
// content type is the content-type property.
func readNative(t *testing.T, cfg amqp.Config, topic string, n int) []contract.Native {
	t.Helper()
	conn, err := amqp091.Dial(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	queue := amqp.QueueName(topic, contract.NativeGroup)
	var out []contract.Native
	deadline := time.Now().Add(contract.WaitTimeout)
	for len(out) < n {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d messages in queue %s", len(out), n, queue)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		h := map[string]string{}
		for k, v := range d.Headers {
			h[k] = fmt.Sprint(v)
		}
		out = append(out, contract.Native{Headers: h, ContentType: d.ContentType, Body: d.Body})
	}
	return out
}

// nativeCheck reads the native group's queue with amqp091-go, no
// Watermill: exchange, routing key, body, headers, properties.
func nativeCheck(t *testing.T, cfg amqp.Config, topic string, sent []domain.Envelope) {
	t.Helper()
	conn, err := amqp091.Dial(cfg.URL)
	if err != nil {
		t.Fatalf("[%s] native dial: %v", name, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("[%s] native channel: %v", name, err)
	}
	defer ch.Close()
	queue := amqp.QueueName(topic, contract.NativeGroup)
	for i, env := range sent {
		var d amqp091.Delivery
		deadline := time.Now().Add(contract.WaitTimeout)
		for {
			var ok bool
			d, ok, err = ch.Get(queue, false)
			if err != nil {
				t.Fatalf("[%s] get from %s: %v", name, queue, err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("[%s] message %d not in queue %s", name, i, queue)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if d.Exchange != cfg.Exchange || d.RoutingKey != topic {
			t.Errorf("[%s] message %d: exchange %q routing key %q, want %q %q", name, i, d.Exchange, d.RoutingKey, cfg.Exchange, topic)
		}
		if want := contract.EntryJSON(t, env); string(d.Body) != string(want) {
			t.Errorf("[%s] message %d: body\n got %s\nwant %s", name, i, d.Body, want)
		}
		for k, v := range contract.HeaderKeys(env) {
			if got, _ := d.Headers[k].(string); got != v {
				t.Errorf("[%s] message %d: header %q = %#v, want %q", name, i, k, d.Headers[k], v)
			}
		}
		if _, ok := d.Headers[publisher.MetaCorrelationID]; env.CorrelationID == "" && ok {
			t.Errorf("[%s] message %d: header %q present for an envelope without correlation id", name, i, publisher.MetaCorrelationID)
		}
		if d.MessageId != env.ID || d.CorrelationId != env.CorrelationID || d.ContentType != "application/json" {
			t.Errorf("[%s] message %d: properties message-id %q correlation-id %q content-type %q, want %q %q application/json",
				name, i, d.MessageId, d.CorrelationId, d.ContentType, env.ID, env.CorrelationID)
		}
		if d.DeliveryMode != amqp091.Persistent {
			t.Errorf("[%s] message %d: delivery mode %d, want persistent", name, i, d.DeliveryMode)
		}
		if err := d.Ack(false); err != nil {
			t.Fatalf("[%s] ack: %v", name, err)
		}
	}
	if _, ok, _ := ch.Get(queue, false); ok {
		t.Errorf("[%s] queue %s holds more than the %d messages sent", name, queue, len(sent))
	}
}

// TestForeignHeaders: a message published by a plain AMQP client with
// non-string headers and no Watermill UUID header is delivered (not requeued
// forever), its UUID taken from message-id.
func TestForeignHeaders(t *testing.T) {
	url := machineBroker(t)
	cfg := testConfig(url)
	topic := "emitd-test." + uuid.NewString()[:12]
	sub, err := amqp.NewSubscriber(cfg, "foreign")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	q := &queues{names: map[string]bool{amqp.QueueName(topic, "foreign"): true}}
	defer q.deleteAll(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}

	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	err = ch.PublishWithContext(ctx, cfg.Exchange, topic, false, false, amqp091.Publishing{
		MessageId: "foreign-1",
		Headers:   amqp091.Table{"attempt": int32(3), "source": "legacy"},
		Body:      []byte(`{"hello":"world"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.UUID != "foreign-1" || m.Metadata.Get("attempt") != "3" || m.Metadata.Get("source") != "legacy" {
			t.Errorf("[%s] got UUID %q metadata %v", name, m.UUID, m.Metadata)
		}
		m.Ack()
	case <-time.After(contract.WaitTimeout):
		t.Fatalf("[%s] foreign message not delivered", name)
	}
}

// An envelope no queue is bound for is not confirmed-and-lost: the broker
// returns it (mandatory), Publish says so (pending, ErrUnroutable), and the
// same message goes through once a queue is bound. A topic in
// DropUnroutable (the results topic) is published without the flag.
func TestUnroutableIsPendingUntilAQueueIsBound(t *testing.T) {
	url := machineBroker(t)
	cfg := testConfig(url)
	cfg.DropUnroutable = []string{"emitd-test.results"}
	pub, err := amqp.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	topic := "emitd-test." + uuid.NewString()[:12]
	env := contract.Envelopes(topic, 2, contract.Slots(1))
	msgs := []*message.Message{}
	for _, e := range env {
		m, _ := publisher.ToMessage(e)
		msgs = append(msgs, m)
	}
	err = pub.Publish(topic, msgs...)
	if !errors.Is(err, amqp.ErrUnroutable) {
		t.Fatalf("publish with no queue bound: %v, want ErrUnroutable", err)
	}
	if _, isBatch := publisher.AsBatchError(err); isBatch {
		t.Fatalf("every message was unroutable: want the plain error (the bus failed), got %v", err)
	}
	if err := pub.Publish("emitd-test.results", msgs[0]); err != nil {
		t.Fatalf("a DropUnroutable topic: %v", err)
	}

	sub, err := amqp.NewSubscriber(cfg, "bound")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	q := &queues{names: map[string]bool{amqp.QueueName(topic, "bound"): true}}
	defer q.deleteAll(t, url)
	if err := sub.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatalf("publish once a queue is bound: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		select {
		case m := <-ch:
			if m.UUID != msgs[i].UUID {
				t.Errorf("got %s, want %s", m.UUID, msgs[i].UUID)
			}
			m.Ack()
		case <-time.After(contract.WaitTimeout):
			t.Fatal("bound queue got nothing")
		}
	}
}
