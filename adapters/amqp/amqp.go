// Package amqp is emitd's RabbitMQ (AMQP 0-9-1) adapter: a Watermill
// publisher and subscriber (watermill-amqp/v3) with the topology RabbitMQ
// users expect.
//
// Topology (docs/DESIGN.md, "Envelope on each broker": routing key per bus):
//   - one durable topic exchange, Config.Exchange (DefaultExchange "emitd");
//     every message is published to it with routing key = the Watermill topic
//     (the bus name, or the commands topic);
//   - a consumer group is a durable queue named QueueName(topic, group) =
//     topic + "_" + group (watermill-amqp's GenerateQueueNameTopicNameWithSuffix),
//     bound to the exchange with routing key = topic; the subscribers of a
//     group compete on that queue, every group gets every message;
//   - a subscriber without a group gets a private, server-deleted queue
//     (exclusive, auto-delete) that lives as long as its connection;
//   - body = the payload (the EventBridge entry JSON for an envelope),
//     headers = the Watermill metadata (source, detail-type, event-id,
//     correlation_id, slot-id) plus _watermill_message_uuid; the AMQP
//     properties message-id (= UUID, the event id), correlation-id and
//     content-type are set too, and delivery mode is persistent.
//
// RabbitMQ drops a message no queue is bound for. A group's queue exists from
// the first Subscribe or SubscribeInitialize of that group on; declare the
// groups of a bus (SubscribeInitialize) before publishing to it, or bind a
// queue of your own to the exchange.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/emitd/emitd/publisher"
)

// Defaults for Config fields left zero.
const (
	DefaultURL             = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultExchange        = "emitd"
	DefaultPrefetch        = 16
	DefaultChannelPoolSize = 4
)

// Config configures publishers and subscribers.
type Config struct {
	// URL of the broker; DefaultURL when empty.
	URL string
	// Exchange is the durable topic exchange everything is published to;
	// DefaultExchange when empty.
	Exchange string
	// Prefetch is how many unacknowledged deliveries the broker sends a
	// subscription ahead (they are handed to the handler one at a time, in
	// order); DefaultPrefetch when zero.
	Prefetch int
	// QueueArguments are passed when declaring group queues, e.g.
	// {"x-queue-type": "quorum"}. A queue that exists keeps its arguments
	// (RabbitMQ refuses a re-declaration with different ones).
	QueueArguments amqp091.Table
	// ChannelPoolSize is the number of publisher channels kept open;
	// DefaultChannelPoolSize when zero.
	ChannelPoolSize int
	// NoConfirm publishes without publisher confirms: faster, but Publish
	// returns before the broker has taken the message, so a broker crash can
	// lose what Publish reported as sent. Off by default.
	NoConfirm bool
	// Logger; watermill.NopLogger when nil.
	Logger watermill.LoggerAdapter
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Exchange == "" {
		c.Exchange = DefaultExchange
	}
	if c.Prefetch <= 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.ChannelPoolSize <= 0 {
		c.ChannelPoolSize = DefaultChannelPoolSize
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	return c
}

// QueueName is the durable queue of group on topic.
func QueueName(topic, group string) string {
	return wmamqp.GenerateQueueNameTopicNameWithSuffix(group)(topic)
}

func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("amqp: empty %s", what)
	}
	if len(s) > 200 { // queue names (topic_group) must stay under 255 bytes
		return fmt.Errorf("amqp: %s %q longer than 200 bytes", what, s)
	}
	if strings.ContainsAny(s, "*#") {
		return fmt.Errorf("amqp: %s %q contains a topic-exchange wildcard", what, s)
	}
	return nil
}

// marshaler is watermill-amqp's DefaultMarshaler (metadata <-> headers,
// persistent delivery) plus the AMQP properties, and an Unmarshal that
// accepts header values of any type: a non-string header set by a foreign
// publisher would otherwise be an unmarshal error, and watermill-amqp
// requeues such a message forever.
type marshaler struct{ wmamqp.DefaultMarshaler }

func newMarshaler() marshaler {
	return marshaler{wmamqp.DefaultMarshaler{
		PostprocessPublishing: func(p amqp091.Publishing) amqp091.Publishing {
			if id, ok := p.Headers[wmamqp.DefaultMessageUUIDHeaderKey].(string); ok {
				p.MessageId = id
			}
			if c, ok := p.Headers[publisher.MetaCorrelationID].(string); ok {
				p.CorrelationId = c
			}
			p.ContentType = "application/json"
			return p
		},
	}}
}

func (m marshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	if len(d.Headers) > 0 {
		h := make(amqp091.Table, len(d.Headers))
		for k, v := range d.Headers {
			switch v := v.(type) {
			case string:
				h[k] = v
			case []byte:
				h[k] = string(v)
			default:
				h[k] = fmt.Sprint(v)
			}
		}
		d.Headers = h
	}
	msg, err := m.DefaultMarshaler.Unmarshal(d)
	if err != nil {
		return nil, err
	}
	if msg.UUID == "" && d.MessageId != "" {
		msg.UUID = d.MessageId // published by a plain AMQP client
	}
	return msg, nil
}

func baseConfig(cfg Config) wmamqp.Config {
	wc := wmamqp.NewDurablePubSubConfig(cfg.URL, nil)
	wc.Connection.Reconnect = wmamqp.DefaultReconnectConfig()
	wc.Marshaler = newMarshaler()
	wc.Exchange = wmamqp.ExchangeConfig{
		GenerateName: wmamqp.GenerateExchangeNameConstant(cfg.Exchange),
		Type:         "topic",
		Durable:      true,
	}
	wc.QueueBind.GenerateRoutingKey = func(topic string) string { return topic }
	wc.Publish.GenerateRoutingKey = func(topic string) string { return topic }
	wc.Consume.Qos.PrefetchCount = cfg.Prefetch
	return wc
}

// Publisher publishes to the exchange with routing key = topic. With
// confirms on (the default) Publish returns once the broker has taken every
// message.
type Publisher struct {
	*wmamqp.Publisher
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher connects to the broker and declares the exchange on first
// publish.
func NewPublisher(cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	wc := baseConfig(cfg)
	wc.Publish.ConfirmDelivery = !cfg.NoConfirm
	wc.Publish.ChannelPoolSize = cfg.ChannelPoolSize
	p, err := wmamqp.NewPublisher(wc, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("amqp: publisher: %w", err)
	}
	return &Publisher{p}, nil
}

// Publish publishes messages to topic, in order.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	if err := checkName("topic", topic); err != nil {
		return err
	}
	if err := p.Publisher.Publish(topic, messages...); err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", topic, err)
	}
	return nil
}

// Subscriber consumes topics as one consumer group.
type Subscriber struct {
	*wmamqp.Subscriber
	group string
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber makes a subscriber of group (its queue on each topic is
// QueueName(topic, group)); "" for a private queue that sees every message
// published while it exists.
func NewSubscriber(cfg Config, group string) (*Subscriber, error) {
	cfg = cfg.withDefaults()
	wc := baseConfig(cfg)
	if group == "" {
		private := "private-" + watermill.NewShortUUID()
		wc.Queue = wmamqp.QueueConfig{
			GenerateName: wmamqp.GenerateQueueNameTopicNameWithSuffix(private),
			AutoDelete:   true,
			Exclusive:    true,
		}
	} else {
		if err := checkName("group", group); err != nil {
			return nil, err
		}
		wc.Queue = wmamqp.QueueConfig{
			GenerateName: wmamqp.GenerateQueueNameTopicNameWithSuffix(group),
			Durable:      true,
			Arguments:    cfg.QueueArguments,
		}
	}
	s, err := wmamqp.NewSubscriber(wc, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("amqp: subscriber: %w", err)
	}
	return &Subscriber{Subscriber: s, group: group}, nil
}

// Subscribe declares the group's queue and binding, then delivers its
// messages one at a time in queue order. A Nack requeues the message; a
// message in flight when the subscriber closes is requeued too.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := checkName("topic", topic); err != nil {
		return nil, err
	}
	ch, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("amqp: subscribe to %q: %w", topic, err)
	}
	return ch, nil
}

// SubscribeInitialize declares the exchange, the group's queue and its
// binding, so messages published from now on wait for the group.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if err := checkName("topic", topic); err != nil {
		return err
	}
	if s.group == "" {
		return errors.New("amqp: SubscribeInitialize needs a group: a private queue lives only while its subscriber does")
	}
	if err := s.Subscriber.SubscribeInitialize(topic); err != nil {
		return fmt.Errorf("amqp: initialize %q: %w", topic, err)
	}
	return nil
}
