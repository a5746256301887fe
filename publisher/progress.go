package publisher

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

type inProgressKey struct{}

// WithInProgress returns ctx carrying fn, which tells the broker that the
// message delivered with it is still being worked on, so its redelivery
// deadline starts again (JetStream's +WPI, an SQS visibility extension).
// Subscribers of brokers with such a deadline set it on every message.
func WithInProgress(ctx context.Context, fn func()) context.Context {
	return context.WithValue(ctx, inProgressKey{}, fn)
}

// InProgress returns the function that tells msg's broker that msg is
// still being worked on, or nil when the broker has no way to hear it. Read
// it where the message is received: a message's context is not safe to read
// while another goroutine (the router) sets it.
func InProgress(msg *message.Message) func() {
	fn, _ := msg.Context().Value(inProgressKey{}).(func())
	return fn
}
