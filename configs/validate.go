package configs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// applyDefaults fills what an operator may leave out. Required business
// facts (metadata, broker choice) have no silent default outside the
// built-in file.
func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Commands.Group == "" {
		c.Commands.Group = "emitd"
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if e := c.Brokers.Embedded; e != nil {
		if e.Host == "" {
			e.Host = "127.0.0.1"
		}
		if e.Port == 0 {
			e.Port = DefaultEmbeddedPort
		}
	}
	if c.Brokers.Embedded == nil && (c.Commands.Broker == BrokerEmbedded || c.Events.Broker == BrokerEmbedded) {
		c.Brokers.Embedded = &EmbeddedConfig{Host: "127.0.0.1", Port: DefaultEmbeddedPort}
	}
	if eb := c.Brokers.EventBridge; eb != nil && eb.MaxEntryBytes == 0 {
		eb.MaxEntryBytes = 1 << 20 // EventBridge's current entry cap
	}
	r := &c.Router
	if r.HandlerTimeout == 0 {
		r.HandlerTimeout = 10 * time.Second
	}
	if r.Retry.MaxRetries == 0 {
		r.Retry.MaxRetries = 5
	}
	if r.Retry.InitialInterval == 0 {
		r.Retry.InitialInterval = 100 * time.Millisecond
	}
	if r.Retry.MaxInterval == 0 {
		r.Retry.MaxInterval = 2 * time.Second
	}
	if r.Retry.MaxElapsed == 0 {
		r.Retry.MaxElapsed = 15 * time.Second
	}
	if c.Relay.BatchSize == 0 {
		c.Relay.BatchSize = 256
	}
	if c.Relay.PollInterval == 0 {
		c.Relay.PollInterval = 500 * time.Millisecond
	}
	if c.Relay.MaxBackoff == 0 {
		c.Relay.MaxBackoff = 5 * time.Second
	}
}

// DefaultEmbeddedPort is where the embedded NATS server listens: not NATS's
// standard 4222, which a real NATS server (or other software) often holds.
const DefaultEmbeddedPort = 4233

var (
	commandBrokers = []string{BrokerEmbedded, BrokerNATS, BrokerKafka, BrokerSQS, BrokerAMQP}
	eventBrokers   = []string{BrokerEmbedded, BrokerNATS, BrokerKafka, BrokerSQS, BrokerSNS, BrokerEventBridge, BrokerAMQP}
	storeDrivers   = []string{"sqlite", "postgres"}
)

// Validate returns every problem at once, each prefixed with its field path.
func (c *Config) Validate() Problems {
	var p Problems
	add := func(path, format string, args ...any) {
		p = append(p, path+": "+fmt.Sprintf(format, args...))
	}
	oneOf := func(path, v string, allowed []string) {
		if v == "" {
			add(path, "required; one of %s", strings.Join(allowed, ", "))
		} else if !slices.Contains(allowed, v) {
			add(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	required := func(path, v string) {
		if strings.TrimSpace(v) == "" {
			add(path, "required")
		}
	}

	oneOf("commands.broker", c.Commands.Broker, commandBrokers)
	required("commands.topic", c.Commands.Topic)
	required("commands.dlqTopic", c.Commands.DLQTopic)
	required("commands.resultsTopic", c.Commands.ResultsTopic)
	distinct(add, map[string]string{
		"commands.topic": c.Commands.Topic, "commands.dlqTopic": c.Commands.DLQTopic,
		"commands.resultsTopic": c.Commands.ResultsTopic,
	})

	oneOf("events.broker", c.Events.Broker, eventBrokers)
	required("events.domainBus", c.Events.DomainBus)
	required("events.analyticsBus", c.Events.AnalyticsBus)
	if c.Events.DomainBus != "" && c.Events.DomainBus == c.Events.AnalyticsBus {
		add("events.analyticsBus", "must differ from events.domainBus (%q): analytics copies would mix with domain events", c.Events.DomainBus)
	}

	oneOf("store.driver", c.Store.Driver, storeDrivers)
	switch c.Store.Driver {
	case "sqlite":
		if c.Store.DSN != "" {
			add("store.dsn", "not used by the sqlite store (it keeps dataDir/emitd.db); remove it")
		}
	case "postgres":
		required("store.dsn", c.Store.DSN)
	}

	for _, e := range c.Metadata.Validate() {
		msg := e.Error()
		if !strings.HasPrefix(msg, "metadata.") {
			msg = "metadata: " + msg
		}
		p = append(p, msg)
	}

	c.validateBrokers(add)

	r := c.Router
	if r.Retry.MaxRetries < 0 {
		add("router.retry.maxRetries", "must be 0 or more, got %d", r.Retry.MaxRetries)
	}
	if r.Retry.MaxInterval < r.Retry.InitialInterval {
		add("router.retry.maxInterval", "must be at least initialInterval (%s)", r.Retry.InitialInterval)
	}
	if c.Relay.BatchSize < 1 || c.Relay.BatchSize > 10000 {
		add("relay.batchSize", "must be between 1 and 10000, got %d", c.Relay.BatchSize)
	}
	return p
}

func distinct(add func(string, string, ...any), topics map[string]string) {
	seen := map[string]string{}
	for _, path := range slices.Sorted(maps.Keys(topics)) {
		v := topics[path]
		if v == "" {
			continue
		}
		if other, ok := seen[v]; ok {
			add(path, "%q is also %s: each topic has one purpose", v, other)
		}
		seen[v] = path
	}
}

// validateBrokers checks that each broker in use has its section, that each
// section present is used, and that each broker can play its role.
func (c *Config) validateBrokers(add func(string, string, ...any)) {
	used := map[string]bool{c.Commands.Broker: true, c.Events.Broker: true}
	b := c.Brokers
	section := func(name string, present bool) {
		switch {
		case used[name] && !present && name != BrokerEmbedded:
			add("brokers."+name, "required: %s", usedBy(c, name))
		case present && !used[name]:
			add("brokers."+name, "set, but neither commands.broker nor events.broker is %q; remove it or choose that broker", name)
		}
	}
	section(BrokerEmbedded, b.Embedded != nil)
	section(BrokerNATS, b.NATS != nil)
	section(BrokerKafka, b.Kafka != nil)
	section(BrokerSQS, b.SQS != nil)
	section(BrokerSNS, b.SNS != nil)
	section(BrokerEventBridge, b.EventBridge != nil)
	section(BrokerAMQP, b.AMQP != nil)

	if e := b.Embedded; e != nil && used[BrokerEmbedded] {
		if e.Port < 1 || e.Port > 65535 {
			add("brokers.embedded.port", "must be between 1 and 65535, got %d", e.Port)
		}
		if e.Host != "127.0.0.1" && e.Host != "localhost" && e.Host != "::1" {
			add("brokers.embedded.host", "must be a loopback address (127.0.0.1, ::1, localhost), got %q: the embedded broker has no authentication", e.Host)
		}
	}
	if n := b.NATS; n != nil && used[BrokerNATS] {
		if n.URL == "" {
			add("brokers.nats.url", "required, e.g. nats://127.0.0.1:4222")
		}
	}
	if k := b.Kafka; k != nil && used[BrokerKafka] && len(k.Brokers) == 0 {
		add("brokers.kafka.brokers", "required: at least one host:port")
	}
	if a := b.AMQP; a != nil && used[BrokerAMQP] && a.URL == "" {
		add("brokers.amqp.url", "required, e.g. amqp://guest:guest@127.0.0.1:5672/")
	}
	if eb := b.EventBridge; eb != nil && eb.MaxEntryBytes < 0 {
		add("brokers.eventbridge.maxEntryBytes", "must be positive, got %d", eb.MaxEntryBytes)
	}
}

func usedBy(c *Config, name string) string {
	var roles []string
	if c.Commands.Broker == name {
		roles = append(roles, "commands.broker")
	}
	if c.Events.Broker == name {
		roles = append(roles, "events.broker")
	}
	return strings.Join(roles, " and ") + " is " + name
}
