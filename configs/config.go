// Package configs holds emitd's YAML configurations (the embedded default is
// built into the binary) and the code that loads and validates them.
package configs

import (
	"time"

	"github.com/emitd/emitd/domain"
)

// Broker kinds an operator may name in commands.broker and events.broker.
const (
	BrokerEmbedded    = "embedded"
	BrokerNATS        = "nats"
	BrokerKafka       = "kafka"
	BrokerSQS         = "sqs"
	BrokerSNS         = "sns"
	BrokerEventBridge = "eventbridge"
	BrokerAMQP        = "amqp"
)

// Config is the whole configuration file. Every field has a yaml tag; keys
// not listed here are errors (see Load), so a typo is never silently ignored.
type Config struct {
	DataDir  string          `yaml:"dataDir"`
	Commands CommandsConfig  `yaml:"commands"`
	Events   EventsConfig    `yaml:"events"`
	Store    StoreConfig     `yaml:"store"`
	Brokers  BrokersConfig   `yaml:"brokers"`
	Metadata domain.Metadata `yaml:"metadata"`
	Router   RouterConfig    `yaml:"router"`
	Relay    RelayConfig     `yaml:"relay"`
}

// CommandsConfig says where commands come from and where their outcomes and
// dead letters go (always on the same broker as the commands).
type CommandsConfig struct {
	Broker       string `yaml:"broker"`
	Topic        string `yaml:"topic"`
	Group        string `yaml:"group"`
	DLQTopic     string `yaml:"dlqTopic"`
	ResultsTopic string `yaml:"resultsTopic"`
}

// EventsConfig says where envelopes go.
type EventsConfig struct {
	Broker       string `yaml:"broker"`
	DomainBus    string `yaml:"domainBus"`
	AnalyticsBus string `yaml:"analyticsBus"`
}

// StoreConfig chooses the state store. sqlite keeps one file under dataDir.
type StoreConfig struct {
	Driver string `yaml:"driver"`
	DSN    string `yaml:"dsn"`
}

// BrokersConfig holds one optional section per broker; a section for a broker
// that neither commands nor events use is an error (it is almost always a
// mistake in a copied file).
type BrokersConfig struct {
	Embedded    *EmbeddedConfig    `yaml:"embedded"`
	NATS        *NATSConfig        `yaml:"nats"`
	Kafka       *KafkaConfig       `yaml:"kafka"`
	SQS         *AWSConfig         `yaml:"sqs"`
	SNS         *AWSConfig         `yaml:"sns"`
	EventBridge *EventBridgeConfig `yaml:"eventbridge"`
	AMQP        *AMQPConfig        `yaml:"amqp"`
}

// EmbeddedConfig is the in-process NATS JetStream server.
type EmbeddedConfig struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
}

// NATSConfig points at an external NATS server with JetStream.
type NATSConfig struct {
	URL string `yaml:"url"`
}

// KafkaConfig points at a Kafka cluster.
type KafkaConfig struct {
	Brokers []string `yaml:"brokers"`
}

// AWSConfig is shared by SQS and SNS. Region and endpoint are optional: the
// SDK's standard environment (AWS_REGION, AWS_ENDPOINT_URL_SQS, ...) applies.
type AWSConfig struct {
	Region          string `yaml:"region"`
	Endpoint        string `yaml:"endpoint"`
	CreateIfMissing bool   `yaml:"createIfMissing"`
}

// EventBridgeConfig is the PutEvents target.
type EventBridgeConfig struct {
	Region        string `yaml:"region"`
	Endpoint      string `yaml:"endpoint"`
	MaxEntryBytes int    `yaml:"maxEntryBytes"`
}

// AMQPConfig points at a RabbitMQ server.
type AMQPConfig struct {
	URL string `yaml:"url"`
}

// RouterConfig bounds the command handler.
type RouterConfig struct {
	HandlerTimeout time.Duration `yaml:"handlerTimeout"`
	Retry          RetryConfig   `yaml:"retry"`
}

// RetryConfig bounds retries of transient failures, by count and by time.
type RetryConfig struct {
	MaxRetries      int           `yaml:"maxRetries"`
	InitialInterval time.Duration `yaml:"initialInterval"`
	MaxInterval     time.Duration `yaml:"maxInterval"`
	MaxElapsed      time.Duration `yaml:"maxElapsed"`
}

// RelayConfig tunes the outbox relay.
type RelayConfig struct {
	BatchSize    int           `yaml:"batchSize"`
	PollInterval time.Duration `yaml:"pollInterval"`
	MaxBackoff   time.Duration `yaml:"maxBackoff"`
}
