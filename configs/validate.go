package configs

import (
	"fmt"
	"maps"
	"os"
	"regexp"
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

// duplicateWindow is how long the commands broker itself drops a command
// sent again (0: it does not).
func (c *Config) duplicateWindow() (time.Duration, string) {
	switch c.Commands.Broker {
	case BrokerEmbedded, BrokerNATS:
		return 2 * time.Minute, "JetStream's duplicate window"
	case BrokerSQS:
		return 5 * time.Minute, "the SQS FIFO deduplication interval"
	}
	return 0, ""
}

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

// DefaultEmbeddedPort is where the embedded NATS server listens: not NATS's
// standard 4222, which a real NATS server (or other software) often holds.
const DefaultEmbeddedPort = 4233

var (
	commandBrokers = []string{BrokerEmbedded, BrokerNATS, BrokerKafka, BrokerSQS, BrokerAMQP}
	eventBrokers   = []string{BrokerEmbedded, BrokerNATS, BrokerKafka, BrokerSQS, BrokerSNS, BrokerEventBridge, BrokerAMQP}
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
	switch {
	case e.Format == FormatCloudEvents && e.Broker == BrokerEventBridge:
		add("events.format", "cloudevents cannot be used with events.broker eventbridge: the EventBridge bus stays EventBridge-shaped "+
			"(PutEvents takes entries of Source, DetailType and Detail); use eventbridge")
	case e.Format != FormatCloudEvents && e.CloudEvents.Mode != "":
		add("events.cloudevents.mode", "only applies to events.format cloudevents (events.format is %q)", e.Format)
	case e.Format == FormatCloudEvents:
		oneOf("events.cloudevents.mode", e.CloudEvents.Mode, []string{ModeStructured, ModeBinary})
		if e.CloudEvents.Mode == ModeBinary && (e.Broker == BrokerSQS || e.Broker == BrokerSNS) {
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
		} else if !hasScheme(n.URL, "nats", "tls", "ws", "wss") {
			// Not quoted: it may hold a password.
			add("brokers.nats.url", "want nats://host:port (or tls://, ws://, wss://); the value is not shown (it may hold a password)")
		}
	}
	if k := b.Kafka; k != nil && used[BrokerKafka] {
		validateKafka(c, k, add)
	}
	if q := b.SQS; q != nil && used[BrokerSQS] {
		validateSQS(c, q, add)
	}
	if s := b.SNS; s != nil && used[BrokerSNS] {
		validateSNS(c, s, add)
	}
	if eb := b.EventBridge; eb != nil && used[BrokerEventBridge] {
		validateEventBridge(c, eb, add)
	}
	if a := b.AMQP; a != nil && used[BrokerAMQP] {
		validateAMQP(c, a, add)
	}
	if c.Commands.Broker == c.Events.Broker {
		// One broker, one namespace: a bus named like a commands topic would
		// feed events to the command handler (or commands to consumers).
		for _, bus := range []namedTopic{{"events.domainBus", c.Events.DomainBus}, {"events.analyticsBus", c.Events.AnalyticsBus}} {
			for _, t := range []namedTopic{{"commands.topic", c.Commands.Topic}, {"commands.dlqTopic", c.Commands.DLQTopic},
				{"commands.resultsTopic", c.Commands.ResultsTopic}} {
				if bus.name != "" && bus.name == t.name {
					add(bus.path, "%q is also %s, on the same broker: give the bus its own name", bus.name, t.path)
				}
			}
		}
	}
	for _, kind := range []string{BrokerEmbedded, BrokerNATS} {
		if c.Commands.Broker == kind && c.Commands.Group != "" && !natsName.MatchString(c.Commands.Group) {
			add("commands.group", "%q: on %s the group names a JetStream consumer: only letters, digits, - and _", c.Commands.Group, kind)
		}
	}
	for _, t := range topicsOn(c, BrokerNATS, BrokerEmbedded) {
		if strings.ContainsAny(t.name, "*> \t") || strings.HasPrefix(t.name, ".") || strings.HasSuffix(t.name, ".") || strings.Contains(t.name, "..") {
			add(t.path, "%q is not a valid NATS subject: no wildcards (* >), spaces or empty tokens", t.name)
		}
	}
}

// namedTopic is a topic or bus name with the field path that set it.
type namedTopic struct{ path, name string }

// topicsOn lists the topics and buses that live on any of the given brokers.
func topicsOn(c *Config, kinds ...string) []namedTopic {
	var out []namedTopic
	if slices.Contains(kinds, c.Commands.Broker) {
		out = append(out, namedTopic{"commands.topic", c.Commands.Topic}, namedTopic{"commands.dlqTopic", c.Commands.DLQTopic},
			namedTopic{"commands.resultsTopic", c.Commands.ResultsTopic})
	}
	if slices.Contains(kinds, c.Events.Broker) {
		out = append(out, namedTopic{"events.domainBus", c.Events.DomainBus}, namedTopic{"events.analyticsBus", c.Events.AnalyticsBus})
	}
	return slices.DeleteFunc(out, func(t namedTopic) bool { return t.name == "" }) // "required" is reported already
}

var (
	natsName      = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	kafkaTopic    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	kafkaVersion  = regexp.MustCompile(`^\d+\.\d+\.\d+(\.\d+)?$`)
	hostPort      = regexp.MustCompile(`^[^\s:/]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$`)
	awsBaseName   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	accountID     = regexp.MustCompile(`^\d{12}$`)
	eventBusName  = regexp.MustCompile(`^[/.\-_A-Za-z0-9]{1,256}$`)
	eventBusARN   = regexp.MustCompile(`^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[/.\-_A-Za-z0-9]{1,256}$`)
	snsTopicARN   = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$`)
	sqsQueueURL   = regexp.MustCompile(`^https?://[^/\s]+/\d{12}/[A-Za-z0-9_-]+(\.fifo)?$`)
	awsRegionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
)

func hasScheme(url string, schemes ...string) bool {
	for _, s := range schemes {
		if strings.HasPrefix(url, s+"://") {
			return true
		}
	}
	return false
}

func validateKafka(c *Config, k *KafkaConfig, add func(string, string, ...any)) {
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
		add("brokers.kafka.partitions", "must be 0 (default 4) or more, got %d", k.Partitions)
	}
	if k.ReplicationFactor < 0 {
		add("brokers.kafka.replicationFactor", "must be 0 (default 1) or more, got %d", k.ReplicationFactor)
	}
	if !k.CreateIfMissing && (k.Partitions != 0 || k.ReplicationFactor != 0) {
		add("brokers.kafka.createIfMissing", "false, but partitions/replicationFactor are set: they only apply to topics emitd creates; set createIfMissing: true or remove them")
	}
	for _, t := range topicsOn(c, BrokerKafka) {
		if !kafkaTopic.MatchString(t.name) || t.name == "." || t.name == ".." {
			add(t.path, "%q is not a valid Kafka topic name: 1 to 249 of letters, digits, '.', '_', '-'", t.name)
		}
	}
}

func validateRegionEndpoint(section, region, endpoint string, add func(string, string, ...any)) {
	if region != "" && !awsRegionName.MatchString(region) {
		add(section+".region", "%q is not an AWS region name, e.g. eu-north-1", region)
	}
	if endpoint != "" && !hasScheme(endpoint, "http", "https") {
		add(section+".endpoint", "%q: want a URL such as http://127.0.0.1:4566 (or leave it out: the SDK uses AWS_ENDPOINT_URL_* or the real service)", endpoint)
	}
}

func validateSQS(c *Config, q *SQSConfig, add func(string, string, ...any)) {
	validateRegionEndpoint("brokers.sqs", q.Region, q.Endpoint, add)
	for _, t := range topicsOn(c, BrokerSQS) {
		name := t.name
		if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
			if !sqsQueueURL.MatchString(name) {
				add(t.path, "%q is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", name)
				continue
			}
			name = name[strings.LastIndex(name, "/")+1:]
		}
		base, fifo := strings.CutSuffix(name, ".fifo")
		if !awsBaseName.MatchString(base) || len(name) > 80 {
			add(t.path, "%q is not a valid SQS queue name: up to 80 letters, digits, '-' and '_' (FIFO queues end in .fifo)", t.name)
		} else if q.FIFO && !fifo {
			add(t.path, "%q: brokers.sqs.fifo is true, so every queue must be a FIFO queue, whose name ends in .fifo", t.name)
		}
	}
	if v := q.VisibilityTimeout; v < 0 || v > 12*time.Hour || v%time.Second != 0 {
		add("brokers.sqs.visibilityTimeout", "must be whole seconds between 0s and 12h (SQS's range), got %s", v)
	} // its relation to the retry budget: see redeliveryDeadline
	if w := q.ReceiveWaitTime; w != 0 && (w < time.Second || w > 20*time.Second) {
		add("brokers.sqs.receiveWaitTime", "must be between 1s and 20s (SQS's long-poll range), got %s", w)
	}
	if q.ConsumeWorkers < 0 {
		add("brokers.sqs.consumeWorkers", "must be 0 (default 1) or more, got %d", q.ConsumeWorkers)
	}
}

func validateSNS(c *Config, s *SNSConfig, add func(string, string, ...any)) {
	validateRegionEndpoint("brokers.sns", s.Region, s.Endpoint, add)
	for _, t := range topicsOn(c, BrokerSNS) {
		name := t.name
		if strings.HasPrefix(name, "arn:") {
			if !snsTopicARN.MatchString(name) {
				add(t.path, "%q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", name)
				continue
			}
			name = name[strings.LastIndex(name, ":")+1:]
		}
		base, fifo := strings.CutSuffix(name, ".fifo")
		if !awsBaseName.MatchString(base) || len(name) > 256 {
			add(t.path, "%q is not a valid SNS topic name: up to 256 letters, digits, '-' and '_' (FIFO topics end in .fifo)", t.name)
		} else if s.FIFO && !fifo {
			add(t.path, "%q: brokers.sns.fifo is true, so every bus must be a FIFO topic, whose name ends in .fifo", t.name)
		}
	}
	if s.AccountID != "" && !accountID.MatchString(s.AccountID) {
		add("brokers.sns.accountId", "%q: want the 12-digit AWS account id", s.AccountID)
	}
	if s.TailQueueSuffix != "" && !awsBaseName.MatchString(s.TailQueueSuffix) {
		add("brokers.sns.tailQueueSuffix", "%q: only letters, digits, '-' and '_' (it ends an SQS queue name)", s.TailQueueSuffix)
	}
}

func validateEventBridge(c *Config, eb *EventBridgeConfig, add func(string, string, ...any)) {
	validateRegionEndpoint("brokers.eventbridge", eb.Region, eb.Endpoint, add)
	for _, t := range topicsOn(c, BrokerEventBridge) {
		if strings.HasPrefix(t.name, "arn:") {
			if !eventBusARN.MatchString(t.name) {
				add(t.path, "%q is not an event bus ARN (arn:aws:events:REGION:ACCOUNT:event-bus/NAME)", t.name)
			}
		} else if !eventBusName.MatchString(t.name) {
			add(t.path, "%q is not a valid event bus name: up to 256 letters, digits, '.', '-', '_', '/'", t.name)
		}
	}
	if eb.MaxEntryBytes < 0 || eb.MaxEntryBytes > 1<<20 {
		add("brokers.eventbridge.maxEntryBytes", "must be between 1 and 1048576 (EventBridge's 1 MiB cap), got %d", eb.MaxEntryBytes)
	}
	if eb.MaxAttempts < 0 {
		add("brokers.eventbridge.maxAttempts", "must be 0 (default 5) or more, got %d", eb.MaxAttempts)
	}
}

func validateAMQP(c *Config, a *AMQPConfig, add func(string, string, ...any)) {
	if a.URL == "" {
		add("brokers.amqp.url", "required, e.g. amqp://guest:guest@127.0.0.1:5672/")
	} else if !hasScheme(a.URL, "amqp", "amqps") {
		// Not quoted: it may hold a password.
		add("brokers.amqp.url", "want amqp://user:password@host:5672/vhost (or amqps://); the value is not shown (it may hold a password)")
	}
	if a.Prefetch < 0 {
		add("brokers.amqp.prefetch", "must be 0 (default router.maxInFlight) or more, got %d", a.Prefetch)
	}
	if strings.ContainsAny(a.Exchange, " \t") {
		add("brokers.amqp.exchange", "%q: no spaces", a.Exchange)
	}
	for _, t := range topicsOn(c, BrokerAMQP) {
		if strings.ContainsAny(t.name, "*#") || len(t.name) > 200 {
			add(t.path, "%q is not usable as an AMQP routing key: no * or # (topic-exchange wildcards), at most 200 bytes", t.name)
		}
	}
	if c.Commands.Broker == BrokerAMQP && strings.ContainsAny(c.Commands.Group, "*#") {
		add("commands.group", "%q: no * or # (it ends the commands queue name)", c.Commands.Group)
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

// natsAckWait is how long NATS JetStream (embedded or external) waits for a
// command's ack before redelivering it: the natsjs adapter's default.
const natsAckWait = 30 * time.Second

// redeliveryDeadline is how long the commands broker waits for an ack before
// it delivers the message again (0: no such deadline).
func (c *Config) redeliveryDeadline() (time.Duration, string) {
	switch c.Commands.Broker {
	case BrokerEmbedded, BrokerNATS:
		return natsAckWait, "NATS JetStream's AckWait"
	case BrokerSQS:
		if q := c.Brokers.SQS; q != nil && q.VisibilityTimeout > 0 {
			return q.VisibilityTimeout, "brokers.sqs.visibilityTimeout"
		}
		return 30 * time.Second, "the SQS queue's default visibility timeout"
	}
	return 0, ""
}
