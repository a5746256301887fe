// Package amqp is emitd's RabbitMQ (AMQP 0-9-1) adapter: a Watermill
// publisher and subscriber with the topology RabbitMQ users expect.
//
// Topology (docs/DESIGN.md, "Envelope on each broker": routing key per bus):
//   - one durable topic exchange, Config.Exchange (DefaultExchange "emitd");
//     every message is published to it with routing key = the Watermill topic
//     (the bus name, or the commands topic);
//   - a consumer group is a durable queue named QueueName(topic, group) =
//     topic + "_" + group (watermill-amqp's naming), bound to the exchange
//     with routing key = topic; the subscribers of a group compete on that
//     queue, every group gets every message;
//   - a subscriber without a group gets a private, server-deleted queue
//     (exclusive, auto-delete) that lives as long as its connection;
//   - body = the payload (the EventBridge entry JSON for an envelope),
//     headers = the Watermill metadata (source, detail-type, event-id,
//     correlation_id, slot-id) plus _watermill_message_uuid, written by
//     watermill-amqp's marshaler so Watermill consumers read emitd's
//     messages; the AMQP properties message-id (= UUID, the event id),
//     correlation-id and content-type are set too, and delivery mode is
//     persistent.
//
// RabbitMQ drops a message no queue is bound for. emitd publishes
// mandatory: a message the exchange cannot route is returned, and Publish
// reports it pending (ErrUnroutable), so an envelope stays in the outbox
// until a queue is bound for its bus, instead of being confirmed and lost.
// Topics in Config.DropUnroutable (the results topic: answers nobody waits
// for) are published without it.
//
// Why not watermill-amqp's publisher and subscriber: with confirms it
// waits for each message's confirmation before publishing the next, and
// its subscriber hands out the next delivery only after the previous one
// was acknowledged. emitd commits commands in batches and publishes a
// batch of envelopes at a time, so here a Publish sends every message and
// then awaits their confirmations together, and a subscriber keeps up to
// Config.Prefetch deliveries in flight and acknowledges each as it is
// settled, without waiting. watermill-amqp's connection wrapper (reconnect
// with backoff) and marshaler are used as they are.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/publisher"
)

// Defaults for Config fields left zero.
const (
	DefaultURL            = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultExchange       = "emitd"
	DefaultPrefetch       = 1024
	DefaultPublishTimeout = 10 * time.Second
)

// Config configures publishers and subscribers.
type Config struct {
	// URL of the broker; DefaultURL when empty.
	URL string
	// Exchange is the durable topic exchange everything is published to;
	// DefaultExchange when empty.
	Exchange string
	// Prefetch is how many unacknowledged deliveries the broker sends a
	// subscription ahead (they are handed out in queue order, many before
	// the first is acknowledged); DefaultPrefetch when zero.
	Prefetch int
	// QueueArguments are passed when declaring group queues, e.g.
	// {"x-queue-type": "quorum"}. A queue that exists keeps its arguments
	// (RabbitMQ refuses a re-declaration with different ones).
	QueueArguments amqp091.Table
	// NoConfirm publishes without publisher confirms: faster, but Publish
	// returns before the broker has taken the message, so a broker crash can
	// lose what Publish reported as sent. Off by default.
	NoConfirm bool
	// DropUnroutable lists topics published without the mandatory flag: a
	// message no queue is bound for is dropped by RabbitMQ, not returned.
	DropUnroutable []string
	// PublishTimeout bounds the wait for the confirmations of one Publish
	// (a message's context, when it ends sooner, ends it sooner).
	PublishTimeout time.Duration
	// TLS is the tls section, used with an amqps:// URL (see security.go).
	TLS tlsconfig.Config
	// User and Password, when User is set, replace the URL's user
	// information.
	User     string
	Password string
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
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
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
// publisher would otherwise be an unmarshal error, and the message would be
// requeued forever.
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
			for k, v := range p.Headers {
				if k == publisher.MetaContentType {
					// The binding's content type is the property, not a header.
					p.ContentType, _ = v.(string)
					delete(p.Headers, k)
				} else if h := HeaderName(k); h != k {
					delete(p.Headers, k)
					p.Headers[h] = v
				}
			}
			return p
		},
	}}
}

// The CloudEvents AMQP protocol binding, binary mode: every attribute is an
// application property (a header, in AMQP 0-9-1) "cloudEvents:<name>", and
// datacontenttype is the content-type property. emitd's messages carry the
// attributes as neutral metadata (publisher.CEAttributePrefix); the marshaler
// renames them both ways.
const CEHeaderPrefix = "cloudEvents:"

// UUIDHeader carries the Watermill message UUID (watermill-amqp's key).
const UUIDHeader = wmamqp.DefaultMessageUUIDHeaderKey

// HeaderName is the header that carries a Watermill metadata key (the
// content type goes to the content-type property instead).
func HeaderName(key string) string { return ceHeaders.Header(key) }

var ceHeaders = publisher.HeaderNaming{Prefix: CEHeaderPrefix}

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
	cloudEvent := strings.HasPrefix(d.ContentType, "application/cloudevents")
	for k, v := range msg.Metadata {
		if mk := ceHeaders.Key(k); mk != k {
			delete(msg.Metadata, k)
			msg.Metadata[mk] = v
			cloudEvent = true
		}
	}
	if cloudEvent {
		msg.Metadata.Set(publisher.MetaContentType, d.ContentType)
	}
	return msg, nil
}

func connect(cfg Config) (*wmamqp.ConnectionWrapper, error) {
	ac, err := cfg.dialConfig()
	if err != nil {
		return nil, err
	}
	conn, err := wmamqp.NewConnection(wmamqp.ConnectionConfig{AmqpURI: cfg.URL, AmqpConfig: ac, Reconnect: wmamqp.DefaultReconnectConfig()}, cfg.Logger)
	if err != nil {
		// Not the URL: it may carry the password.
		return nil, cfg.connectError(err, ac.TLSClientConfig)
	}
	return conn, nil
}

func declareExchange(ch *amqp091.Channel, name string) error {
	if err := ch.ExchangeDeclare(name, "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declare exchange %q: %w", name, err)
	}
	return nil
}

// ---- publisher --------------------------------------------------------------

// ErrUnroutable: the exchange could route the message to no queue (nobody
// bound one for its routing key). A failure of the topic, not the message:
// it stays pending until a queue is bound.
var ErrUnroutable = errors.New("amqp: no queue is bound for the routing key")

// Publisher publishes to the exchange with routing key = topic. With
// confirms on (the default) Publish returns once the broker has taken every
// message, or says which it did not.
type Publisher struct {
	cfg       Config
	conn      *wmamqp.ConnectionWrapper
	marshaler marshaler
	drop      map[string]bool

	mu      sync.Mutex // one channel: confirms are numbered per channel
	ch      *amqp091.Channel
	returns chan amqp091.Return
	closed  bool
}

// maxChunk bounds the messages published before their confirmations are
// awaited and their returns read.
const maxChunk = 1024

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher connects to the broker.
func NewPublisher(cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	conn, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, conn: conn, marshaler: newMarshaler(), drop: map[string]bool{}}
	for _, t := range cfg.DropUnroutable {
		p.drop[t] = true
	}
	return p, nil
}

// channel returns the publishing channel, opening it (confirms on, returns
// collected, the exchange declared) when there is none or it broke.
func (p *Publisher) channel() (*amqp091.Channel, error) {
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	if !p.conn.IsConnected() {
		return nil, errors.New("amqp: not connected")
	}
	ch, err := p.conn.Connection().Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp: open channel: %w", err)
	}
	if !p.cfg.NoConfirm {
		if err := ch.Confirm(false); err != nil {
			ch.Close()
			return nil, fmt.Errorf("amqp: confirms: %w", err)
		}
	}
	// The broker sends a message's return before its confirmation, and the
	// client hands both over in that order: once a message is confirmed,
	// its return (if any) waits in this channel, which Publish drains. Its
	// buffer holds more returns than one chunk of a Publish can cause, so
	// the connection never blocks on it.
	p.returns = ch.NotifyReturn(make(chan amqp091.Return, 2*maxChunk))
	if err := declareExchange(ch, p.cfg.Exchange); err != nil {
		ch.Close()
		return nil, err
	}
	p.ch = ch
	return ch, nil
}

// Publish publishes messages to topic, in order: all of them, then it
// awaits their confirmations. A message the broker returned (no queue bound)
// or did not confirm is pending; when every message is pending the result
// is the plain error, otherwise a *publisher.BatchError.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	if err := checkName("topic", topic); err != nil {
		return err
	}
	if len(messages) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("amqp: publisher closed")
	}
	ch, err := p.channel()
	if err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(messages[0].Context(), p.cfg.PublishTimeout)
	defer cancel()
	mandatory := !p.drop[topic]

	be := publisher.BatchError{Refused: map[string]error{}, Pending: map[string]error{}}
	var first error
	pend := func(m *message.Message, err error) {
		be.Pending[m.UUID] = err
		if first == nil {
			first = err
		}
	}
	for start := 0; start < len(messages); start += maxChunk {
		chunk := messages[start:min(start+maxChunk, len(messages))]
		if !p.publishChunk(ctx, ch, topic, mandatory, chunk, &be, pend) {
			for _, rest := range messages[start+len(chunk):] {
				pend(rest, errors.New("amqp: not sent: the channel broke"))
			}
			break
		}
	}
	switch {
	case len(be.Refused) == 0 && len(be.Pending) == 0:
		return nil
	case len(be.Refused) == 0 && len(be.Pending) == len(messages):
		return fmt.Errorf("amqp: publish to %q: %w", topic, first)
	default:
		return fmt.Errorf("amqp: publish to %q: %w (first failure: %v)", topic, &be, first)
	}
}

// publishChunk publishes msgs, awaits their confirmations and reads their
// returns; false when the channel broke.
func (p *Publisher) publishChunk(ctx context.Context, ch *amqp091.Channel, topic string, mandatory bool, msgs []*message.Message,
	be *publisher.BatchError, pend func(*message.Message, error)) bool {
	confirms := make([]*amqp091.DeferredConfirmation, len(msgs))
	ok := true
	for i, m := range msgs {
		pub, err := p.marshaler.Marshal(m)
		if err != nil {
			be.Refused[m.UUID] = fmt.Errorf("amqp: marshal %s: %w", m.UUID, err)
			continue
		}
		pub.MessageId = m.UUID // the key returns are matched by
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.Exchange, topic, mandatory, false, pub)
		if err != nil {
			// The channel broke: this and everything after it wait.
			for _, rest := range msgs[i:] {
				if be.Refused[rest.UUID] == nil {
					pend(rest, fmt.Errorf("amqp: publish: %w", err))
				}
			}
			p.ch = nil
			ok = false
			break
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		if dc == nil {
			continue
		}
		acked, err := dc.WaitContext(ctx)
		switch {
		case err != nil:
			pend(msgs[i], fmt.Errorf("amqp: no confirmation: %w", err))
		case !acked:
			pend(msgs[i], errors.New("amqp: the broker refused the message (nack)"))
		}
	}
	returned := map[string]string{}
	for drained := false; !drained; {
		select {
		case r := <-p.returns:
			returned[r.MessageId] = fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText)
		default:
			drained = true
		}
	}
	for _, m := range msgs {
		if why, isReturned := returned[m.UUID]; isReturned && be.Pending[m.UUID] == nil {
			pend(m, fmt.Errorf("%w: routing key %q on exchange %q (%s)", ErrUnroutable, topic, p.cfg.Exchange, why))
		}
	}
	return ok
}

// Close closes the channel and the connection.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.ch != nil {
		_ = p.ch.Close()
	}
	return p.conn.Close()
}

// ---- subscriber -------------------------------------------------------------

// Subscriber consumes topics as one consumer group.
type Subscriber struct {
	cfg       Config
	group     string
	private   string // suffix of the private queues of a subscriber without group
	conn      *wmamqp.ConnectionWrapper
	marshaler marshaler

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	loops   sync.WaitGroup
	open    sync.WaitGroup // deliveries handed out and not yet settled
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
	if group != "" {
		if err := checkName("group", group); err != nil {
			return nil, err
		}
	}
	conn, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, group: group, private: "private-" + watermill.NewShortUUID(), conn: conn,
		marshaler: newMarshaler(), closing: make(chan struct{})}, nil
}

func (s *Subscriber) queue(topic string) string {
	if s.group == "" {
		return QueueName(topic, s.private)
	}
	return QueueName(topic, s.group)
}

// declare declares the exchange, the topic's queue for this subscriber and
// its binding, on ch.
func (s *Subscriber) declare(ch *amqp091.Channel, topic string) (string, error) {
	if err := declareExchange(ch, s.cfg.Exchange); err != nil {
		return "", err
	}
	name := s.queue(topic)
	var err error
	if s.group == "" {
		_, err = ch.QueueDeclare(name, false, true, true, false, nil)
	} else {
		_, err = ch.QueueDeclare(name, true, false, false, false, s.cfg.QueueArguments)
	}
	if err != nil {
		return "", fmt.Errorf("amqp: declare queue %q: %w", name, err)
	}
	if err := ch.QueueBind(name, topic, s.cfg.Exchange, false, nil); err != nil {
		return "", fmt.Errorf("amqp: bind queue %q to %q: %w", name, topic, err)
	}
	return name, nil
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
	ch, err := s.conn.Connection().Channel()
	if err != nil {
		return fmt.Errorf("amqp: open channel: %w", err)
	}
	defer ch.Close()
	_, err = s.declare(ch, topic)
	return err
}

// Subscribe declares the queue and its binding, then delivers its messages
// in queue order, up to Config.Prefetch before the first is acknowledged.
// A Nack requeues the message; a message in flight when the subscriber
// closes is requeued too. A lost connection is reopened, and consuming
// resumes (what was in flight is redelivered by the broker).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := checkName("topic", topic); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("amqp: subscriber closed")
	}
	s.loops.Add(1)
	s.mu.Unlock()
	deliveries, ch, err := s.consume(topic)
	if err != nil {
		s.loops.Done()
		return nil, fmt.Errorf("amqp: subscribe to %q: %w", topic, err)
	}
	out := make(chan *message.Message)
	go func() {
		defer s.loops.Done()
		defer close(out)
		for {
			var open sync.WaitGroup // this channel's deliveries not yet settled
			s.deliver(ctx, deliveries, out, &open)
			if s.isClosing() || ctx.Err() != nil {
				// Their acks go out on this channel: it closes after them.
				open.Wait()
				_ = ch.Close()
				return
			}
			_ = ch.Close() // broken already: the broker redelivers what it held
			// The channel or the connection broke: consume again once the
			// connection is back.
			for {
				select {
				case <-s.conn.Connected():
				case <-s.closing:
					return
				case <-ctx.Done():
					return
				}
				if deliveries, ch, err = s.consume(topic); err == nil {
					break
				}
				s.cfg.Logger.Error("amqp: cannot consume again; retrying", err, watermill.LogFields{"topic": topic})
				select {
				case <-time.After(time.Second):
				case <-s.closing:
					return
				}
			}
		}
	}()
	return out, nil
}

func (s *Subscriber) consume(topic string) (<-chan amqp091.Delivery, *amqp091.Channel, error) {
	ch, err := s.conn.Connection().Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("open channel: %w", err)
	}
	name, err := s.declare(ch, topic)
	if err == nil {
		err = ch.Qos(s.cfg.Prefetch, 0, false)
	}
	var deliveries <-chan amqp091.Delivery
	if err == nil {
		deliveries, err = ch.Consume(name, "", false, s.group == "", false, false, nil)
	}
	if err != nil {
		ch.Close()
		return nil, nil, err
	}
	return deliveries, ch, nil
}

// deliver hands out deliveries until the channel closes, the subscriber
// closes or ctx ends.
func (s *Subscriber) deliver(ctx context.Context, deliveries <-chan amqp091.Delivery, out chan<- *message.Message, open *sync.WaitGroup) {
	for {
		var d amqp091.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		case <-s.closing:
			return
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		msg, err := s.marshaler.Unmarshal(d)
		if err != nil {
			s.cfg.Logger.Error("amqp: cannot read message; dropped", err, watermill.LogFields{"message_id": d.MessageId})
			_ = d.Reject(false)
			continue
		}
		msg.SetContext(ctx)
		s.open.Add(1)
		open.Add(1)
		go func() { defer open.Done(); s.settle(d, msg) }()
		select {
		case out <- msg:
		case <-s.closing:
			msg.Nack()
			return
		case <-ctx.Done():
			msg.Nack()
			return
		}
	}
}

// settle acknowledges or requeues a delivery once the handler decides,
// without waiting for the broker; at Close one still undecided is requeued.
func (s *Subscriber) settle(d amqp091.Delivery, msg *message.Message) {
	defer s.open.Done()
	var err error
	select {
	case <-msg.Acked():
		err = d.Ack(false)
	case <-msg.Nacked():
		err = d.Nack(false, true)
	case <-s.closing:
		select {
		case <-msg.Acked():
			err = d.Ack(false)
		default:
			err = d.Nack(false, true)
		}
	}
	if err != nil && !errors.Is(err, amqp091.ErrClosed) {
		s.cfg.Logger.Error("amqp: cannot settle delivery; the broker redelivers it", err, watermill.LogFields{"message_uuid": msg.UUID})
	}
}

func (s *Subscriber) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Close stops consuming, requeues what was delivered and not acked, and
// closes the connection.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.loops.Wait() // each loop waits for its deliveries to settle
	s.open.Wait()
	return s.conn.Close()
}
