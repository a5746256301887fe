// Package natsjs is emitd's NATS JetStream adapter: a Watermill publisher and
// subscriber on nats.go's jetstream API, and an embedded nats-server for the
// zero-setup default.
//
// Mapping (docs/DESIGN.md, "Envelope on each broker"):
//   - one stream per topic (bus or commands topic), named StreamPrefix +
//     the topic with every character outside [A-Za-z0-9_-] replaced by '_',
//     capturing exactly the subject = topic;
//   - the NATS message body is the payload (the EventBridge entry JSON for an
//     envelope), the headers are the Watermill metadata (source,
//     detail-type, event-id, correlation_id, slot-id) plus
//     _watermill_message_uuid, as watermill-nats writes them (its marshaler
//     is used, so Watermill consumers read emitd's messages), and
//     Nats-Msg-Id = the message UUID (the event id), so JetStream drops a
//     re-publish of the same event inside the stream's duplicate window.
//
// Why not watermill-nats' publisher and subscriber: they wait for one
// round trip per message (a synchronous publish, a synchronous ack, the next
// message only after the previous was acknowledged), which caps a consumer
// at one message in flight. emitd commits commands in batches, so it needs
// many messages delivered before the first is acknowledged, and publishes
// whose acknowledgements it awaits per batch. Here:
//   - Publish sends every message asynchronously and then waits for all the
//     stream's acknowledgements (one wait per batch, not per message);
//   - a subscriber with a group pulls from a durable pull consumer, keeps up
//     to Config.MaxInFlight messages delivered and unacknowledged, and
//     acknowledges asynchronously (the acks leave in the connection's
//     buffered writes, many per packet); a Nack asks for redelivery at once;
//   - a subscriber without group reads an ordered consumer of its own, which
//     needs no acks and takes nothing from anyone (`emitd tail`).
//
// Every connection has its reconnect buffer turned off: a publish made while
// disconnected fails at once instead of waiting in nats.go's buffer and
// going out after the reconnect, behind emitd's back (a dead letter for a
// command that was meanwhile redelivered and accepted, or an event past
// JetStream's duplicate window).
//
// Streams are created up front (EnsureStreams, Config.Topics,
// SubscribeInitialize). Publishing to a topic without a stream fails, it
// never silently drops.
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
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/publisher"
)

// Defaults for Config fields left zero.
const (
	DefaultStreamPrefix   = "EMITD_"
	DefaultMaxAge         = 7 * 24 * time.Hour
	DefaultAckWait        = 30 * time.Second
	DefaultMaxAckPending  = 20000
	DefaultMaxInFlight    = 1024
	DefaultCloseTimeout   = 30 * time.Second
	DefaultPublishTimeout = 10 * time.Second
	// DefaultDuplicateWindow is the window of streams created with
	// DuplicateWindow zero: the server's own default.
	DefaultDuplicateWindow = server.StreamDefaultDuplicatesWindow
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
	// re-publishes; the server default (DefaultDuplicateWindow) when zero.
	DuplicateWindow time.Duration
	// NoMsgID stops setting Nats-Msg-Id (turns broker-side de-duplication
	// of re-published events off).
	NoMsgID bool
	// PublishTimeout bounds the wait for the stream's acknowledgements of
	// one Publish (a message's context, when it ends sooner, ends it
	// sooner); DefaultPublishTimeout when zero.
	PublishTimeout time.Duration

	// Subscriber settings.
	//
	// DeliverAll: a consumer created by this subscriber starts at the first
	// message the stream holds ("from beginning"); otherwise it gets only
	// messages published after it was created ("new only"). A group's
	// durable consumer is created once: later subscribers of the group
	// resume where the group stopped, whatever this says.
	DeliverAll bool
	// AckWait is how long the server waits for an ack before redelivering;
	// DefaultAckWait when zero. A message the subscriber had taken but not
	// acknowledged when it closed is given back at once (Nak).
	AckWait time.Duration
	// MaxAckPending bounds the unacknowledged messages of a group's consumer
	// over all its subscribers; DefaultMaxAckPending when zero.
	MaxAckPending int
	// MaxInFlight bounds the messages one subscription has delivered (or
	// pulled ahead) and not yet seen acknowledged; DefaultMaxInFlight when
	// zero.
	MaxInFlight int
	// MaxDeliver bounds deliveries of one message; unlimited when zero.
	MaxDeliver int
	// CloseTimeout bounds Close's wait for in-flight messages;
	// DefaultCloseTimeout when zero.
	CloseTimeout time.Duration

	// Security (see security.go): how the connection authenticates, at
	// most one of CredsFile, NkeySeedFile, User/Password, Token; and TLS.
	//
	// CredsFile is a .creds file (user JWT + nkey seed) for servers in
	// operator mode.
	CredsFile string
	// NkeySeedFile holds a user nkey seed (SU...).
	NkeySeedFile string
	// User and Password replace any user:password@ of URL.
	User     string
	Password string
	// Token replaces any token@ of URL.
	Token string
	// TLS is the tls section; TLS is also on with a tls:// URL.
	TLS tlsconfig.Config

	// NatsOptions are passed to nats.Connect (credentials, TLS, name ...),
	// after the adapter's own (no reconnect buffer, reconnect for ever).
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
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
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

// isSubject says whether topic can be a stream's literal subject: no
// wildcards, no whitespace, no empty tokens. The configuration's check
// (brokers.go) and the adapter's use this one rule.
func isSubject(topic string) bool {
	return topic != "" && !strings.ContainsAny(topic, "*> \t\r\n") && !strings.HasPrefix(topic, ".") &&
		!strings.HasSuffix(topic, ".") && !strings.Contains(topic, "..")
}

func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("natsjs: empty topic")
	}
	if !isSubject(topic) {
		return fmt.Errorf("natsjs: topic %q is not a valid NATS subject (no wildcards, spaces or empty tokens)", topic)
	}
	return nil
}

func connect(cfg Config) (*nats.Conn, error) {
	if cfg.URL == "" {
		return nil, errors.New("natsjs: Config.URL is empty")
	}
	sec, err := cfg.securityOptions()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{
		// Publishes while disconnected fail at once (see the package doc).
		nats.ReconnectBufSize(-1),
		nats.MaxReconnects(-1),
	}, sec...)
	opts = append(opts, cfg.NatsOptions...)
	nc, err := nats.Connect(cfg.connectURL(), opts...)
	if err != nil {
		// Not the URL: it may carry a user and password or a token.
		return nil, cfg.connectError(err)
	}
	return nc, nil
}

// openJetStream connects and ensures the streams of cfg.Topics; on error
// nothing stays open.
func openJetStream(cfg Config) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := connect(cfg)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
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
	nc, js, err := openJetStream(cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	return ensureStreams(ctx, js, cfg, topics)
}

func ensureStreams(ctx context.Context, js jetstream.JetStream, cfg Config, topics []string) error {
	for _, topic := range topics {
		if err := ensureStream(ctx, js, cfg, topic); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg Config, topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	name := cfg.StreamName(topic)
	s, err := js.Stream(ctx, name)
	if err == nil {
		for _, subj := range s.CachedInfo().Config.Subjects {
			if subj == topic {
				return nil
			}
		}
		return fmt.Errorf("natsjs: stream %s exists but does not capture subject %q (it has %v)", name, topic, s.CachedInfo().Config.Subjects)
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("natsjs: stream %s: %w", name, err)
	}
	sc := jetstream.StreamConfig{
		Name:        name,
		Description: "emitd topic " + topic,
		Subjects:    []string{topic},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
		Duplicates:  cfg.DuplicateWindow,
	}
	if cfg.MemoryStorage {
		sc.Storage = jetstream.MemoryStorage
	}
	if cfg.MaxAge > 0 {
		sc.MaxAge = cfg.MaxAge
	}
	for attempt := 1; ; attempt++ {
		if _, err = js.CreateStream(ctx, sc); err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil // made, or made by someone else meanwhile
		}
		// The server answers "error creating store for stream" when its file
		// store fails for a moment (seen under heavy parallel load); that is
		// worth two more tries before start-up fails.
		if attempt == 3 || !storeFailed(err) {
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

// storeFailed says whether the server could not create a stream's store,
// for a moment. nats-server answers that as a stream-create error
// (JSStreamCreateErrF, 10049) whose description is its
// errStreamStoreFailed text (server/jetstream_api.go): the code alone
// covers every failed create, and no other field tells this one apart, so
// the description, a field of the API's answer, is compared here and only
// here.
func storeFailed(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jetstream.ErrorCode(server.JSStreamCreateErrF) &&
		api.Description == "error creating store for stream"
}

// ---- publisher --------------------------------------------------------------

// Publisher publishes Watermill messages to JetStream. Publish returns once
// the stream has stored every message, or says which it did not.
type Publisher struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	cfg       Config
	marshaler wmnats.NATSMarshaler

	mu     sync.RWMutex // Publish holds it shared, Close exclusively
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher connects to cfg.URL and ensures the streams of cfg.Topics.
func NewPublisher(cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	nc, js, err := openJetStream(cfg)
	if err != nil {
		return nil, err
	}
	return &Publisher{nc: nc, js: js, cfg: cfg}, nil
}

// EnsureStreams is the package function on the publisher's connection.
func (p *Publisher) EnsureStreams(ctx context.Context, topics []string) error {
	return ensureStreams(ctx, p.js, p.cfg, topics)
}

// ErrTooLarge: the message is larger than the server takes (its
// max_payload).
var ErrTooLarge = errors.New("natsjs: message larger than the server's max_payload")

// Publish sends messages to topic (the NATS subject), in order: all of them
// at once, then it waits for the stream's acknowledgements.
//
// It returns nil when every message was stored. A message too large for the
// server is refused for good; a message the stream did not acknowledge (the
// server down, the stream missing, a timeout) is pending. When nothing was
// stored and nothing refused, the error is the plain cause (the whole topic
// failed); otherwise a *publisher.BatchError names each message.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	if len(messages) == 0 {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errors.New("natsjs: publisher closed")
	}
	ctx, cancel := context.WithTimeout(messages[0].Context(), p.cfg.PublishTimeout)
	defer cancel()

	be := publisher.BatchError{Refused: map[string]error{}, Pending: map[string]error{}}
	futures := make([]jetstream.PubAckFuture, len(messages))
	limit := p.nc.MaxPayload()
	var first error
	for i, m := range messages {
		nm, err := marshal(&p.marshaler, topic, m)
		if err != nil {
			be.Refused[m.UUID] = fmt.Errorf("natsjs: marshal %s: %w", m.UUID, err)
			continue
		}
		if !p.cfg.NoMsgID {
			nm.Header.Set(nats.MsgIdHdr, m.UUID)
		}
		if size := int64(msgSize(nm)); size > limit {
			be.Refused[m.UUID] = fmt.Errorf("%w: %d bytes, the server takes %d", ErrTooLarge, size, limit)
			continue
		}
		f, err := p.js.PublishMsgAsync(nm)
		if err != nil {
			// Not even sent (disconnected, the async window full): this and
			// everything after it wait, so nothing goes out of order.
			first = err
			for _, rest := range messages[i:] {
				if be.Refused[rest.UUID] == nil {
					be.Pending[rest.UUID] = err
				}
			}
			break
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		m := messages[i]
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if tooLarge(err) {
				be.Refused[m.UUID] = err
			} else {
				be.Pending[m.UUID] = err
				if first == nil {
					first = err
				}
			}
		case <-ctx.Done():
			be.Pending[m.UUID] = fmt.Errorf("natsjs: no acknowledgement from the stream: %w", ctx.Err())
			if first == nil {
				first = be.Pending[m.UUID]
			}
		}
	}
	switch {
	case len(be.Refused) == 0 && len(be.Pending) == 0:
		return nil
	case len(be.Refused) == 0 && len(be.Pending) == len(messages):
		return p.topicError(topic, first)
	default:
		return fmt.Errorf("natsjs: publish to %q: %w (first failure: %v)", topic, &be, first)
	}
}

func (p *Publisher) topicError(topic string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("natsjs: publish to %q: no stream captures it (create it with EnsureStreams): %w", topic, err)
	}
	return fmt.Errorf("natsjs: publish to %q: %w", topic, err)
}

// msgSize is what the server counts against max_payload: headers and body.
func msgSize(m *nats.Msg) int {
	n := len(m.Data) + len(m.Subject)
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n + 12 // "NATS/1.0\r\n" and the closing CRLF
}

// tooLarge tells the stream's refusal of a message over its maximum size.
func tooLarge(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	return errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// Close waits for Publish calls in flight and closes the connection.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.nc.Close()
	return nil
}

// ---- subscriber -------------------------------------------------------------

// Subscriber consumes topics as one consumer group (or, without a group,
// as a lone reader that sees every message).
type Subscriber struct {
	cfg   Config
	group string // "" or the durable consumer's name
	nc    *nats.Conn
	js    jetstream.JetStream

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	subs    sync.WaitGroup // subscription loops
	open    sync.WaitGroup // messages delivered and not yet acked or nacked
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber makes a subscriber for group ("" for none). The group name
// must consist of [A-Za-z0-9_-]; it is the durable consumer's name on every
// stream the subscriber reads.
func NewSubscriber(cfg Config, group string) (*Subscriber, error) {
	cfg = cfg.withDefaults()
	if group != "" && sanitize(group) != group {
		return nil, fmt.Errorf("natsjs: group %q: only letters, digits, '_' and '-' are allowed", group)
	}
	nc, js, err := openJetStream(cfg)
	if err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, group: group, nc: nc, js: js, closing: make(chan struct{})}, nil
}

func (s *Subscriber) deliverPolicy() jetstream.DeliverPolicy {
	if s.cfg.DeliverAll {
		return jetstream.DeliverAllPolicy
	}
	return jetstream.DeliverNewPolicy
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
	_, err := s.consumer(ctx, topic)
	return err
}

// consumer returns the group's durable pull consumer on the topic's stream,
// creating it unless it exists (an existing one is used as it is: it holds
// the group's position).
func (s *Subscriber) consumer(ctx context.Context, topic string) (jetstream.Consumer, error) {
	stream := s.cfg.StreamName(topic)
	c, err := s.js.Consumer(ctx, stream, s.group)
	if err == nil {
		return c, nil
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("natsjs: topic %q has no stream %s (create it with EnsureStreams)", topic, stream)
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("natsjs: consumer %s on %s: %w", s.group, stream, err)
	}
	c, err = s.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       s.group,
		Description:   "emitd group " + s.group,
		DeliverPolicy: s.deliverPolicy(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: s.cfg.MaxAckPending,
		MaxDeliver:    s.cfg.MaxDeliver,
		FilterSubject: topic,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return s.js.Consumer(ctx, stream, s.group) // another member made it meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("natsjs: create consumer %s on %s: %w", s.group, stream, err)
	}
	return c, nil
}

// Subscribe delivers topic's messages in stream order. With a group, up to
// MaxInFlight of them are delivered before the first is acknowledged; a
// Nack gives a message back for redelivery at once.
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
	var cons jetstream.Consumer
	var err error
	if s.group != "" {
		cons, err = s.consumer(ctx, topic)
	} else {
		cons, err = s.js.OrderedConsumer(ctx, s.cfg.StreamName(topic), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{topic}, DeliverPolicy: s.deliverPolicy()})
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			err = fmt.Errorf("natsjs: topic %q has no stream (create it with EnsureStreams): %w", topic, err)
		}
	}
	if err != nil {
		return nil, err
	}
	// Pull a quarter of the window ahead; the rest is what the handler holds.
	ahead := max(1, s.cfg.MaxInFlight/4)
	iter, err := cons.Messages(jetstream.PullMaxMessages(ahead))
	if err != nil {
		return nil, fmt.Errorf("natsjs: subscribe to %q: %w", topic, err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		iter.Stop()
		return nil, errors.New("natsjs: subscriber closed")
	}
	s.subs.Add(1)
	s.mu.Unlock()

	out := make(chan *message.Message)
	window := make(chan struct{}, max(1, s.cfg.MaxInFlight-ahead))
	go func() {
		defer s.subs.Done()
		defer close(out)
		defer iter.Stop()
		go func() { // Next blocks: a stop ends it
			select {
			case <-ctx.Done():
			case <-s.closing:
			}
			iter.Stop()
		}()
		for {
			if s.group != "" {
				select {
				case window <- struct{}{}:
				case <-ctx.Done():
					return
				case <-s.closing:
					return
				}
			}
			jm, err := iter.Next()
			if err != nil {
				if s.group != "" {
					<-window
				}
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil || s.isClosing() {
					return
				}
				s.cfg.Logger.Info("natsjs: pull failed, retrying", watermill.LogFields{"topic": topic, "error": err.Error()})
				continue
			}
			msg, err := s.unmarshal(jm)
			if err != nil {
				s.cfg.Logger.Error("natsjs: cannot read message; terminated", err, watermill.LogFields{"topic": topic})
				_ = jm.Term()
				if s.group != "" {
					<-window
				}
				continue
			}
			if s.group != "" {
				msg.SetContext(publisher.WithInProgress(ctx, func() { _ = jm.InProgress() }))
				s.open.Add(1)
				go s.settle(jm, msg, window)
			} else {
				msg.SetContext(ctx)
			}
			select {
			case out <- msg:
			case <-ctx.Done():
				msg.Nack()
				return
			case <-s.closing:
				msg.Nack()
				return
			}
		}
	}()
	return out, nil
}

func (s *Subscriber) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// settle sends the message's ack or nack to the server once the handler
// decides, without waiting for an answer (the acks of a batch leave
// together in the connection's buffered writes).
func (s *Subscriber) settle(jm jetstream.Msg, msg *message.Message, window chan struct{}) {
	defer s.open.Done()
	defer func() { <-window }()
	var err error
	select {
	case <-msg.Acked():
		err = jm.Ack()
	case <-msg.Nacked():
		err = jm.Nak()
	case <-s.closing:
		// Still undecided when the subscriber closes (the router waits for
		// its messages before it closes this): given back at once, for the
		// next subscriber, instead of after the ack wait.
		select {
		case <-msg.Acked():
			err = jm.Ack()
		default:
			err = jm.Nak()
		}
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.cfg.Logger.Error("natsjs: cannot settle message; it comes back after the ack wait", err, watermill.LogFields{"message_uuid": msg.UUID})
	}
}

func (s *Subscriber) unmarshal(jm jetstream.Msg) (*message.Message, error) {
	var m wmnats.NATSMarshaler
	msg, err := m.Unmarshal(&nats.Msg{Subject: jm.Subject(), Data: jm.Data(), Header: jm.Headers()})
	if err != nil {
		return nil, err
	}
	for k, v := range msg.Metadata {
		if mk := metadataKey(k); mk != k {
			delete(msg.Metadata, k)
			msg.Metadata[mk] = v
		}
	}
	return msg, nil
}

// The CloudEvents NATS protocol binding, binary mode: every attribute is a
// header "ce-<name>", and datacontenttype is the "content-type" header.
// emitd's messages carry the attributes as neutral metadata
// (publisher.CEAttributePrefix); the adapter renames them both ways.
const (
	CEHeaderPrefix    = "ce-"
	ContentTypeHeader = "content-type"
	// UUIDHeader carries the Watermill message UUID (watermill-nats' key).
	UUIDHeader = wmnats.WatermillUUIDHdr
)

// HeaderName is the NATS header that carries a Watermill metadata key.
func HeaderName(key string) string { return ceHeaders.Header(key) }

// metadataKey is HeaderName's inverse.
func metadataKey(header string) string { return ceHeaders.Key(header) }

var ceHeaders = publisher.HeaderNaming{Prefix: CEHeaderPrefix, ContentType: ContentTypeHeader}

// marshal is watermill-nats' marshaling with the headers named by HeaderName.
func marshal(m *wmnats.NATSMarshaler, topic string, msg *message.Message) (*nats.Msg, error) {
	nm, err := m.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	for k, v := range nm.Header {
		if h := HeaderName(k); h != k {
			delete(nm.Header, k)
			nm.Header[h] = v
		}
	}
	return nm, nil
}

// Close ends every subscription (their channels close), gives back what was
// delivered and not acknowledged, sends the acks it holds, and closes the
// connection. A group's durable consumer stays: the next subscriber resumes
// from it.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.subs.Wait()
	s.open.Wait()
	// The acks are buffered writes: make sure they reached the server.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.nc.FlushWithContext(ctx)
	s.nc.Close()
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsjs: flush acknowledgements: %w", err)
	}
	return nil
}
