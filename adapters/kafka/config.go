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
// TLS (Config.TLS, or a ready Config.TLSConfig) and SASL (Config.SASL:
// PLAIN, SCRAM-SHA-256/512, AWS_MSK_IAM) apply to every client: publisher,
// subscriber and the admin client (SaramaConfig). A failure to connect, to
// handshake or to log in is a *ConnectError naming the brokers and the step.
package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/Shopify/sarama"

	"github.com/emitd/emitd/adapters/tlsconfig"
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

	// TLS is the tls section (on when tls.enabled or any file is set).
	TLS tlsconfig.Config
	// TLSConfig, when set, is used as it is instead of TLS.
	TLSConfig *tls.Config
	// SASL is the sasl section; off when SASL.Mechanism is empty.
	SASL SASL

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
	return c.secure(sc)
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

// SaramaConfig is the Sarama configuration a client of c other than the
// publisher and subscriber uses (the admin client that lists and creates
// topics): client id, version, TLS and SASL as theirs, then Config.Sarama.
func (c Config) SaramaConfig() (*sarama.Config, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V1_0_0_0
	if err := c.fill(sc); err != nil {
		return nil, err
	}
	if err := c.tune(sc); err != nil {
		return nil, err
	}
	return sc, nil
}

// NewClusterAdmin connects an admin client with SaramaConfig; a failure to
// connect is a *ConnectError.
func (c Config) NewClusterAdmin() (sarama.ClusterAdmin, error) {
	sc, err := c.SaramaConfig()
	if err != nil {
		return nil, err
	}
	if err := c.preflight(sc); err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdmin(c.Brokers, sc)
	if err != nil {
		return nil, c.connectError(sc, err)
	}
	return admin, nil
}
