package contract

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// RoundTrip publishes one message on topic and receives it through sub,
// within a minute: the smallest proof that a connection (a TLS listener, a
// login) carries messages both ways. Both are closed at the end.
func RoundTrip(t *testing.T, pub message.Publisher, sub message.Subscriber, topic string) {
	t.Helper()
	defer pub.Close()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	msg := message.NewMessage(uuid.NewString(), []byte(`{"hello":"round trip"}`))
	if err := pub.Publish(topic, msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case got := <-ch:
		got.Ack()
		if got.UUID != msg.UUID {
			t.Fatalf("received %s, want %s", got.UUID, msg.UUID)
		}
	case <-ctx.Done():
		t.Fatal("nothing received within a minute")
	}
}
