package configs

import (
	"fmt"
	"maps"
	"os"
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
		c.Store.Driver = StoreSQLite
	}
	if c.Store.Synchronous == "" && c.Store.Driver == StoreSQLite {
		c.Store.Synchronous = "full"
	}
	if c.Store.URL == "" && c.Store.Driver == StorePostgres {
		c.Store.URL = os.Getenv(StoreURLEnv)
	}
	if c.Store.Retention == 0 {
		c.Store.Retention = DefaultRetention
	}
	if c.Commands.MaxBytes == 0 {
		c.Commands.MaxBytes = DefaultMaxCommandBytes
	}
	if c.Events.Format == "" {
		c.Events.Format = FormatEventBridge
	}
	if c.Events.Format == FormatCloudEvents && c.Events.CloudEvents.Mode == "" {
		c.Events.CloudEvents.Mode = ModeStructured
	}
	c.applyBrokerDefaults()
	r := &c.Router
	if r.HandlerTimeout == 0 {
		r.HandlerTimeout = 5 * time.Second
	}
	if r.BatchSize == 0 {
		r.BatchSize = 256
	}
	if r.MaxInFlight == 0 {
		r.MaxInFlight = max(1024, 2*r.BatchSize)
	}
	if r.Retry.MaxRetries == nil {
		five := 5
		r.Retry.MaxRetries = &five
	}
	if r.Retry.InitialInterval == 0 {
		r.Retry.InitialInterval = 100 * time.Millisecond
	}
	if r.Retry.MaxInterval == 0 {
		r.Retry.MaxInterval = 2 * time.Second
	}
	if r.Retry.MaxElapsed == 0 {
		r.Retry.MaxElapsed = 25 * time.Second
	}
	if c.Relay.BatchSize == 0 {
		c.Relay.BatchSize = 1024
	}
	if c.Relay.PollInterval == 0 {
		c.Relay.PollInterval = 500 * time.Millisecond
	}
	if c.Relay.MaxBackoff == 0 {
		c.Relay.MaxBackoff = 5 * time.Second
	}
	c.applyOperationsDefaults()
}

// Store drivers, the environment variable store.url falls back to, and
// the default retention.
const (
	StoreSQLite      = "sqlite"
	StorePostgres    = "postgres"
	StoreURLEnv      = "EMITD_STORE_URL"
	DefaultRetention = 168 * time.Hour
)

func (c *Config) validateStore(add func(string, string, ...any)) {
	st := c.Store
	switch st.Driver {
	case StoreSQLite:
		if st.Synchronous != "full" && st.Synchronous != "normal" {
			add("store.synchronous", "must be one of full, normal, got %q", st.Synchronous)
		}
		if st.URL != "" {
			add("store.url", "only applies to store.driver postgres (sqlite keeps dataDir/emitd.db)")
		}
	case StorePostgres:
		if st.Synchronous != "" {
			add("store.synchronous", "only applies to store.driver sqlite (PostgreSQL's own synchronous_commit applies)")
		}
		if st.URL == "" {
			add("store.url", "required for store.driver postgres (or set %s), e.g. postgres://emitd@db:5432/emitd?sslmode=verify-full; emitd does not fall back to libpq's defaults", StoreURLEnv)
		} else if err := checkPostgresURL(st.URL); err != nil {
			add("store.url", "%v", err)
		}
	}
	if st.Retention < time.Hour {
		add("store.retention", "must be at least 1h, got %s", st.Retention)
	}
	for _, w := range []func() (time.Duration, string){c.redeliveryDeadline, c.duplicateWindow} {
		if d, what := w(); d > 0 && st.Retention <= d {
			add("store.retention", "%s must be longer than %s (%s): a command redelivered after its id was pruned would be processed again", st.Retention, what, d)
		}
	}
}

// DefaultMaxCommandBytes is commands.maxBytes when it is not set.
const DefaultMaxCommandBytes = 256 << 10

var (
	// A driver the daemon cannot open is refused here, not silently
	// replaced by another store.
	storeDrivers = []string{StoreSQLite, StorePostgres}
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

	oneOf("commands.broker", c.Commands.Broker, brokersFor(func(k BrokerKind) bool { return k.Commands }))
	required("commands.topic", c.Commands.Topic)
	required("commands.dlqTopic", c.Commands.DLQTopic)
	required("commands.resultsTopic", c.Commands.ResultsTopic)
	distinct(add, map[string]string{
		"commands.topic": c.Commands.Topic, "commands.dlqTopic": c.Commands.DLQTopic,
		"commands.resultsTopic": c.Commands.ResultsTopic,
	})

	oneOf("events.broker", c.Events.Broker, brokersFor(func(k BrokerKind) bool { return k.Events }))
	required("events.domainBus", c.Events.DomainBus)
	required("events.analyticsBus", c.Events.AnalyticsBus)
	if c.Events.DomainBus != "" && c.Events.DomainBus == c.Events.AnalyticsBus {
		add("events.analyticsBus", "must differ from events.domainBus (%q): analytics copies would mix with domain events", c.Events.DomainBus)
	}

	c.validateFormat(add, oneOf)

	oneOf("store.driver", c.Store.Driver, storeDrivers)
	c.validateStore(add)
	if m := c.Commands.MaxBytes; m < 1 || m > 64<<20 {
		add("commands.maxBytes", "must be between 1 and 67108864 (64 MiB), got %d", m)
	}

	for _, e := range c.Metadata.Validate() {
		msg := e.Error()
		if !strings.HasPrefix(msg, "metadata.") {
			msg = "metadata: " + msg
		}
		p = append(p, msg)
	}

	c.validateBrokers(add)
	c.validatePolicy(add)

	r := c.Router
	if *r.Retry.MaxRetries < 0 {
		add("router.retry.maxRetries", "must be 0 or more, got %d", *r.Retry.MaxRetries)
	}
	if r.HandlerTimeout <= 0 {
		add("router.handlerTimeout", "must be positive, got %s", r.HandlerTimeout)
	} else if r.Retry.MaxElapsed < r.HandlerTimeout {
		add("router.retry.maxElapsed", "%s is shorter than one attempt (router.handlerTimeout %s)", r.Retry.MaxElapsed, r.HandlerTimeout)
	}
	// The margin covers what happens outside the retry budget: the dead-letter
	// publish, the ack, and the wait for the message before the first attempt.
	const margin = 5 * time.Second
	if deadline, what := c.redeliveryDeadline(); deadline > 0 && r.Retry.MaxElapsed > deadline-margin {
		add("router.retry.maxElapsed", "%s must stay at least %s below %s (%s): the broker would hand the command to another consumer while it is still retried here",
			r.Retry.MaxElapsed, margin, deadline, what)
	}
	if r.Retry.MaxInterval < r.Retry.InitialInterval {
		add("router.retry.maxInterval", "must be at least initialInterval (%s)", r.Retry.InitialInterval)
	}
	if r.BatchSize < 1 || r.BatchSize > 10000 {
		add("router.batchSize", "must be between 1 and 10000, got %d", r.BatchSize)
	}
	if r.MaxInFlight < r.BatchSize || r.MaxInFlight > 100000 {
		add("router.maxInFlight", "must be between router.batchSize (%d) and 100000, got %d", r.BatchSize, r.MaxInFlight)
	}
	if c.Relay.BatchSize < 1 || c.Relay.BatchSize > 10000 {
		add("relay.batchSize", "must be between 1 and 10000, got %d", c.Relay.BatchSize)
	}
	c.validateOperations(add)
	c.checkFiles(add)
	return p
}

// validateFormat checks events.format and events.cloudevents.
func (c *Config) validateFormat(add func(string, string, ...any), oneOf func(string, string, []string)) {
	e := c.Events
	oneOf("events.format", e.Format, []string{FormatEventBridge, FormatCloudEvents})
	refused, binary := c.cloudEvents()
	switch {
	case e.Format == FormatCloudEvents && refused != "":
		add("events.format", "%s", refused)
	case e.Format != FormatCloudEvents && e.CloudEvents.Mode != "":
		add("events.cloudevents.mode", "only applies to events.format cloudevents (events.format is %q)", e.Format)
	case e.Format == FormatCloudEvents:
		oneOf("events.cloudevents.mode", e.CloudEvents.Mode, []string{ModeStructured, ModeBinary})
		if e.CloudEvents.Mode == ModeBinary && !binary {
			add("events.cloudevents.mode", "binary needs a CloudEvents protocol binding with headers (Kafka, NATS, AMQP; embedded is NATS); "+
				"events.broker %s has none: use structured", e.Broker)
		}
	}
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
