// Package natsjs is emitd's NATS JetStream adapter: a Watermill publisher and
// subscriber (watermill-nats/v2, pkg/nats with JetStream enabled) and an
// embedded nats-server for the zero-setup default.
//
// Mapping (DESIGN.md, "Envelope on each broker"):
//   - one stream per topic (bus or commands topic), named StreamPrefix +
//     the topic with every character outside [A-Za-z0-9_-] replaced by '_',
//     capturing exactly the subject = topic;
//   - the NATS message body is the payload (the EventBridge entry JSON for an
//     envelope), the headers are the Watermill metadata (source,
//     detail-type, event-id, correlation_id, slot-id) plus
//     _watermill_message_uuid, and Nats-Msg-Id = the message UUID (the event
//     id), so JetStream drops a re-publish of the same event inside the
//     stream's duplicate window.
//
// Streams are created up front (EnsureStreams, Config.Topics,
// SubscribeInitialize); Watermill's AutoProvision stays off because it costs
// a stream lookup on every publish. Publishing to a topic without a stream
// fails (no responders), it never silently drops.
//
// A subscriber with a group uses one durable push consumer per (stream,
// group), delivering to a queue group of the same name: every subscriber of
// the group shares the messages, the group keeps its position when all of
// them are gone. The adapter creates that consumer itself and binds to it,
// because a consumer nats.go creates is deleted when its subscription
// unsubscribes, which would throw away the group's position (and, with
// DeliverNew, every message not yet acked) on each close. A subscriber
// without a group gets an ephemeral consumer of its own.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
)

// Defaults for Config fields left zero.
const (
	DefaultStreamPrefix  = "EMITD_"
	DefaultMaxAge        = 7 * 24 * time.Hour
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 1000
	DefaultCloseTimeout  = 30 * time.Second
)

// Config configures publishers, subscribers and EnsureStreams.
type Config struct {
	// URL of the NATS server, e.g. nats://127.0.0.1:4222 (or the URL
	// StartEmbedded returns).
	URL string
	// StreamPrefix prefixes every stream name; DefaultStreamPrefix when empty.
	StreamPrefix string
	// Topics whose streams NewPublisher and NewSubscriber create if missing
	// (once, at construction). Optional: EnsureStreams does the same.
	Topics []string

	// Stream settings, used only when this adapter creates a stream (an
	// existing stream is used as it is).
	//
	// MemoryStorage keeps streams in memory instead of files.
	MemoryStorage bool
	// MaxAge bounds how long a stream keeps messages: DefaultMaxAge when
	// zero, forever when negative.
	MaxAge time.Duration
	// Replicas for clustered servers; 1 when zero.
	Replicas int
	// DuplicateWindow is how long JetStream remembers message ids to drop
	// re-publishes; the server default (2 minutes) when zero.
	DuplicateWindow time.Duration
	// NoMsgID stops setting Nats-Msg-Id (turns broker-side de-duplication
	// of re-published events off).
	NoMsgID bool

	// Subscriber settings.
	//
	// DeliverAll: a consumer created by this subscriber starts at the first
	// message the stream holds ("from beginning"); otherwise it gets only
	// messages published after it was created ("new only"). A group's
	// durable consumer is created once: later subscribers of the group
	// resume where the group stopped, whatever this says.
	DeliverAll bool
	// AckWait is how long the server waits for an ack before redelivering,
	// and how long the subscriber waits for the handler's Ack/Nack;
	// DefaultAckWait when zero. A message the subscriber had taken but not
	// acknowledged when it closed comes back after AckWait.
	AckWait time.Duration
	// MaxAckPending bounds the unacknowledged messages per consumer;
	// DefaultMaxAckPending when zero.
	MaxAckPending int
	// MaxDeliver bounds deliveries of one message; unlimited when zero.
	MaxDeliver int
	// CloseTimeout bounds Close's wait for in-flight messages;
	// DefaultCloseTimeout when zero.
	CloseTimeout time.Duration

	// NatsOptions are passed to nats.Connect (credentials, TLS, name ...).
	NatsOptions []nats.Option
	// Logger; watermill.NopLogger when nil.
	Logger watermill.LoggerAdapter
}

func (c Config) withDefaults() Config {
	if c.StreamPrefix == "" {
		c.StreamPrefix = DefaultStreamPrefix
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	return c
}

// StreamName is the stream that holds topic.
func (c Config) StreamName(topic string) string {
	c = c.withDefaults()
	return c.StreamPrefix + sanitize(topic)
}

// sanitize maps s to the characters NATS allows in stream and consumer names.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("natsjs: empty topic")
	}
	if strings.ContainsAny(topic, "*> \t\r\n") || strings.HasPrefix(topic, ".") || strings.HasSuffix(topic, ".") || strings.Contains(topic, "..") {
		return fmt.Errorf("natsjs: topic %q is not a valid NATS subject (no wildcards, spaces or empty tokens)", topic)
	}
	return nil
}

func connect(cfg Config) (*nats.Conn, error) {
	if cfg.URL == "" {
		return nil, errors.New("natsjs: Config.URL is empty")
	}
	nc, err := nats.Connect(cfg.URL, cfg.NatsOptions...)
	if err != nil {
		return nil, fmt.Errorf("natsjs: connect to %s: %w", cfg.URL, err)
	}
	return nc, nil
}

// openJetStream connects and ensures the streams of cfg.Topics; on error
// nothing stays open.
func openJetStream(cfg Config) (*nats.Conn, nats.JetStreamContext, error) {
	nc, err := connect(cfg)
	if err != nil {
		return nil, nil, err
	}
	js, err := nc.JetStream()
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("natsjs: jetstream: %w", err)
	}
	if err := ensureStreams(context.Background(), js, cfg, cfg.Topics); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// EnsureStreams creates the stream of every topic that has none (see
// Config for its settings). An existing stream is left as it is, but it must
// capture the topic's subject. It connects to cfg.URL for the call.
func EnsureStreams(ctx context.Context, cfg Config, topics []string) error {
	cfg = cfg.withDefaults()
	nc, err := connect(cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return fmt.Errorf("natsjs: jetstream: %w", err)
	}
	return ensureStreams(ctx, js, cfg, topics)
}

func ensureStreams(ctx context.Context, js nats.JetStreamManager, cfg Config, topics []string) error {
	for _, topic := range topics {
		if err := ensureStream(ctx, js, cfg, topic); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js nats.JetStreamManager, cfg Config, topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	name := cfg.StreamName(topic)
	info, err := js.StreamInfo(name, nats.Context(ctx))
	if err == nil {
		for _, s := range info.Config.Subjects {
			if s == topic {
				return nil
			}
		}
		return fmt.Errorf("natsjs: stream %s exists but does not capture subject %q (it has %v)", name, topic, info.Config.Subjects)
	}
	if !errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("natsjs: stream %s: %w", name, err)
	}
	sc := &nats.StreamConfig{
		Name:        name,
		Description: "emitd topic " + topic,
		Subjects:    []string{topic},
		Retention:   nats.LimitsPolicy,
		Storage:     nats.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     nats.DiscardOld,
		Duplicates:  cfg.DuplicateWindow,
	}
	if cfg.MemoryStorage {
		sc.Storage = nats.MemoryStorage
	}
	if cfg.MaxAge > 0 {
		sc.MaxAge = cfg.MaxAge
	}
	for attempt := 1; ; attempt++ {
		if _, err = js.AddStream(sc, nats.Context(ctx)); err == nil {
			return nil
		}
		// Someone else may have created it meanwhile.
		if _, err2 := js.StreamInfo(name, nats.Context(ctx)); err2 == nil {
			return nil
		}
		// The server answers "error creating store for stream" when its file
		// store fails for a moment (seen under heavy parallel load); that is
		// worth two more tries before start-up fails.
		if attempt == 3 || !strings.Contains(err.Error(), "error creating store") {
			break
		}
		select {
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("natsjs: create stream %s for %q: %w", name, topic, ctx.Err())
		}
	}
	return fmt.Errorf("natsjs: create stream %s for %q: %w", name, topic, err)
}

// ---- publisher --------------------------------------------------------------

// Publisher publishes Watermill messages to JetStream; Publish returns once
// the stream has stored every message (one acknowledged round trip each).
type Publisher struct {
	*wmnats.Publisher
	nc  *nats.Conn
	js  nats.JetStreamContext
	cfg Config
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher connects to cfg.URL and ensures the streams of cfg.Topics.
func NewPublisher(cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	nc, js, err := openJetStream(cfg)
	if err != nil {
		return nil, err
	}
	wp, err := wmnats.NewPublisherWithNatsConn(nc, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false,
			TrackMsgId:    !cfg.NoMsgID,
		},
	}, cfg.Logger)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsjs: publisher: %w", err)
	}
	return &Publisher{Publisher: wp, nc: nc, js: js, cfg: cfg}, nil
}

// EnsureStreams is the package function on the publisher's connection.
func (p *Publisher) EnsureStreams(ctx context.Context, topics []string) error {
	return ensureStreams(ctx, p.js, p.cfg, topics)
}

// Publish publishes messages to topic (the NATS subject), in order.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	if err := p.Publisher.Publish(topic, messages...); err != nil {
		if errors.Is(err, nats.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("natsjs: publish to %q: no stream captures it (create it with EnsureStreams): %w", topic, err)
		}
		return fmt.Errorf("natsjs: publish to %q: %w", topic, err)
	}
	return nil
}

// ---- subscriber -------------------------------------------------------------

// Subscriber consumes topics as one consumer group (or, without a group,
// as a lone consumer that sees every message).
type Subscriber struct {
	cfg   Config
	group string // "" or the sanitized group: durable consumer and queue group name
	nc    *nats.Conn
	js    nats.JetStreamContext

	mu     sync.Mutex
	closed bool
	subs   []*wmnats.Subscriber
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber makes a subscriber for group ("" for none). The group name
// must consist of [A-Za-z0-9_-]; it is the durable consumer's name on every
// stream the subscriber reads and the NATS queue group.
func NewSubscriber(cfg Config, group string) (*Subscriber, error) {
	cfg = cfg.withDefaults()
	if group != "" && sanitize(group) != group {
		return nil, fmt.Errorf("natsjs: group %q: only letters, digits, '_' and '-' are allowed", group)
	}
	nc, js, err := openJetStream(cfg)
	if err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, group: group, nc: nc, js: js}, nil
}

func (s *Subscriber) deliverPolicy() nats.DeliverPolicy {
	if s.cfg.DeliverAll {
		return nats.DeliverAllPolicy
	}
	return nats.DeliverNewPolicy
}

// SubscribeInitialize creates the topic's stream and, for a group, its
// durable consumer, so that messages published from now on wait for the
// group even before anyone subscribes.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ensureStream(ctx, s.js, s.cfg, topic); err != nil {
		return err
	}
	if s.group == "" {
		return nil
	}
	return s.ensureConsumer(ctx, topic)
}

// ensureConsumer creates the group's durable push consumer on the topic's
// stream unless it exists (an existing one is used as it is: it holds the
// group's position).
func (s *Subscriber) ensureConsumer(ctx context.Context, topic string) error {
	stream := s.cfg.StreamName(topic)
	if _, err := s.js.ConsumerInfo(stream, s.group, nats.Context(ctx)); err == nil {
		return nil
	} else if !errors.Is(err, nats.ErrConsumerNotFound) {
		if errors.Is(err, nats.ErrStreamNotFound) {
			return fmt.Errorf("natsjs: topic %q has no stream %s (create it with EnsureStreams)", topic, stream)
		}
		return fmt.Errorf("natsjs: consumer %s on %s: %w", s.group, stream, err)
	}
	cc := &nats.ConsumerConfig{
		Durable:        s.group,
		Description:    "emitd group " + s.group,
		DeliverSubject: nats.NewInbox(),
		DeliverGroup:   s.group,
		DeliverPolicy:  s.deliverPolicy(),
		AckPolicy:      nats.AckExplicitPolicy,
		AckWait:        s.cfg.AckWait,
		MaxAckPending:  s.cfg.MaxAckPending,
		MaxDeliver:     s.cfg.MaxDeliver,
		FilterSubject:  topic,
	}
	if _, err := s.js.AddConsumer(stream, cc, nats.Context(ctx)); err != nil {
		// Another member of the group may have created it meanwhile.
		if _, err2 := s.js.ConsumerInfo(stream, s.group, nats.Context(ctx)); err2 == nil {
			return nil
		}
		return fmt.Errorf("natsjs: create consumer %s on %s: %w", s.group, stream, err)
	}
	return nil
}

// Subscribe delivers topic's messages, one at a time, in stream order; the
// next comes after the handler acked or nacked the previous one (a Nack
// makes the server redeliver it at once).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("natsjs: subscriber closed")
	}

	opts := []nats.SubOpt{nats.ManualAck()} // never let nats.go ack behind Watermill's back
	var durable wmnats.DurableCalculator
	if s.group != "" {
		if err := s.ensureConsumer(ctx, topic); err != nil {
			return nil, err
		}
		stream := s.cfg.StreamName(topic)
		// Bind: the consumer is ours, nats.go must not delete it on close.
		opts = append(opts, nats.Bind(stream, s.group))
		group := s.group
		durable = func(string, string) string { return group }
	} else {
		opts = append(opts,
			nats.AckExplicit(),
			nats.AckWait(s.cfg.AckWait),
			nats.MaxAckPending(s.cfg.MaxAckPending),
		)
		if s.cfg.DeliverAll {
			opts = append(opts, nats.DeliverAll())
		} else {
			opts = append(opts, nats.DeliverNew())
		}
		if s.cfg.MaxDeliver > 0 {
			opts = append(opts, nats.MaxDeliver(s.cfg.MaxDeliver))
		}
	}

	// One Watermill subscriber (and connection) per subscription, so its
	// JetStream options can name this topic's stream and consumer.
	nc, err := connect(s.cfg)
	if err != nil {
		return nil, err
	}
	ws, err := wmnats.NewSubscriberWithNatsConn(nc, wmnats.SubscriberSubscriptionConfig{
		Unmarshaler:       &wmnats.NATSMarshaler{},
		SubscribersCount:  1,
		AckWaitTimeout:    s.cfg.AckWait,
		CloseTimeout:      s.cfg.CloseTimeout,
		SubscribeTimeout:  30 * time.Second,
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		QueueGroupPrefix:  s.group,
		JetStream: wmnats.JetStreamConfig{
			AutoProvision:     false,
			SubscribeOptions:  opts,
			DurableCalculator: durable,
			AckAsync:          false, // Ack returns once the server has it
		},
	}, s.cfg.Logger)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsjs: subscriber: %w", err)
	}
	ch, err := ws.Subscribe(ctx, topic)
	if err != nil {
		// Not ws.Close: after a failed Subscribe it waits CloseTimeout for
		// an output that never started.
		nc.Close()
		if errors.Is(err, nats.ErrStreamNotFound) || strings.Contains(err.Error(), "no stream matches subject") {
			return nil, fmt.Errorf("natsjs: topic %q has no stream (create it with EnsureStreams): %w", topic, err)
		}
		return nil, fmt.Errorf("natsjs: subscribe to %q: %w", topic, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ws.Close()
		return nil, errors.New("natsjs: subscriber closed")
	}
	s.subs = append(s.subs, ws)
	return ch, nil
}

// Close ends every subscription (their channels close) and the connection.
// A group's durable consumer stays: the next subscriber resumes from it.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()

	var errs []error
	for _, ws := range subs {
		if err := ws.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.nc.Close()
	return errors.Join(errs...)
}
