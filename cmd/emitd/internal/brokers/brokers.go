// Package brokers turns the configuration's broker choice into Watermill
// publishers and subscribers. It is the only place that knows every adapter;
// the router, relay and CLI see message.Publisher and message.Subscriber.
package brokers

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/configs"
)

// SubscribeOptions says how a subscriber reads a topic.
type SubscribeOptions struct {
	// Group shares the work between subscribers of the same group (the
	// daemon's command consumers). "" reads on its own without affecting
	// anyone (tail, dlq list).
	Group string
	// FromBeginning starts from what the broker retains instead of new messages.
	FromBeginning bool
}

// Broker is one configured broker, as commands or as events see it.
type Broker interface {
	Name() string
	Publisher() message.Publisher
	// Subscriber reads topics; a broker that cannot be read back (EventBridge)
	// returns an error that says how to see its events.
	Subscriber(opts SubscribeOptions) (message.Subscriber, error)
	// EnsureTopics creates what the broker needs up front (streams, topics,
	// queues), so that publishing never pays for provisioning.
	EnsureTopics(ctx context.Context, topics ...string) error
	Close() error
}

// Open connects to the broker named kind (commands.broker or events.broker).
// For the embedded broker it connects to the server the daemon runs; see
// StartEmbedded.
func Open(ctx context.Context, kind string, cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	switch kind {
	case configs.BrokerEmbedded:
		e := cfg.Brokers.Embedded
		return openNATS(kind, fmt.Sprintf("nats://%s:%d", e.Host, e.Port), logger)
	case configs.BrokerNATS:
		return openNATS(kind, cfg.Brokers.NATS.URL, logger)
	default:
		return nil, fmt.Errorf("broker %q is not available in this build", kind)
	}
}
