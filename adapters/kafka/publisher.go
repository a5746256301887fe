package kafka

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/publisher"
)

// DefaultMaxMessageBytes is the largest record the publisher sends, matching
// the broker's default message.max.bytes (Sarama's own default is 1,000,000,
// less than an EventBridge entry may be).
const DefaultMaxMessageBytes = 1048588

// Publisher publishes envelope messages to Kafka: a whole Publish call is
// one SendMessages, which Sarama groups into produce requests per partition
// (watermill-kafka's publisher sends one record and waits for it before the
// next). The producer is idempotent with one request in flight per broker,
// so a retried request cannot overtake the one before it: each partition,
// hence each slot (the key), keeps its order.
type Publisher struct {
	mu       sync.RWMutex // Publish holds it shared, Close exclusively
	closed   bool
	producer sarama.SyncProducer
	client   sarama.Client // the producer's, for Ping

	pinging atomic.Bool // a Ping's metadata request is in flight
}

// NewPublisher connects to cfg.Brokers. logger may be nil.
func NewPublisher(cfg Config, _ watermill.LoggerAdapter) (message.Publisher, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V1_0_0_0 // records with headers; idempotence needs 0.11
	if err := cfg.fill(sc); err != nil {
		return nil, err
	}
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 5
	sc.Producer.Partitioner = newMurmur2Partitioner
	sc.Producer.MaxMessageBytes = DefaultMaxMessageBytes
	if err := cfg.tune(sc); err != nil {
		return nil, err
	}
	if err := cfg.preflight(sc); err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, cfg.connectError(sc, err)
	}
	// Sarama opens a partition leader's connection lazily, from whichever
	// partition producer asks first, and writes the broker's metric
	// registry there; another partition producer that finds the broker
	// opening goes on to produce and reads that field with no ordering
	// between the two (a data race in Sarama 1.38 that -race reports). The
	// brokers are opened here first, so that the write happens before any
	// producer goroutine exists. A broker that joins later is opened the
	// lazy way.
	for _, b := range client.Brokers() {
		_ = b.Open(client.Config()) // ErrAlreadyConnected for the seed: fine
	}
	p, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("kafka publisher: %w", err)
	}
	return &Publisher{producer: p, client: client}, nil
}

// Publish sends msgs to topic in one SendMessages call.
//
// It returns nil when every message was written. A failure of one message
// (too large, invalid) refuses that message; the others are delivered. A
// failure of the topic or the cluster (the topic does not exist, a broker
// is down, no leader, a timeout) refuses nothing: those messages are
// pending, and when every message is pending the result is that plain
// error (errors.Is(err, ErrUnknownTopic) tells a missing topic). Otherwise
// the result is a *publisher.BatchError naming refused and pending
// messages by UUID.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errors.New("kafka publisher: closed")
	}
	be := publisher.BatchError{Refused: map[string]error{}, Pending: map[string]error{}}
	records := make([]*sarama.ProducerMessage, 0, len(msgs))
	for _, msg := range msgs {
		rec, err := Marshaler{}.Marshal(topic, msg)
		if err != nil {
			be.Refused[msg.UUID] = err
			continue
		}
		rec.Metadata = msg.UUID
		records = append(records, rec)
	}
	var first error
	if err := p.producer.SendMessages(records); err != nil {
		var perrs sarama.ProducerErrors
		if !errors.As(err, &perrs) {
			perrs = nil
			for _, r := range records {
				perrs = append(perrs, &sarama.ProducerError{Msg: r, Err: err})
			}
		}
		for _, pe := range perrs {
			id, _ := pe.Msg.Metadata.(string)
			wrapped, wholeTopic := classify(pe.Err)
			if wholeTopic {
				be.Pending[id] = wrapped
				if first == nil {
					first = wrapped
				}
			} else {
				be.Refused[id] = wrapped
			}
		}
	}
	switch {
	case len(be.Refused) == 0 && len(be.Pending) == 0:
		return nil
	case len(be.Refused) == 0 && len(be.Pending) == len(msgs):
		return fmt.Errorf("kafka publish to %s: %w", topic, first)
	default:
		return fmt.Errorf("kafka publish to %s: %w", topic, &be)
	}
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
	return errors.Join(p.producer.Close(), p.client.Close())
}
