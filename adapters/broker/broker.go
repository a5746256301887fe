// Package broker is what every broker adapter offers emitd: the Broker
// interface the daemon and the CLI use, and the registry through which each
// broker's package makes itself known (its configuration section, its roles,
// its constructor). The daemon opens a broker by name; only the package that
// imports every broker (adapters/all) knows them all.
package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/configs"
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

// Spec is one broker as its package registers it.
type Spec struct {
	// Name is the key under brokers and the value of commands.broker and
	// events.broker that choose it.
	Name string
	// Commands and Events: the roles the broker can play.
	Commands, Events bool
	// Implicit: the broker needs no section from the operator; one with its
	// defaults is made when it is used without (see configs.BrokerKind).
	Implicit bool
	// NewSection returns a zero configuration section (a pointer).
	NewSection func() configs.BrokerSection
	// Open connects to the broker. The configuration has been validated:
	// the broker's section is there.
	Open func(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error)
	// SettleTime is how long a new reader may take before the first message
	// of a non-empty topic reaches it; 0: DefaultSettleTime.
	SettleTime time.Duration
	// BusDeadLetters is the kind of bus dead letter an events broker takes
	// back (`emitd replay --from-queue`): publisher.FromRuleTarget or
	// publisher.FromSubscription; "" for none.
	BusDeadLetters string
}

// DefaultSettleTime is Spec.SettleTime when it is not set: the brokers that
// deliver to a new reader at once.
const DefaultSettleTime = 2 * time.Second

var (
	mu    sync.RWMutex
	specs = map[string]Spec{}
)

// Register makes a broker available: to configurations (its section, its
// roles, through configs.RegisterBroker) and to Open. Each broker's package
// calls it from its init, as database/sql drivers do, so that importing the
// package is what adds the broker to a build.
func Register(s Spec) {
	if s.Open == nil {
		panic("broker: Register " + s.Name + " without Open")
	}
	configs.RegisterBroker(configs.BrokerKind{Name: s.Name, Commands: s.Commands, Events: s.Events,
		Implicit: s.Implicit, NewSection: s.NewSection})
	mu.Lock()
	defer mu.Unlock()
	specs[s.Name] = s
}

// Lookup returns the registered broker name.
func Lookup(name string) (Spec, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := specs[name]
	return s, ok
}

// Names lists the registered brokers, sorted.
func Names() []string { return configs.BrokerNames() }

// Open connects to the broker named name (commands.broker or events.broker).
func Open(ctx context.Context, name string, cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	s, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("broker %q is not available in this build", name)
	}
	return s.Open(ctx, cfg, logger)
}

// SettleTime is Spec.SettleTime of the broker name.
func SettleTime(name string) time.Duration {
	if s, ok := Lookup(name); ok && s.SettleTime > 0 {
		return s.SettleTime
	}
	return DefaultSettleTime
}

// TopicPath names the configuration field that set topic, for errors that
// tell an operator what to fix.
func TopicPath(cfg *configs.Config, topic string) string {
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

// Reader wraps the subscriber of a reader without group (tail, dlq list), so
// that it announces each subscription.
func Reader(sub message.Subscriber, err error, broker string, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	if err != nil {
		return nil, err
	}
	return announced{Subscriber: sub, broker: broker, logger: logger}, nil
}

// ConnectError is a failure to reach, secure or log in to a broker, in one
// shape for every broker: `<broker> <address>: <step> (<login>) failed:
// <reason>: <the library's error>`, e.g. `nats 127.0.0.1:4222:
// authentication (user "emitd") failed: the server refused the
// credentials: nats: Authorization Violation`. Each adapter fills it in
// from what its library reports; it names the address, the step and the
// login, never a secret, and keeps the library's error in the chain for
// errors.Is and errors.As.
type ConnectError struct {
	// Broker is the broker's kind: kafka, nats, amqp.
	Broker string
	// Address is the address (or addresses) dialled, without user
	// information.
	Address string
	// Step is "connect", "TLS handshake" or "authentication" (Kafka:
	// "SASL authentication").
	Step string
	// Login is the way of logging in and the user, never a password.
	Login string
	// Reason is what the failure points to, in an operator's terms; ""
	// when the library's error says it all.
	Reason string
	// Err is the library's error.
	Err error
}

func (e *ConnectError) Error() string {
	s := e.Broker + " " + e.Address + ": " + e.Step
	if e.Login != "" {
		s += " (" + e.Login + ")"
	}
	s += " failed"
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s + ": " + e.Err.Error()
}

func (e *ConnectError) Unwrap() error { return e.Err }
