package brokers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Shopify/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/configs"
)

// Defaults of the topics emitd creates (brokers.kafka.createIfMissing).
const (
	defaultKafkaPartitions  = 4
	defaultKafkaReplication = 1
)

type kafkaBroker struct {
	cfg    *configs.Config
	kcfg   kafka.Config
	pub    message.Publisher
	logger watermill.LoggerAdapter
}

func openKafka(cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	k := cfg.Brokers.Kafka
	kcfg := kafka.Config{Brokers: k.Brokers, ClientID: k.ClientID, KafkaVersion: k.Version}
	pub, err := kafka.NewPublisher(kcfg, logger)
	if err != nil {
		return nil, fmt.Errorf("%w (brokers.kafka.brokers: %s)", err, strings.Join(k.Brokers, ", "))
	}
	return &kafkaBroker{cfg: cfg, kcfg: kcfg, pub: pub, logger: logger}, nil
}

func (b *kafkaBroker) Name() string                 { return configs.BrokerKafka }
func (b *kafkaBroker) Publisher() message.Publisher { return b.pub }
func (b *kafkaBroker) Close() error                 { return b.pub.Close() }

func (b *kafkaBroker) Ping(ctx context.Context, topic string) error {
	return b.pub.(*kafka.Publisher).Ping(ctx, topic)
}

// Subscriber: with a group, the group's committed offsets (oldest when it has
// none, so commands sent before the first start are not skipped); without, a
// reader of every partition that commits nothing, from the oldest record
// kept or from the newest.
func (b *kafkaBroker) Subscriber(opts SubscribeOptions) (message.Subscriber, error) {
	kcfg := b.kcfg
	kcfg.ConsumerGroup = opts.Group
	kcfg.MaxInFlight = opts.MaxInFlight
	kcfg.InitialOffset = kafka.OffsetOldest
	if opts.Group == "" && !opts.FromBeginning {
		kcfg.InitialOffset = kafka.OffsetNewest
	}
	sub, err := kafka.NewSubscriber(kcfg, b.logger)
	if opts.Group != "" {
		return sub, err
	}
	return reader(sub, err, configs.BrokerKafka, b.logger)
}

// EnsureTopics checks that every topic exists, creating the missing ones
// when brokers.kafka.createIfMissing is set. A cluster that creates topics on
// first use would create them too, but with its own defaults, and a typo in a
// topic name would go unnoticed.
func (b *kafkaBroker) EnsureTopics(_ context.Context, topics ...string) error {
	// Sarama takes no context: its dial and read timeouts bound each call.
	k := b.cfg.Brokers.Kafka
	sc := sarama.NewConfig()
	sc.ClientID = "emitd"
	if k.ClientID != "" {
		sc.ClientID = k.ClientID
	}
	if k.Version != "" {
		v, err := sarama.ParseKafkaVersion(k.Version)
		if err != nil {
			return fmt.Errorf("brokers.kafka.version: %w", err)
		}
		sc.Version = v
	}
	admin, err := sarama.NewClusterAdmin(k.Brokers, sc)
	if err != nil {
		return fmt.Errorf("kafka: connect to %s: %w", strings.Join(k.Brokers, ", "), err)
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	partitions, replication := int32(k.Partitions), int16(k.ReplicationFactor)
	if partitions == 0 {
		partitions = defaultKafkaPartitions
	}
	if replication == 0 {
		replication = defaultKafkaReplication
	}
	for _, topic := range topics {
		if _, ok := existing[topic]; ok {
			continue
		}
		if !k.CreateIfMissing {
			return fmt.Errorf("kafka topic %q (%s) does not exist: create it, or set brokers.kafka.createIfMissing: true",
				topic, topicPath(b.cfg, topic))
		}
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: replication}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %q (%s) with %d partitions, replication factor %d: %w",
				topic, topicPath(b.cfg, topic), partitions, replication, err)
		}
		b.logger.Info("kafka topic created", watermill.LogFields{"topic": topic, "partitions": partitions, "replication_factor": replication})
	}
	return nil
}
