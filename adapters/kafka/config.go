// Package kafka is emitd's Kafka adapter: a Watermill publisher and
// subscriber built on watermill-kafka/v2 (Sarama) that map the envelope
// message the way Kafka users expect it (docs/DESIGN.md, "Envelope on each
// broker"):
//
//   - topic: one per bus (the Watermill topic, unchanged);
//   - key: the slot id (metadata publisher.MetaSlotID), so that every event of
//     a slot lands on the same partition and keeps its order; the message UUID
//     when there is no slot id. Keys are hashed with Kafka's murmur2, as the
//     Java client and franz-go do, so other producers keyed by slot id agree
//     on the partition;
//   - value: the message payload (the EventBridge entry JSON), unchanged;
//   - headers: every Watermill metadata entry (source, detail-type, event-id,
//     correlation_id, slot-id) plus the message UUID under
//     "_watermill_message_uuid", so other Watermill consumers read it too.
//
// TLS and SASL are not settings of Config (yet): set them with Config.Sarama,
// which sees the Sarama configuration just before it is used.
package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/Shopify/sarama"
)

// Config is what an operator sets to reach a Kafka cluster.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string

	// ConsumerGroup is the consumer group subscribers join (commands are read
	// with a group: partitions are shared between emitd instances, offsets
	// are committed after Ack). Empty: no group, every Subscribe reads every
	// partition from InitialOffset and commits nothing (what `emitd tail`
	// wants).
	ConsumerGroup string

	// ClientID is the Kafka client id the broker sees (logs, quotas).
	// Default "emitd".
	ClientID string

	// InitialOffset is where a consumer group with no committed offset (or a
	// subscriber without group) starts: "oldest" (default) or "newest".
	InitialOffset string

	// KafkaVersion is the protocol version Sarama speaks, e.g. "2.8.0".
	// Default "1.0.0" (Watermill's default; headers need 0.11 or later).
	KafkaVersion string

	// MaxInFlight bounds the records a group subscriber has delivered and
	// not yet seen acknowledged, over all its partitions. Default 1024.
	MaxInFlight int

	// NackResendSleep is how long a subscriber waits before it redelivers a
	// nacked message. Default 100ms.
	NackResendSleep time.Duration

	// ReconnectRetrySleep is how long a subscriber waits between attempts
	// to reconnect its consumer. Default 1s.
	ReconnectRetrySleep time.Duration

	// Sarama, when set, is called with the Sarama configuration after emitd
	// has filled it and before it is used: TLS (Net.TLS), SASL (Net.SASL),
	// timeouts, compression. Escape hatch; prefer the fields above.
	Sarama func(*sarama.Config)
}

const (
	// OffsetOldest and OffsetNewest are the values of Config.InitialOffset.
	OffsetOldest = "oldest"
	OffsetNewest = "newest"

	defaultClientID = "emitd"
)

func (c Config) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers configured")
	}
	switch c.InitialOffset {
	case "", OffsetOldest, OffsetNewest:
	default:
		return fmt.Errorf("kafka: InitialOffset %q: want %q or %q", c.InitialOffset, OffsetOldest, OffsetNewest)
	}
	return nil
}

// fill applies the settings Config shares between publisher and subscriber.
func (c Config) fill(sc *sarama.Config) error {
	sc.ClientID = c.ClientID
	if sc.ClientID == "" {
		sc.ClientID = defaultClientID
	}
	if c.KafkaVersion != "" {
		v, err := sarama.ParseKafkaVersion(c.KafkaVersion)
		if err != nil {
			return fmt.Errorf("kafka: KafkaVersion: %w", err)
		}
		sc.Version = v
	}
	return nil
}

func (c Config) tune(sc *sarama.Config) error {
	if c.Sarama != nil {
		c.Sarama(sc)
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("kafka: sarama config: %w", err)
	}
	return nil
}
