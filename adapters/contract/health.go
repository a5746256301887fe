package contract

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/publisher"
)

// pinger is a publisher that tells whether its broker answers (the
// readiness probe). Every adapter of emitd is one.
type pinger interface {
	Ping(ctx context.Context, topic string) error
}

// depther is a publisher that tells how many messages wait for a group
// (the poison queue's depth), where the broker can.
type depther interface {
	QueueDepth(ctx context.Context, topic, group string) (int64, error)
}

// health: the broker answers a ping for a topic that exists; where the
// adapter reports queue depth, messages published and not taken are
// counted, and reading the depth takes nothing away.
func (s *suite) health(t *testing.T) {
	pub := s.f.NewPublisher(t)
	t.Cleanup(func() { pub.Close() })
	topic := s.f.NewTopic(t)
	checkPing(t, s.name, pub, topic)
	d, ok := pub.(depther)
	if !ok {
		t.Skipf("[%s] the broker cannot tell a queue's depth", s.name)
	}
	const group = "depth"
	// The group's queue or consumer exists before anything is published
	// (RabbitMQ keeps nothing for a queue that is not there yet).
	sub := s.f.NewSubscriber(t, group)
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(topic); err != nil {
			s.fatalf(t, "subscribe initialize: %v", err)
		}
	}
	sub.Close()
	var msgs []*message.Message
	for _, e := range Envelopes(topic, 3, Slots(1)) {
		m, err := publisher.ToMessage(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		s.fatalf(t, "publish: %v", err)
	}
	deadline := time.Now().Add(WaitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := d.QueueDepth(ctx, topic, group)
		cancel()
		if err == nil && n == 3 {
			break
		}
		if time.Now().After(deadline) {
			s.fatalf(t, "queue depth %d (%v), want the 3 messages published", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Asking again changes nothing: the depth is read, never taken.
	if n, err := d.QueueDepth(context.Background(), topic, group); err != nil || n != 3 {
		s.fatalf(t, "queue depth asked again: %d (%v), want 3 still", n, err)
	}
}

func checkPing(t *testing.T, name string, pub message.Publisher, topic string) {
	t.Helper()
	p, ok := pub.(pinger)
	if !ok {
		t.Fatalf("[%s] the publisher has no Ping(ctx, topic): the readiness probe needs it", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Ping(ctx, topic); err != nil {
		t.Fatalf("[%s] ping of a broker that is up, for topic %q: %v", name, topic, err)
	}
}
