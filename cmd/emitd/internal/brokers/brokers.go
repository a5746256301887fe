// Package brokers turns the configuration's broker choice into Watermill
// publishers and subscribers. It is the only place that knows every adapter;
// the router, relay and CLI see message.Publisher and message.Subscriber.
package brokers

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/publisher"
)

// DeadLetterGroup is the consumer group that moves poison-queue messages
// into the dead-letter store (`emitd dlq`, `emitd replay`). The daemon's own
// group never reads the poison queue.
const DeadLetterGroup = "emitd-dlq"

// SubscribeOptions says how a subscriber reads a topic.
type SubscribeOptions struct {
	// Group shares the work between subscribers of the same group (the
	// daemon's command consumers). "" reads on its own without affecting
	// anyone (tail, dlq list).
	Group string
	// FromBeginning starts from what the broker retains instead of new messages.
	FromBeginning bool
	// Consume lets a reader without group take messages away from a queue
	// that cannot be read otherwise (SQS: every receive takes). Without it
	// such a reader is refused, so `emitd tail` never steals by surprise.
	Consume bool
	// MaxInFlight bounds the messages delivered and not yet acknowledged
	// (router.maxInFlight for the daemon); 0: the adapter's default.
	MaxInFlight int
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
	// Ping says whether the broker answers for topic, within ctx (the
	// readiness probe).
	Ping(ctx context.Context, topic string) error
	Close() error
}

// QueueDepther is a broker that can tell how many messages wait on topic
// for group (JetStream, SQS, RabbitMQ), by reading only.
type QueueDepther interface {
	QueueDepth(ctx context.Context, topic, group string) (int64, error)
}

// QueueDepth is b's depth of topic for group; ok is false when the broker
// cannot tell (Kafka, SNS, EventBridge).
func QueueDepth(ctx context.Context, b Broker, topic, group string) (n int64, ok bool, err error) {
	d, can := b.(QueueDepther)
	if !can {
		return 0, false, nil
	}
	n, err = d.QueueDepth(ctx, topic, group)
	return n, true, err
}

// Open connects to the broker named kind (commands.broker or events.broker).
// For the embedded broker it connects to the server the daemon runs; see
// StartEmbedded. The configuration has been validated: the section of kind
// is there.
func Open(ctx context.Context, kind string, cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	switch kind {
	case configs.BrokerEmbedded:
		e := cfg.Brokers.Embedded
		// JoinHostPort brackets an IPv6 host (nats://[::1]:4233); joined by
		// hand, "::1:4233" is no address at all.
		return openNATS(kind, "nats://"+net.JoinHostPort(e.Host, strconv.Itoa(e.Port)), logger)
	case configs.BrokerNATS:
		return openNATS(kind, cfg.Brokers.NATS.URL, logger)
	case configs.BrokerKafka:
		return openKafka(cfg, logger)
	case configs.BrokerSQS:
		return openSQS(ctx, cfg, logger)
	case configs.BrokerSNS:
		return openSNS(ctx, cfg, logger)
	case configs.BrokerEventBridge:
		return openEventBridge(ctx, cfg, logger)
	case configs.BrokerAMQP:
		return openAMQP(cfg, logger)
	default:
		return nil, fmt.Errorf("broker %q is not available in this build", kind)
	}
}

// topicPath names the configuration field that set topic, for errors that
// tell an operator what to fix.
func topicPath(cfg *configs.Config, topic string) string {
	switch topic {
	case cfg.Commands.Topic:
		return "commands.topic"
	case cfg.Commands.DLQTopic:
		return "commands.dlqTopic"
	case cfg.Commands.ResultsTopic:
		return "commands.resultsTopic"
	case cfg.Events.DomainBus:
		return "events.domainBus"
	case cfg.Events.AnalyticsBus:
		return "events.analyticsBus"
	}
	return "topic"
}

// announced logs "subscribed" once a Subscribe has taken effect (the queue is
// bound, the consumer exists): from then on nothing published is missed.
// `emitd --log-level info tail` shows it, which is how scripts (and the
// end-to-end tests) know when to start publishing on brokers that keep
// nothing for a reader that is not there yet (RabbitMQ, SNS).
type announced struct {
	message.Subscriber
	broker string
	logger watermill.LoggerAdapter
}

func (s announced) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	ch, err := s.Subscriber.Subscribe(ctx, topic)
	if err == nil {
		s.logger.Info("subscribed", watermill.LogFields{"broker": s.broker, "topic": topic})
	}
	return ch, err
}

// reader wraps the subscriber of a reader without group (tail, dlq list).
func reader(sub message.Subscriber, err error, broker string, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	if err != nil {
		return nil, err
	}
	return announced{Subscriber: sub, broker: broker, logger: logger}, nil
}

// EventFormat is how envelopes travel on the events broker (events.format,
// events.cloudevents.mode): the relay publishes, and replay re-publishes,
// in it.
func EventFormat(cfg *configs.Config) publisher.Format {
	if cfg.Events.Format != configs.FormatCloudEvents {
		return publisher.Format{Name: publisher.FormatEventBridge}
	}
	return publisher.Format{Name: publisher.FormatCloudEvents, Mode: cfg.Events.CloudEvents.Mode}
}
