// Package configs holds emitd's YAML configurations (the embedded default is
// built into the binary) and the code that loads and validates them.
package configs

import (
	"time"

	"github.com/emitd/emitd/domain"
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
