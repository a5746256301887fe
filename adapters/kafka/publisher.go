package kafka

import (
	"errors"
	"fmt"
	"sync"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v2/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/publisher"
)

// DefaultMaxMessageBytes is the largest record the publisher sends, matching
// the broker's default message.max.bytes (Sarama's own default is 1,000,000,
// less than an EventBridge entry may be).
const DefaultMaxMessageBytes = 1048588

// Publisher publishes envelope messages to Kafka. It wraps watermill-kafka's
// synchronous publisher (one acknowledged produce per message, acks=all, so
// per-slot order holds) and reports, message by message, what failed.
type Publisher struct {
	mu     sync.RWMutex // Publish holds it shared, Close exclusively
	closed bool
	pub    *kafka.Publisher
}

// NewPublisher connects to cfg.Brokers. logger may be nil.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (message.Publisher, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sc := kafka.DefaultSaramaSyncPublisherConfig()
	if err := cfg.fill(sc); err != nil {
		return nil, err
	}
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Partitioner = newMurmur2Partitioner
	sc.Producer.MaxMessageBytes = DefaultMaxMessageBytes
	if err := cfg.tune(sc); err != nil {
		return nil, err
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               cfg.Brokers,
		Marshaler:             Marshaler{},
		OverwriteSaramaConfig: sc,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("kafka publisher: %w", err)
	}
	return &Publisher{pub: pub}, nil
}

// Publish sends msgs to topic in order, one acknowledged record each.
//
// It returns nil when every message was written. Otherwise:
//   - a permanent failure of one message (too large, invalid) refuses that
//     message and goes on with the next;
//   - an unknown or invalid topic refuses that message and all the rest (they
//     share the topic);
//   - a transient failure (broker down, timeout) stops: that message and the
//     rest are pending, never sent out of order.
//
// The result is a *publisher.BatchError naming refused and pending messages
// by UUID (errors.Is(refused, ErrUnknownTopic) etc. hold), or, when the very
// first message failed transiently and nothing was refused, that plain error
// (the whole batch is pending).
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errors.New("kafka publisher: closed")
	}
	var be publisher.BatchError
	for i, msg := range msgs {
		err := p.pub.Publish(topic, msg)
		if err == nil {
			continue
		}
		err, permanent, wholeTopic := classify(err)
		if !permanent {
			if i == 0 && len(be.Refused) == 0 {
				return fmt.Errorf("kafka publish to %s: %w", topic, err)
			}
			be.Pending = make(map[string]error, len(msgs)-i)
			for _, m := range msgs[i:] {
				be.Pending[m.UUID] = err
			}
			break
		}
		if be.Refused == nil {
			be.Refused = make(map[string]error)
		}
		be.Refused[msg.UUID] = err
		if wholeTopic {
			for _, m := range msgs[i+1:] {
				be.Refused[m.UUID] = err
			}
			break
		}
	}
	if len(be.Refused) == 0 && len(be.Pending) == 0 {
		return nil
	}
	return &be
}

// Close flushes and closes the producer; it waits for Publish calls in
// flight.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.pub.Close()
}
