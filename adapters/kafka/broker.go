package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/tlsconfig"
	"github.com/emitd/emitd/configs"
)

// BrokerName is the Kafka broker's name: brokers.kafka, commands.broker and
// events.broker kafka.
const BrokerName = "kafka"

// Defaults of the topics emitd creates (brokers.kafka.createIfMissing).
const (
	DefaultPartitions        = 4
	DefaultReplicationFactor = 1
)

// SettleTime: Kafka consumer groups spend seconds joining and balancing
// before a new reader gets its first message.
const SettleTime = 10 * time.Second

func init() {
	broker.Register(broker.Spec{Name: BrokerName, Commands: true, Events: true,
		NewSection: func() configs.BrokerSection { return new(Section) },
		Open:       open, SettleTime: SettleTime})
}

// Section (brokers.kafka) points at a Kafka cluster. Topics and buses are
// Kafka topics; commands are read with the consumer group commands.group.
type Section struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// ClientID is the client id the brokers see (logs, quotas). Default emitd.
	ClientID string `yaml:"clientId"`
	// Version is the Kafka protocol version to speak, e.g. "2.8.0". Default
	// 1.0.0 (every broker since 2017 understands it; headers need 0.11).
	Version string `yaml:"version"`
	// CreateIfMissing creates missing topics at start with Partitions and
	// ReplicationFactor. Off: a missing topic stops the daemon at start
	// (unless the cluster creates topics on first use).
	CreateIfMissing bool `yaml:"createIfMissing"`
	// Partitions of topics emitd creates. Default 4. Events of one slot keep
	// their order whatever the count (key = slot id).
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of topics emitd creates. Default 1: set 3 on a
	// production cluster.
	ReplicationFactor int `yaml:"replicationFactor"`
	// TLS: tls.enabled (the system's roots; MSK, Confluent Cloud) or any of
	// caFile, certFile/keyFile (mutual TLS), serverName. insecureSkipVerify
	// is for tests only.
	TLS tlsconfig.Config `yaml:"tls"`
	// SASL: mechanism PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (username,
	// password or passwordFile) or AWS_MSK_IAM (the AWS SDK's credentials;
	// region from the broker host names, sasl.region or AWS_REGION).
	SASL SASL `yaml:"sasl"`
}

// adapterConfig is the adapter's configuration of this section, shared by
// every client: publisher, subscribers and the admin client.
func (k *Section) adapterConfig() Config {
	return Config{Brokers: k.Brokers, ClientID: k.ClientID, KafkaVersion: k.Version, TLS: k.TLS, SASL: k.SASL}
}

// SectionOf is cfg's brokers.kafka, nil when there is none.
func SectionOf(cfg *configs.Config) *Section {
	s, _ := cfg.Brokers.Section(BrokerName).(*Section)
	return s
}

// Defaults implements configs.BrokerSection: partitions and replication
// stay 0 in the file (createIfMissing's check tells set from unset); see
// DefaultPartitions.
func (k *Section) Defaults(*configs.Config) {}

var (
	kafkaTopic   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	kafkaVersion = regexp.MustCompile(`^\d+\.\d+\.\d+(\.\d+)?$`)
	hostPort     = regexp.MustCompile(`^[^\s:/]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$`)
)

// Validate implements configs.BrokerSection.
func (k *Section) Validate(c *configs.Config, add func(string, string, ...any)) {
	if len(k.Brokers) == 0 {
		add("brokers.kafka.brokers", "required: at least one host:port, e.g. [127.0.0.1:9092]")
	}
	for i, b := range k.Brokers {
		if !hostPort.MatchString(b) {
			add(fmt.Sprintf("brokers.kafka.brokers[%d]", i), "%q: want host:port, e.g. kafka-1.example.com:9092 (no scheme)", b)
		}
	}
	if k.Version != "" && !kafkaVersion.MatchString(k.Version) {
		add("brokers.kafka.version", "%q: want a Kafka version such as 2.8.0", k.Version)
	}
	if k.Partitions < 0 {
		add("brokers.kafka.partitions", "must be 0 (default %d) or more, got %d", DefaultPartitions, k.Partitions)
	}
	if k.ReplicationFactor < 0 {
		add("brokers.kafka.replicationFactor", "must be 0 (default %d) or more, got %d", DefaultReplicationFactor, k.ReplicationFactor)
	}
	if !k.CreateIfMissing && (k.Partitions != 0 || k.ReplicationFactor != 0) {
		add("brokers.kafka.createIfMissing", "false, but partitions/replicationFactor are set: they only apply to topics emitd creates; set createIfMissing: true or remove them")
	}
	tlsconfig.AddProblems(k.adapterConfig().Problems("brokers.kafka"), add)
	k.TLS.CheckFiles("brokers.kafka.tls", add)
	for _, t := range configs.TopicsOn(c, BrokerName) {
		if !kafkaTopic.MatchString(t.Name) || t.Name == "." || t.Name == ".." {
			add(t.Path, "%q is not a valid Kafka topic name: 1 to 249 of letters, digits, '.', '_', '-'", t.Name)
		}
	}
}

type kafkaBroker struct {
	cfg    *configs.Config
	kcfg   Config
	pub    message.Publisher
	logger watermill.LoggerAdapter
}

func open(_ context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
	k := SectionOf(cfg)
	kcfg := k.adapterConfig()
	pub, err := NewPublisher(kcfg, logger)
	if err != nil {
		// A *ConnectError names the brokers and the step already.
		var ce *ConnectError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (brokers.kafka.brokers: %s)", err, strings.Join(k.Brokers, ", "))
	}
	return &kafkaBroker{cfg: cfg, kcfg: kcfg, pub: pub, logger: logger}, nil
}

func (b *kafkaBroker) Name() string                 { return BrokerName }
func (b *kafkaBroker) Publisher() message.Publisher { return b.pub }
func (b *kafkaBroker) Close() error                 { return b.pub.Close() }

func (b *kafkaBroker) Ping(ctx context.Context, topic string) error {
	return b.pub.(*Publisher).Ping(ctx, topic)
}

// Subscriber: with a group, the group's committed offsets (oldest when it has
// none, so commands sent before the first start are not skipped); without, a
// reader of every partition that commits nothing, from the oldest record
// kept or from the newest.
func (b *kafkaBroker) Subscriber(opts broker.SubscribeOptions) (message.Subscriber, error) {
	kcfg := b.kcfg
	kcfg.ConsumerGroup = opts.Group
	kcfg.MaxInFlight = opts.MaxInFlight
	kcfg.InitialOffset = OffsetOldest
	if opts.Group == "" && !opts.FromBeginning {
		kcfg.InitialOffset = OffsetNewest
	}
	sub, err := NewSubscriber(kcfg, b.logger)
	if opts.Group != "" {
		return sub, err
	}
	return broker.Reader(sub, err, BrokerName, b.logger)
}

// EnsureTopics checks that every topic exists, creating the missing ones
// when brokers.kafka.createIfMissing is set. A cluster that creates topics on
// first use would create them too, but with its own defaults, and a typo in a
// topic name would go unnoticed.
func (b *kafkaBroker) EnsureTopics(_ context.Context, topics ...string) error {
	// Sarama takes no context: its dial and read timeouts bound each call.
	// The admin client shares the publisher's settings, TLS and SASL
	// included; its errors name the brokers and the step that failed.
	k := SectionOf(b.cfg)
	admin, err := b.kcfg.NewClusterAdmin()
	if err != nil {
		return err
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	partitions, replication := int32(k.Partitions), int16(k.ReplicationFactor)
	if partitions == 0 {
		partitions = DefaultPartitions
	}
	if replication == 0 {
		replication = DefaultReplicationFactor
	}
	for _, topic := range topics {
		if _, ok := existing[topic]; ok {
			continue
		}
		if !k.CreateIfMissing {
			return fmt.Errorf("kafka topic %q (%s) does not exist: create it, or set brokers.kafka.createIfMissing: true",
				topic, broker.TopicPath(b.cfg, topic))
		}
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: replication}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %q (%s) with %d partitions, replication factor %d: %w",
				topic, broker.TopicPath(b.cfg, topic), partitions, replication, err)
		}
		b.logger.Info("kafka topic created", watermill.LogFields{"topic": topic, "partitions": partitions, "replication_factor": replication})
	}
	return nil
}
