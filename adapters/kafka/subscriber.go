package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v2/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Subscriber reads envelope messages from Kafka. It wraps watermill-kafka's
// subscriber: with Config.ConsumerGroup the group's members share the
// partitions and an Ack commits the record's offset (at least once: what is
// not acked when a subscriber closes is delivered again); within a partition
// (so within a slot) messages come one at a time, in order, the next only
// after the previous one is acked. A Nack redelivers the same message after
// Config.NackResendSleep.
type Subscriber struct {
	mu     sync.Mutex // serialises Subscribe and Close (watermill-kafka does not)
	closed bool
	sub    *kafka.Subscriber
}

// NewSubscriber makes a subscriber; it connects on Subscribe. logger may be
// nil.
func NewSubscriber(cfg Config, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sc := kafka.DefaultSaramaSubscriberConfig()
	if err := cfg.fill(sc); err != nil {
		return nil, err
	}
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if cfg.InitialOffset == OffsetNewest {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	if err := cfg.tune(sc); err != nil {
		return nil, err
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           Marshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         cfg.ConsumerGroup,
		NackResendSleep:       cfg.NackResendSleep,
		ReconnectRetrySleep:   cfg.ReconnectRetrySleep,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("kafka subscriber: %w", err)
	}
	return &Subscriber{sub: sub}, nil
}

// Subscribe starts consuming topic; the channel closes when the subscriber
// closes or ctx ends.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("kafka subscriber: closed")
	}
	ch, err := s.sub.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka subscribe %s: %w", topic, err)
	}
	return ch, nil
}

// Close stops every subscription, commits the acked offsets and waits for
// the consumers to end.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.sub.Close()
}
