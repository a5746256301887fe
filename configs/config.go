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
	HTTP     HTTPConfig      `yaml:"http"`
	Schedule ScheduleConfig  `yaml:"schedule"`
}

// CommandsConfig says where commands come from and where their outcomes and
// dead letters go (always on the same broker as the commands).
type CommandsConfig struct {
	Broker       string `yaml:"broker"`
	Topic        string `yaml:"topic"`
	Group        string `yaml:"group"`
	DLQTopic     string `yaml:"dlqTopic"`
	ResultsTopic string `yaml:"resultsTopic"`
	// MaxBytes is the largest command accepted, checked before anything
	// reads it: a larger message is dead-lettered at once. Default 256 KiB.
	MaxBytes int `yaml:"maxBytes"`
}

// EventsConfig says where envelopes go.
type EventsConfig struct {
	Broker       string `yaml:"broker"`
	DomainBus    string `yaml:"domainBus"`
	AnalyticsBus string `yaml:"analyticsBus"`
	// Allow is the emit policy: bus name -> the DetailTypes that may go to
	// it. Empty: every catalog event to the domain bus and its analytics
	// copy to the analytics bus. The relay and replay both enforce it. When
	// set, it must list both buses, each with at least one DetailType.
	Allow map[string][]string `yaml:"allow"`
	// Format is how envelopes travel on both buses: eventbridge (default),
	// the EventBridge entry JSON; or cloudevents, CloudEvents 1.0 (not on
	// the EventBridge bus, which stays EventBridge-shaped).
	Format      string            `yaml:"format"`
	CloudEvents CloudEventsConfig `yaml:"cloudevents"`
}

// Values of events.format and events.cloudevents.mode.
const (
	FormatEventBridge = "eventbridge"
	FormatCloudEvents = "cloudevents"
	ModeStructured    = "structured"
	ModeBinary        = "binary"
)

// CloudEventsConfig applies when events.format is cloudevents.
type CloudEventsConfig struct {
	// Mode: structured (default) sends each event as
	// application/cloudevents+json; binary sends the data (the Detail
	// object) as the body and the attributes as headers, as the Kafka
	// (ce_), NATS (ce-) and AMQP (cloudEvents:) bindings define.
	Mode string `yaml:"mode"`
}

// StoreConfig chooses the state store: sqlite keeps one file under
// dataDir, for one instance; postgres is shared by several instances.
type StoreConfig struct {
	Driver string `yaml:"driver"`
	// URL (postgres) is a libpq URL or key=value string, e.g.
	// postgres://emitd@db:5432/emitd?sslmode=verify-full. Empty: the
	// environment's EMITD_STORE_URL. The password never appears in logs,
	// errors or `emitd config show`.
	URL string `yaml:"url" secret:"url"`
	// URLFile is a file holding store.url (a mounted secret), read at start.
	URLFile string `yaml:"urlFile" file:"true"`
	// Retention is how long processed command ids and purged dead letters
	// are kept. It must be longer than the commands broker's redelivery
	// deadline and duplicate window: a command redelivered after its id was
	// pruned would be processed again. Default 168h.
	Retention time.Duration `yaml:"retention"`
	// Synchronous (sqlite): "full" (default) syncs every commit to disk, so
	// that a command acknowledged to its broker survives a power loss;
	// "normal" is faster, and a power loss can roll back the last commits,
	// whose commands were acknowledged and are then never processed.
	Synchronous string `yaml:"synchronous"`
}

// BrokersConfig holds one optional section per broker; a section for a broker
// that neither commands nor events use is an error (it is almost always a
// mistake in a copied file). Every AWS section honours the SDK's standard
// environment (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_<SERVICE>, the credential chain), so one file runs against
// real AWS and against an emulator; region and endpoint here override it.
type BrokersConfig struct {
	Embedded    *EmbeddedConfig    `yaml:"embedded"`
	NATS        *NATSConfig        `yaml:"nats"`
	Kafka       *KafkaConfig       `yaml:"kafka"`
	SQS         *SQSConfig         `yaml:"sqs"`
	SNS         *SNSConfig         `yaml:"sns"`
	EventBridge *EventBridgeConfig `yaml:"eventbridge"`
	AMQP        *AMQPConfig        `yaml:"amqp"`
}

// EmbeddedConfig is the in-process NATS JetStream server.
type EmbeddedConfig struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
}

// NATSConfig points at an external NATS server with JetStream. Topics and
// buses are subjects; each has a stream EMITD_<name>, created at start.
type NATSConfig struct {
	// URL of the server (several comma-separated for a cluster), e.g.
	// nats://127.0.0.1:4222. Credentials may go in the URL
	// (nats://user:pass@host:4222).
	URL string `yaml:"url" secret:"url"`
	// URLFile is a file holding brokers.nats.url, read at start.
	URLFile string `yaml:"urlFile" file:"true"`
}

// KafkaConfig points at a Kafka cluster. Topics and buses are Kafka topics;
// commands are read with the consumer group commands.group.
type KafkaConfig struct {
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
}

// SQSConfig is Amazon SQS: each topic (commands, DLQ, results, or a bus) is
// a queue, given by name or by URL.
type SQSConfig struct {
	// Region overrides AWS_REGION / the profile's region.
	Region string `yaml:"region"`
	// Endpoint overrides the SQS endpoint (an emulator, a VPC endpoint).
	// Empty: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, then the real service.
	Endpoint string `yaml:"endpoint"`
	// CreateIfMissing creates missing queues at start (names ending in .fifo
	// as FIFO queues). Off: a missing queue stops the daemon at start.
	CreateIfMissing bool `yaml:"createIfMissing"`
	// FIFO requires every queue to be a FIFO queue (name ending in .fifo):
	// the slot id is the message group, so one slot's messages keep their
	// order. FIFO handling follows the .fifo suffix either way.
	FIFO bool `yaml:"fifo"`
	// VisibilityTimeout of queues emitd creates: how long a received command
	// stays hidden from other receivers, and how long one left unfinished at
	// shutdown waits before it is delivered again. Default SQS's 30s. It must
	// be at least router.handlerTimeout.
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
	// ReceiveWaitTime is the long-poll wait of each receive, 1s to 20s.
	// Default 20s (fewest requests); shorter makes shutdown quicker.
	ReceiveWaitTime time.Duration `yaml:"receiveWaitTime"`
	// ConsumeWorkers is how many receive loops read the commands queue.
	// Default 1.
	ConsumeWorkers int `yaml:"consumeWorkers"`
}

// SNSConfig is Amazon SNS, for events: each bus is a topic, given by name or
// by ARN.
type SNSConfig struct {
	// Region overrides AWS_REGION / the profile's region.
	Region string `yaml:"region"`
	// Endpoint overrides the SNS endpoint. Empty: AWS_ENDPOINT_URL_SNS,
	// AWS_ENDPOINT_URL, then the real service. `emitd tail` also uses it for
	// its SQS queue when there is no brokers.sqs section.
	Endpoint string `yaml:"endpoint"`
	// CreateIfMissing creates missing topics at start (names ending in .fifo
	// as FIFO topics). Off: a missing topic stops the daemon at start.
	CreateIfMissing bool `yaml:"createIfMissing"`
	// FIFO requires every bus to be a FIFO topic (.fifo); the slot id is the
	// message group.
	FIFO bool `yaml:"fifo"`
	// AccountID, if set, turns topic names into ARNs without calling
	// ListTopics (useful when emitd may publish but not list).
	AccountID string `yaml:"accountId"`
	// TailQueueSuffix names the SQS queue `emitd tail` subscribes to a bus
	// topic: <topic><suffix> (before .fifo). Created on the first tail; it
	// keeps what arrives until the next tail. Default -emitd-tail.
	TailQueueSuffix string `yaml:"tailQueueSuffix"`
}

// EventBridgeConfig is the PutEvents target, for events: each bus is an
// event bus, given by name or ARN. It cannot be read back (`emitd tail`
// explains how to see the events).
type EventBridgeConfig struct {
	// Region overrides AWS_REGION / the profile's region.
	Region string `yaml:"region"`
	// Endpoint overrides the EventBridge endpoint. Empty:
	// AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_ENDPOINT_URL, then the real service.
	Endpoint string `yaml:"endpoint"`
	// MaxEntryBytes is the entry-size limit (the sum of one call's entries,
	// as AWS computes it). Default 1 MiB, the service's current cap.
	MaxEntryBytes int `yaml:"maxEntryBytes"`
	// MaxAttempts bounds the attempts for an entry that fails transiently
	// (throttling, internal failure). Default 5.
	MaxAttempts int `yaml:"maxAttempts"`
}

// AMQPConfig points at a RabbitMQ server. Everything is published to one
// durable topic exchange with routing key = topic or bus name.
type AMQPConfig struct {
	// URL of the broker, e.g. amqp://guest:guest@127.0.0.1:5672/ (amqps://
	// for TLS).
	URL string `yaml:"url" secret:"url"`
	// URLFile is a file holding brokers.amqp.url, read at start.
	URLFile string `yaml:"urlFile" file:"true"`
	// Exchange is the durable topic exchange. Default emitd.
	Exchange string `yaml:"exchange"`
	// Prefetch is how many unacknowledged commands the broker sends ahead.
	// Default: router.maxInFlight.
	Prefetch int `yaml:"prefetch"`
}

// RouterConfig bounds the command pipeline.
type RouterConfig struct {
	// HandlerTimeout bounds one attempt at one batch of commands.
	HandlerTimeout time.Duration `yaml:"handlerTimeout"`
	// BatchSize bounds the commands decided and committed in one store
	// transaction. Default 256.
	BatchSize int `yaml:"batchSize"`
	// MaxInFlight bounds the commands taken from the broker and not yet
	// acknowledged. Default 1024.
	MaxInFlight int         `yaml:"maxInFlight"`
	Retry       RetryConfig `yaml:"retry"`
}

// RetryConfig bounds retries of transient failures, by count and by time.
type RetryConfig struct {
	MaxRetries      *int          `yaml:"maxRetries"` // nil: 5; 0: no retries
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

// HTTPConfig is the operations listener: /metrics, /healthz, /readyz. It has
// no authentication: keep it on loopback or a network only scrapers reach.
type HTTPConfig struct {
	// Listen is host:port; nil (left out): DefaultHTTPListen; "": no listener.
	Listen *string `yaml:"listen"`
	// MaxRelayLag: /readyz answers 503 while the oldest envelope waiting in
	// the outbox is older than this (the relay is stuck). Default 60s.
	MaxRelayLag time.Duration `yaml:"maxRelayLag"`
	// PProf serves Go's profiles (net/http/pprof) under /debug/pprof/ on
	// the listener: CPU, heap, goroutines, an execution trace. Off by
	// default: a profile shows the process's internals, and taking one
	// costs CPU while it runs.
	PProf bool `yaml:"pprof"`
}

// ListenAddr is http.listen with its default applied ("" when off).
func (h HTTPConfig) ListenAddr() string {
	if h.Listen == nil {
		return DefaultHTTPListen
	}
	return *h.Listen
}

// ScheduleConfig is the built-in schedule of the time-based commands.
type ScheduleConfig struct {
	// Enabled: nil (left out) is true.
	Enabled *bool `yaml:"enabled"`
	// Timezone of the cron fields, an IANA name; default UTC.
	Timezone string `yaml:"timezone"`
	// CatchUp: a fire time missed while no emitd fired (down, restarting)
	// is fired once at start if it is younger than this. nil: 1h; 0: never.
	CatchUp *time.Duration `yaml:"catchUp"`
	// Entries: nil (left out) is DefaultSchedule; [] is none.
	Entries []ScheduleEntry `yaml:"entries"`
}

// On says whether the schedule fires.
func (s ScheduleConfig) On() bool { return s.Enabled == nil || *s.Enabled }

// ScheduleEntry is one command fired on a cron schedule.
type ScheduleEntry struct {
	// Name identifies the entry: in logs, in the metric
	// emitd_schedule_fired_total{schedule}, and in the command ids of its
	// firings (so renaming an entry makes its firings new commands).
	Name string `yaml:"name"`
	// Cron is standard cron text (minute hour day-of-month month
	// day-of-week), a descriptor such as @hourly, or @every 5s (tests only).
	Cron    string          `yaml:"cron"`
	Command ScheduleCommand `yaml:"command"`
}

// ScheduleCommand is the command an entry fires.
type ScheduleCommand struct {
	Type string `yaml:"type"` // CreateSlots, UnattendSlots or CloseSlots
	// Data is the command's data, as in a command sent by hand (CreateSlots:
	// date, startHour, count). CreateSlots without a date creates the fire
	// time's day.
	Data map[string]any `yaml:"data"`
}
