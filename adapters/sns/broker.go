package sns

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/emitd/emitd/adapters/awsconf"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/publisher"
)

// BrokerName is the Amazon SNS broker's name (brokers.sns), for events.
const BrokerName = "sns"

// DefaultTailQueueSuffix ends the name of the queue `emitd tail` subscribes
// to an SNS bus.
const DefaultTailQueueSuffix = "-emitd-tail"

const regionPath = "brokers.sns.region"

func init() {
	broker.Register(broker.Spec{Name: BrokerName, Events: true,
		NewSection: func() configs.BrokerSection { return new(Section) }, Open: open,
		BusDeadLetters: publisher.FromSubscription})
}

// Section (brokers.sns) is Amazon SNS, for events: each bus is a topic,
// given by name or by ARN.
type Section struct {
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

// SectionOf is cfg's brokers.sns, nil when there is none.
func SectionOf(cfg *configs.Config) *Section {
	s, _ := cfg.Brokers.Section(BrokerName).(*Section)
	return s
}

// Defaults implements configs.BrokerSection (TailQueueSuffix is defaulted
// where it is used, so the file's value stays as written).
func (s *Section) Defaults(*configs.Config) {}

var (
	snsTopicARN = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$`)
	accountID   = regexp.MustCompile(`^\d{12}$`)
)

// Validate implements configs.BrokerSection.
func (s *Section) Validate(c *configs.Config, add func(string, string, ...any)) {
	awsconf.ValidateRegionEndpoint("brokers.sns", s.Region, s.Endpoint, add)
	for _, t := range configs.TopicsOn(c, BrokerName) {
		name := t.Name
		if strings.HasPrefix(name, "arn:") {
			if !snsTopicARN.MatchString(name) {
				add(t.Path, "%q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", name)
				continue
			}
			name = name[strings.LastIndex(name, ":")+1:]
		}
		base, fifo := strings.CutSuffix(name, sqs.FIFOSuffix)
		if !sqs.AWSBaseName.MatchString(base) || len(name) > 256 {
			add(t.Path, "%q is not a valid SNS topic name: up to 256 letters, digits, '-' and '_' (FIFO topics end in .fifo)", t.Name)
		} else if s.FIFO && !fifo {
			add(t.Path, "%q: brokers.sns.fifo is true, so every bus must be a FIFO topic, whose name ends in .fifo", t.Name)
		}
	}
	if s.AccountID != "" && !accountID.MatchString(s.AccountID) {
		add("brokers.sns.accountId", "%q: want the 12-digit AWS account id", s.AccountID)
	}
	if s.TailQueueSuffix != "" && !sqs.AWSBaseName.MatchString(s.TailQueueSuffix) {
		add("brokers.sns.tailQueueSuffix", "%q: only letters, digits, '-' and '_' (it ends an SQS queue name)", s.TailQueueSuffix)
	}
}

// CloudEvents implements configs.CloudEventsLimiter: SNS has no CloudEvents
// binding with headers.
func (s *Section) CloudEvents() (string, bool) { return "", false }

type snsBroker struct {
	cfg    *configs.Config
	scfg   Config
	pub    *Publisher
	logger watermill.LoggerAdapter
}

func open(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
	s := SectionOf(cfg)
	scfg := Config{Region: s.Region, Endpoint: s.Endpoint, CreateIfMissing: s.CreateIfMissing, FIFO: s.FIFO,
		AccountID: s.AccountID, Logger: logger}
	pub, err := NewPublisher(ctx, scfg)
	if err != nil {
		return nil, awsconf.Hint(err, regionPath)
	}
	return &snsBroker{cfg: cfg, scfg: scfg, pub: pub, logger: logger}, nil
}

func (b *snsBroker) Name() string                 { return BrokerName }
func (b *snsBroker) Publisher() message.Publisher { return b.pub }
func (b *snsBroker) Close() error                 { return b.pub.Close() }

func (b *snsBroker) Ping(ctx context.Context, topic string) error { return b.pub.Ping(ctx, topic) }

// Subscriber subscribes an SQS queue of its own to each bus topic (raw
// delivery, so the queue holds the entry JSON) and reads it: for a reader
// without group, <topic><tailQueueSuffix>, created on first use and kept, so
// a later tail sees what arrived in between; for a group, <topic>-<group>.
// The queue lives in brokers.sqs's region and endpoint when that section
// exists, else in SNS's.
func (b *snsBroker) Subscriber(opts broker.SubscribeOptions) (message.Subscriber, error) {
	suffix := DefaultTailQueueSuffix
	if s := SectionOf(b.cfg).TailQueueSuffix; s != "" {
		suffix = s
	}
	if opts.Group != "" {
		suffix = "-" + opts.Group
	}
	queue := sqs.Config{CreateIfMissing: true, Logger: b.logger}
	if q := sqs.SectionOf(b.cfg); q != nil {
		queue = q.AdapterConfig(b.logger)
		queue.CreateIfMissing = true // the tail queue is emitd's own
	}
	sub, err := NewSubscriber(context.Background(), SubscriberConfig{
		Config: b.scfg,
		Queue:  queue,
		QueueName: func(topic string) string {
			base, fifo := strings.CutSuffix(topic, sqs.FIFOSuffix)
			name := base + suffix
			if len(name) > 75 { // SQS names: at most 80 characters with .fifo
				name = name[:75]
			}
			if fifo {
				name += sqs.FIFOSuffix
			}
			return name
		},
	})
	if err != nil {
		return nil, awsconf.Hint(err, regionPath)
	}
	if opts.Group != "" {
		return sub, nil
	}
	return broker.Reader(sub, nil, BrokerName, b.logger)
}

// EnsureTopics creates the bus topics (brokers.sns.createIfMissing) or checks
// that they exist: SNS refuses a publish to a missing topic, and the daemon
// had better say so at start than at the first event.
func (b *snsBroker) EnsureTopics(ctx context.Context, topics ...string) error {
	if b.scfg.CreateIfMissing {
		for _, topic := range topics {
			if _, err := b.pub.CreateTopic(ctx, topic); err != nil {
				return fmt.Errorf("SNS topic %q (%s): %w", topic, broker.TopicPath(b.cfg, topic), awsconf.Hint(err, regionPath))
			}
		}
		return nil
	}
	awsCfg, err := awsconf.Load(ctx, b.scfg.Region, nil)
	if err != nil {
		return err
	}
	client := awssns.NewFromConfig(awsCfg, func(o *awssns.Options) {
		if b.scfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(b.scfg.Endpoint)
		}
	})
	for _, topic := range topics {
		if err := checkTopic(ctx, client, topic); err != nil {
			return fmt.Errorf("SNS topic %q (%s): %w", topic, broker.TopicPath(b.cfg, topic), awsconf.Hint(err, regionPath))
		}
	}
	return nil
}

var errNoSuchTopic = errors.New("does not exist: create it, or set brokers.sns.createIfMissing: true")

func checkTopic(ctx context.Context, client *awssns.Client, topic string) error {
	if IsTopicARN(topic) {
		if _, err := client.GetTopicAttributes(ctx, &awssns.GetTopicAttributesInput{TopicArn: aws.String(topic)}); err != nil {
			if missing := (*snstypes.NotFoundException)(nil); errors.As(err, &missing) {
				return errNoSuchTopic
			}
			return err
		}
		return nil
	}
	p := awssns.NewListTopicsPaginator(client, &awssns.ListTopicsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list topics (give the topic's ARN, or brokers.sns.accountId, if emitd may not list): %w", err)
		}
		for _, t := range page.Topics {
			if strings.HasSuffix(aws.ToString(t.TopicArn), ":"+topic) {
				return nil
			}
		}
	}
	return errNoSuchTopic
}
