package eventbridge

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/emitd/emitd/adapters/awsconf"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/publisher"
)

// BrokerName is the EventBridge broker's name (brokers.eventbridge), for
// events.
const BrokerName = "eventbridge"

const regionPath = "brokers.eventbridge.region"

func init() {
	broker.Register(broker.Spec{Name: BrokerName, Events: true,
		NewSection: func() configs.BrokerSection { return new(Section) }, Open: open,
		BusDeadLetters: publisher.FromRuleTarget})
}

// Section (brokers.eventbridge) is the PutEvents target, for events: each
// bus is an event bus, given by name or ARN. It cannot be read back
// (`emitd tail` explains how to see the events).
type Section struct {
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

// SectionOf is cfg's brokers.eventbridge, nil when there is none.
func SectionOf(cfg *configs.Config) *Section {
	s, _ := cfg.Brokers.Section(BrokerName).(*Section)
	return s
}

// Defaults implements configs.BrokerSection.
func (eb *Section) Defaults(*configs.Config) {
	if eb.MaxEntryBytes == 0 {
		eb.MaxEntryBytes = DefaultMaxEntryBytes
	}
}

var (
	eventBusName = regexp.MustCompile(`^[/.\-_A-Za-z0-9]{1,256}$`)
	eventBusARN  = regexp.MustCompile(`^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[/.\-_A-Za-z0-9]{1,256}$`)
)

// Validate implements configs.BrokerSection.
func (eb *Section) Validate(c *configs.Config, add func(string, string, ...any)) {
	awsconf.ValidateRegionEndpoint("brokers.eventbridge", eb.Region, eb.Endpoint, add)
	for _, t := range configs.TopicsOn(c, BrokerName) {
		if strings.HasPrefix(t.Name, "arn:") {
			if !eventBusARN.MatchString(t.Name) {
				add(t.Path, "%q is not an event bus ARN (arn:aws:events:REGION:ACCOUNT:event-bus/NAME)", t.Name)
			}
		} else if !eventBusName.MatchString(t.Name) {
			add(t.Path, "%q is not a valid event bus name: up to 256 letters, digits, '.', '-', '_', '/'", t.Name)
		}
	}
	if eb.MaxEntryBytes < 0 || eb.MaxEntryBytes > EntryBytesCap {
		add("brokers.eventbridge.maxEntryBytes", "must be between 1 and %d (EventBridge's 1 MiB cap), got %d", EntryBytesCap, eb.MaxEntryBytes)
	}
	if eb.MaxAttempts < 0 {
		add("brokers.eventbridge.maxAttempts", "must be 0 (default %d) or more, got %d", DefaultMaxAttempts, eb.MaxAttempts)
	}
}

// CloudEvents implements configs.CloudEventsLimiter: the EventBridge bus
// takes entries only.
func (eb *Section) CloudEvents() (string, bool) {
	return "cloudevents cannot be used with events.broker eventbridge: the EventBridge bus stays EventBridge-shaped " +
		"(PutEvents takes entries of Source, DetailType and Detail); use eventbridge", false
}

type eventBridgeBroker struct {
	cfg *configs.Config
	pub *Publisher
}

func open(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
	eb := SectionOf(cfg)
	pub, err := NewPublisher(ctx, Config{Region: eb.Region, Endpoint: eb.Endpoint,
		MaxEntryBytes: eb.MaxEntryBytes, MaxAttempts: eb.MaxAttempts}, logger)
	if err != nil {
		return nil, awsconf.Hint(err, regionPath)
	}
	return &eventBridgeBroker{cfg: cfg, pub: pub}, nil
}

func (b *eventBridgeBroker) Name() string                 { return BrokerName }
func (b *eventBridgeBroker) Publisher() message.Publisher { return b.pub }
func (b *eventBridgeBroker) Close() error                 { return b.pub.Close() }

func (b *eventBridgeBroker) Ping(ctx context.Context, topic string) error {
	return b.pub.Ping(ctx, topic)
}

// Subscriber always fails: PutEvents is write-only.
func (b *eventBridgeBroker) Subscriber(broker.SubscribeOptions) (message.Subscriber, error) {
	return nil, fmt.Errorf("events.broker is eventbridge: %w. Against the local test server, "+
		"`go run ./cmd/ebtest -bus %s -bus %s` prints every entry it accepts", ErrCannotTail,
		b.cfg.Events.DomainBus, b.cfg.Events.AnalyticsBus)
}

// EnsureTopics checks each bus exists (DescribeEventBus): EventBridge accepts
// events for a bus that does not exist and drops them without a word.
func (b *eventBridgeBroker) EnsureTopics(ctx context.Context, topics ...string) error {
	for _, bus := range topics {
		if err := b.pub.CheckBus(ctx, bus); err != nil {
			if missing := (*ebtypes.ResourceNotFoundException)(nil); errors.As(err, &missing) {
				return fmt.Errorf("%s: %w; create it (aws events create-event-bus --name %s) or fix the name: "+
					"EventBridge would accept and silently drop every event sent to it", broker.TopicPath(b.cfg, bus), err, bus)
			}
			return fmt.Errorf("%s: %w", broker.TopicPath(b.cfg, bus), awsconf.Hint(err, regionPath))
		}
	}
	return nil
}
