package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v2/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultMaxInFlight bounds the records a group subscriber has delivered
// and not yet seen acknowledged, over all its partitions.
const DefaultMaxInFlight = 1024

// NewSubscriber makes a subscriber; it connects on Subscribe. logger may be
// nil.
//
// With Config.ConsumerGroup the group's members share the partitions, and
// within a partition (so within a slot) records are delivered in order,
// many before the first is acknowledged (up to Config.MaxInFlight): emitd
// commits commands in batches, and watermill-kafka's subscriber delivers
// the next record of a partition only after the previous one was acked. The
// group's offset moves past a record only when it and every record before
// it in its partition are acked, so what is not acked when a member stops
// or loses the partition is delivered again (at least once). A Nack
// delivers the same record again after Config.NackResendSleep.
//
// Without a group (what `emitd tail` wants) every Subscribe reads every
// partition from Config.InitialOffset with watermill-kafka's subscriber and
// commits nothing.
func NewSubscriber(cfg Config, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	sc := kafka.DefaultSaramaSubscriberConfig()
	if err := cfg.fill(sc); err != nil {
		return nil, err
	}
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if cfg.InitialOffset == OffsetNewest {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	if cfg.ConsumerGroup != "" {
		sc.Consumer.Return.Errors = true
		sc.Consumer.Offsets.AutoCommit.Enable = true // what is marked is committed in bulk, every second and at close
		sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	}
	if err := cfg.tune(sc); err != nil {
		return nil, err
	}
	if err := cfg.preflight(sc); err != nil {
		return nil, err
	}
	if cfg.ConsumerGroup != "" {
		return newGroupSubscriber(cfg, sc, logger), nil
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           Marshaler{},
		OverwriteSaramaConfig: sc,
		NackResendSleep:       cfg.NackResendSleep,
		ReconnectRetrySleep:   cfg.ReconnectRetrySleep,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("kafka subscriber: %w", err)
	}
	return &readerSubscriber{sub: sub, cfg: cfg, sc: sc}, nil
}

// readerSubscriber is watermill-kafka's subscriber for readers without group.
type readerSubscriber struct {
	mu     sync.Mutex // serialises Subscribe and Close (watermill-kafka does not)
	closed bool
	sub    *kafka.Subscriber
	cfg    Config
	sc     *sarama.Config
}

func (s *readerSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("kafka subscriber: closed")
	}
	ch, err := s.sub.Subscribe(ctx, topic)
	if err != nil {
		if reachFailure(err) {
			return nil, s.cfg.connectError(s.sc, err)
		}
		return nil, fmt.Errorf("kafka subscribe %s: %w", topic, err)
	}
	return ch, nil
}

func (s *readerSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.sub.Close()
}

// groupSubscriber consumes as a member of Config.ConsumerGroup.
type groupSubscriber struct {
	cfg    Config
	sc     *sarama.Config
	logger watermill.LoggerAdapter

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	groups  []sarama.ConsumerGroup
	loops   sync.WaitGroup // Consume loops
}

func newGroupSubscriber(cfg Config, sc *sarama.Config, logger watermill.LoggerAdapter) *groupSubscriber {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.NackResendSleep <= 0 {
		cfg.NackResendSleep = 100 * time.Millisecond
	}
	if cfg.ReconnectRetrySleep <= 0 {
		cfg.ReconnectRetrySleep = time.Second
	}
	return &groupSubscriber{cfg: cfg, sc: sc, logger: logger, closing: make(chan struct{})}
}

// Subscribe joins the group for topic; the channel closes when the
// subscriber closes or ctx ends.
func (s *groupSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("kafka subscriber: closed")
	}
	cg, err := sarama.NewConsumerGroup(s.cfg.Brokers, s.cfg.ConsumerGroup, s.sc)
	if err != nil {
		return nil, s.cfg.connectError(s.sc, err)
	}
	s.groups = append(s.groups, cg)
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	h := &claims{s: s, ctx: ctx, out: out, window: make(chan struct{}, s.cfg.MaxInFlight)}
	s.loops.Add(2)
	go func() { // a stop ends the session
		defer s.loops.Done()
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	go func() {
		defer s.loops.Done()
		defer close(out)
		for {
			err := cg.Consume(ctx, []string{topic}, h)
			h.settled.Wait() // nothing may be sent on out after it closes
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.logger.Error("kafka: consumer group session failed; rejoining", err,
					watermill.LogFields{"topic": topic, "group": s.cfg.ConsumerGroup})
				select {
				case <-time.After(s.cfg.ReconnectRetrySleep):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			s.logger.Error("kafka: consumer group", err, watermill.LogFields{"topic": topic, "group": s.cfg.ConsumerGroup})
		}
	}()
	return out, nil
}

// Close leaves the group: the sessions end, the marked offsets are
// committed, and every channel closes.
func (s *groupSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	groups := s.groups
	s.mu.Unlock()
	s.loops.Wait()
	var errs []error
	for _, cg := range groups {
		errs = append(errs, cg.Close())
	}
	return errors.Join(errs...)
}

// claims is the sarama.ConsumerGroupHandler of one Subscribe.
type claims struct {
	s       *groupSubscriber
	ctx     context.Context
	out     chan *message.Message
	window  chan struct{} // one per record delivered and not settled
	settled sync.WaitGroup
}

func (h *claims) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *claims) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// drainWait bounds how long a partition taken away (a rebalance) waits for
// its records in flight to be acknowledged, so that their offsets are
// committed and the next owner does not process them again.
const drainWait = 10 * time.Second

// ConsumeClaim delivers one partition's records, in order.
func (h *claims) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	tr := &tracker{sess: sess, topic: claim.Topic(), partition: claim.Partition(), acked: map[int64]bool{}}
	defer tr.drain(drainWait)
	for {
		select {
		case h.window <- struct{}{}:
		case <-sess.Context().Done():
			return nil
		}
		var rec *sarama.ConsumerMessage
		var ok bool
		select {
		case rec, ok = <-claim.Messages():
		case <-sess.Context().Done():
			<-h.window
			return nil
		}
		if !ok {
			<-h.window
			return nil
		}
		msg, err := Marshaler{}.Unmarshal(rec)
		if err != nil { // Unmarshal never fails today; a record we cannot read must not block the partition
			<-h.window
			continue
		}
		msg.SetContext(withRecord(h.ctx, rec))
		// Delivered here, in offset order; the verdict is awaited apart.
		select {
		case h.out <- msg:
		case <-sess.Context().Done():
			<-h.window
			return nil // not delivered: the partition's next owner reads it
		}
		tr.deliver(rec.Offset)
		h.settled.Add(1)
		go h.settle(sess, tr, rec, msg)
	}
}

// settle waits for the handler's verdict on a delivered record: an ack
// marks it done, a nack delivers it again after the resend sleep (after
// whatever of its partition was delivered meanwhile).
func (h *claims) settle(sess sarama.ConsumerGroupSession, tr *tracker, rec *sarama.ConsumerMessage, msg *message.Message) {
	defer h.settled.Done()
	defer func() { <-h.window }()
	acked := false
	defer func() { tr.settle(rec.Offset, acked) }()
	for {
		select {
		case <-msg.Acked():
			acked = true
			return
		case <-msg.Nacked():
		case <-sess.Context().Done():
			// The session ended with the record undecided; wait for the
			// verdict a little, so that an ack still counts.
			select {
			case <-msg.Acked():
				acked = true
			case <-msg.Nacked():
			case <-time.After(drainWait):
			}
			return
		}
		select {
		case <-time.After(h.s.cfg.NackResendSleep):
		case <-sess.Context().Done():
			return
		}
		again := message.NewMessage(msg.UUID, msg.Payload)
		again.Metadata = msg.Metadata
		again.SetContext(withRecord(h.ctx, rec))
		select {
		case h.out <- again:
			msg = again
		case <-sess.Context().Done():
			return
		}
	}
}

// tracker moves a partition's offset past the records acknowledged without
// a gap: acks arrive in any order (a batch is acknowledged after it
// commits, its records from several handler goroutines), the committed
// offset only ever follows the oldest record not yet acked.
type tracker struct {
	sess      sarama.ConsumerGroupSession
	topic     string
	partition int32

	mu        sync.Mutex
	delivered []int64 // in offset order, not yet passed
	acked     map[int64]bool
	open      sync.WaitGroup
}

func (t *tracker) deliver(offset int64) {
	t.mu.Lock()
	t.delivered = append(t.delivered, offset)
	t.mu.Unlock()
	t.open.Add(1)
}

// settle ends a record's stay in flight; an acked one moves the offset
// if no earlier record is still open.
func (t *tracker) settle(offset int64, acked bool) {
	defer t.open.Done()
	if !acked {
		return // the offset stays before it: delivered again to whoever reads next
	}
	t.mu.Lock()
	t.acked[offset] = true
	next := int64(-1)
	for len(t.delivered) > 0 && t.acked[t.delivered[0]] {
		next = t.delivered[0] + 1
		delete(t.acked, t.delivered[0])
		t.delivered = t.delivered[1:]
	}
	t.mu.Unlock()
	if next >= 0 {
		t.sess.MarkOffset(t.topic, t.partition, next, "")
	}
}

// drain waits, up to d, for the records in flight to be acknowledged.
func (t *tracker) drain(d time.Duration) {
	done := make(chan struct{})
	go func() { t.open.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
