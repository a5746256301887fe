package configs

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// BrokerSection is one broker's section under brokers (brokers.kafka, ...).
// Each broker's package defines its own (a struct with yaml tags, whose
// fields the unknown-key check walks like the rest of the file) and
// registers it with RegisterBroker; configs knows no broker by name.
type BrokerSection interface {
	// Defaults fills what the operator left out. It runs on every section
	// present, before any validation.
	Defaults(c *Config)
	// Validate reports the section's problems, and those of the topics and
	// buses that live on the broker, each with its field path (add prefixes
	// the path). It runs only for a broker that commands or events use.
	Validate(c *Config, add func(path, format string, args ...any))
}

// Optional interfaces of a BrokerSection: what the shared sections' checks
// ask of the commands or events broker. Each is asked of the broker's
// section, or of a zero section when there is none.
type (
	// RedeliveryDeadliner is a commands broker that hands a message to
	// another consumer when it is not acknowledged in time: the deadline and
	// what sets it (router.retry.maxElapsed and store.retention are checked
	// against it).
	RedeliveryDeadliner interface {
		RedeliveryDeadline() (time.Duration, string)
	}
	// DuplicateWindower is a commands broker that itself drops a message
	// sent again within a window: the window and its name.
	DuplicateWindower interface {
		DuplicateWindow() (time.Duration, string)
	}
	// CloudEventsLimiter is an events broker that cannot carry every form of
	// events.format cloudevents: refused (non-empty) is the problem of
	// events.format cloudevents on it; binary says whether it has a binding
	// with headers for events.cloudevents.mode binary.
	CloudEventsLimiter interface {
		CloudEvents() (refused string, binary bool)
	}
)

// BrokerKind is a broker as configs knows it: its name (the key under
// brokers, the value of commands.broker and events.broker), its roles, and
// its section.
type BrokerKind struct {
	Name string
	// Commands and Events say which of commands.broker and events.broker
	// may name it.
	Commands, Events bool
	// Implicit: a broker used without a section gets a zero one, with its
	// defaults (the embedded broker needs nothing from the operator). Any
	// other broker in use requires its section.
	Implicit bool
	// NewSection returns a new zero section, a pointer to the struct the
	// YAML is decoded into.
	NewSection func() BrokerSection
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]BrokerKind{}
)

// RegisterBroker makes a broker known to configurations. Brokers register
// from their package's init (see adapters/broker.Register); registering a
// name twice is a programming error.
func RegisterBroker(k BrokerKind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if k.Name == "" || k.NewSection == nil {
		panic("configs: RegisterBroker needs a name and a section")
	}
	if _, dup := kinds[k.Name]; dup {
		panic("configs: broker " + k.Name + " registered twice")
	}
	kinds[k.Name] = k
}

// Broker returns the registered broker name.
func Broker(name string) (BrokerKind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// BrokerNames lists the registered brokers, sorted.
func BrokerNames() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	return slices.Sorted(maps.Keys(kinds))
}

// brokersFor lists the brokers that may play a role, sorted.
func brokersFor(role func(BrokerKind) bool) []string {
	var out []string
	for _, n := range BrokerNames() {
		if k, _ := Broker(n); role(k) {
			out = append(out, n)
		}
	}
	return out
}

// BrokersConfig holds one optional section per broker, by name; a section
// for a broker that neither commands nor events use is an error (it is
// almost always a mistake in a copied file). Every AWS section honours the
// SDK's standard environment (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_<SERVICE>, the credential chain), so one file runs against
// real AWS and against an emulator; region and endpoint there override it.
//
// Code that needs a broker's settings asks that broker's package for its
// typed section (e.g. kafka.SectionOf(cfg)).
type BrokersConfig map[string]BrokerSection

// Section is the section of the broker name, nil when there is none.
func (b BrokersConfig) Section(name string) BrokerSection { return b[name] }

// Set puts s as the section of the broker name (tests, and the implicit
// section of a broker used without one).
func (b *BrokersConfig) Set(name string, s BrokerSection) {
	if *b == nil {
		*b = BrokersConfig{}
	}
	(*b)[name] = s
}

// behaviour is the section of name, or a zero one when the configuration has
// none, for the optional interfaces (nil for an unknown broker).
func (b BrokersConfig) behaviour(name string) BrokerSection {
	if s := b[name]; s != nil {
		return s
	}
	if k, ok := Broker(name); ok {
		return k.NewSection()
	}
	return nil
}

// UnmarshalYAML decodes each registered broker's section into its own type.
// Unknown keys are left to checkKeys, which reports them with their line;
// a null section (`kafka:` with nothing under it) counts as absent, as a nil
// pointer field did.
func (b *BrokersConfig) UnmarshalYAML(n *yaml.Node) error {
	var keyed map[string]yaml.Node
	if err := n.Decode(&keyed); err != nil {
		return err
	}
	var typeErrs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i].Value, n.Content[i+1]
		k, ok := Broker(key)
		if !ok || val.Tag == "!!null" {
			continue
		}
		s := k.NewSection()
		if err := val.Decode(s); err != nil {
			te, ok := err.(*yaml.TypeError)
			if !ok {
				return err
			}
			typeErrs = append(typeErrs, te.Errors...)
		}
		b.Set(key, s)
	}
	if len(typeErrs) > 0 {
		return &yaml.TypeError{Errors: typeErrs}
	}
	return nil
}

var brokersType = reflect.TypeOf(BrokersConfig{})

// brokerFields are the keys checkKeys accepts under brokers: the registered
// brokers, each with its section's type.
func brokerFields() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for _, n := range BrokerNames() {
		k, _ := Broker(n)
		out[n] = reflect.TypeOf(k.NewSection())
	}
	return out
}

// applyBrokerDefaults gives an implicit broker in use its section, then
// fills every section's defaults.
func (c *Config) applyBrokerDefaults() {
	for _, name := range []string{c.Commands.Broker, c.Events.Broker} {
		if k, ok := Broker(name); ok && k.Implicit && c.Brokers[name] == nil {
			c.Brokers.Set(name, k.NewSection())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Brokers)) {
		if s := c.Brokers[name]; s != nil {
			s.Defaults(c)
		}
	}
}

// NamedTopic is a topic or bus name with the field path that set it.
type NamedTopic struct{ Path, Name string }

// TopicsOn lists the topics and buses that live on any of the given brokers
// (those left empty are left out: "required" is reported already).
func TopicsOn(c *Config, kinds ...string) []NamedTopic {
	var out []NamedTopic
	if slices.Contains(kinds, c.Commands.Broker) {
		out = append(out, NamedTopic{"commands.topic", c.Commands.Topic}, NamedTopic{"commands.dlqTopic", c.Commands.DLQTopic},
			NamedTopic{"commands.resultsTopic", c.Commands.ResultsTopic})
	}
	if slices.Contains(kinds, c.Events.Broker) {
		out = append(out, NamedTopic{"events.domainBus", c.Events.DomainBus}, NamedTopic{"events.analyticsBus", c.Events.AnalyticsBus})
	}
	return slices.DeleteFunc(out, func(t NamedTopic) bool { return t.Name == "" })
}

// HasScheme says whether url starts with one of schemes and "://".
func HasScheme(url string, schemes ...string) bool {
	for _, s := range schemes {
		if strings.HasPrefix(url, s+"://") {
			return true
		}
	}
	return false
}

// validateBrokers checks that each broker in use has its section, that each
// section present is used, and lets each section in use check itself.
func (c *Config) validateBrokers(add func(string, string, ...any)) {
	used := map[string]bool{c.Commands.Broker: true, c.Events.Broker: true}
	names := BrokerNames()
	for _, name := range names {
		present := c.Brokers[name] != nil
		switch {
		case used[name] && !present:
			add("brokers."+name, "required: %s", usedBy(c, name))
		case present && !used[name]:
			add("brokers."+name, "set, but neither commands.broker nor events.broker is %q; remove it or choose that broker", name)
		}
	}
	for _, name := range names {
		if s := c.Brokers[name]; s != nil && used[name] {
			s.Validate(c, add)
		}
	}
	if c.Commands.Broker == c.Events.Broker {
		// One broker, one namespace: a bus named like a commands topic would
		// feed events to the command handler (or commands to consumers).
		for _, bus := range []NamedTopic{{"events.domainBus", c.Events.DomainBus}, {"events.analyticsBus", c.Events.AnalyticsBus}} {
			for _, t := range []NamedTopic{{"commands.topic", c.Commands.Topic}, {"commands.dlqTopic", c.Commands.DLQTopic},
				{"commands.resultsTopic", c.Commands.ResultsTopic}} {
				if bus.Name != "" && bus.Name == t.Name {
					add(bus.Path, "%q is also %s, on the same broker: give the bus its own name", bus.Name, t.Path)
				}
			}
		}
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

// redeliveryDeadline is how long the commands broker waits for an ack before
// it delivers the message again (0: no such deadline).
func (c *Config) redeliveryDeadline() (time.Duration, string) {
	if r, ok := c.Brokers.behaviour(c.Commands.Broker).(RedeliveryDeadliner); ok {
		return r.RedeliveryDeadline()
	}
	return 0, ""
}

// duplicateWindow is how long the commands broker itself drops a command
// sent again (0: it does not).
func (c *Config) duplicateWindow() (time.Duration, string) {
	if d, ok := c.Brokers.behaviour(c.Commands.Broker).(DuplicateWindower); ok {
		return d.DuplicateWindow()
	}
	return 0, ""
}

// cloudEvents is what the events broker carries of events.format
// cloudevents (every form, unless its section says otherwise).
func (c *Config) cloudEvents() (refused string, binary bool) {
	if l, ok := c.Brokers.behaviour(c.Events.Broker).(CloudEventsLimiter); ok {
		return l.CloudEvents()
	}
	return "", true
}
