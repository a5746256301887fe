package sqs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awsconf"
	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/configs"
)

// BrokerName is the Amazon SQS broker's name (brokers.sqs).
const BrokerName = "sqs"

// What SQS itself does with time, when emitd does not set it.
const (
	// DefaultVisibilityTimeout is a queue's visibility timeout when it is
	// created without one.
	DefaultVisibilityTimeout = 30 * time.Second
	// DeduplicationInterval is how long a FIFO queue drops a message sent
	// again with the same deduplication id.
	DeduplicationInterval = 5 * time.Minute
)

// regionPath is the setting an AWS region error points at.
const regionPath = "brokers.sqs.region"

func init() {
	broker.Register(broker.Spec{Name: BrokerName, Commands: true, Events: true,
		NewSection: func() configs.BrokerSection { return new(Section) }, Open: open})
}

// Section (brokers.sqs) is Amazon SQS: each topic (commands, DLQ, results,
// or a bus) is a queue, given by name or by URL.
type Section struct {
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

// SectionOf is cfg's brokers.sqs, nil when there is none.
func SectionOf(cfg *configs.Config) *Section {
	s, _ := cfg.Brokers.Section(BrokerName).(*Section)
	return s
}

// AdapterConfig is the adapter's Config for the section.
func (q *Section) AdapterConfig(logger watermill.LoggerAdapter) Config {
	return Config{
		Region:            q.Region,
		Endpoint:          q.Endpoint,
		CreateIfMissing:   q.CreateIfMissing,
		FIFO:              q.FIFO,
		VisibilityTimeout: q.VisibilityTimeout,
		ReceiveWaitTime:   q.ReceiveWaitTime,
		ConsumeWorkers:    q.ConsumeWorkers,
		Logger:            logger,
	}
}

// Defaults implements configs.BrokerSection: SQS's own defaults apply to
// what is left out.
func (q *Section) Defaults(*configs.Config) {}

var (
	// AWSBaseName is what SQS queue and SNS topic names are made of (before
	// .fifo).
	AWSBaseName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	sqsQueueURL = regexp.MustCompile(`^https?://[^/\s]+/\d{12}/[A-Za-z0-9_-]+(\.fifo)?$`)
)

// Validate implements configs.BrokerSection.
func (q *Section) Validate(c *configs.Config, add func(string, string, ...any)) {
	awsconf.ValidateRegionEndpoint("brokers.sqs", q.Region, q.Endpoint, add)
	for _, t := range configs.TopicsOn(c, BrokerName) {
		name := t.Name
		if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
			if !sqsQueueURL.MatchString(name) {
				add(t.Path, "%q is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", name)
				continue
			}
			name = name[strings.LastIndex(name, "/")+1:]
		}
		base, fifo := strings.CutSuffix(name, FIFOSuffix)
		if !AWSBaseName.MatchString(base) || len(name) > 80 {
			add(t.Path, "%q is not a valid SQS queue name: up to 80 letters, digits, '-' and '_' (FIFO queues end in .fifo)", t.Name)
		} else if q.FIFO && !fifo {
			add(t.Path, "%q: brokers.sqs.fifo is true, so every queue must be a FIFO queue, whose name ends in .fifo", t.Name)
		}
	}
	if v := q.VisibilityTimeout; v < 0 || v > 12*time.Hour || v%time.Second != 0 {
		add("brokers.sqs.visibilityTimeout", "must be whole seconds between 0s and 12h (SQS's range), got %s", v)
	} // its relation to the retry budget: see RedeliveryDeadline
	if w := q.ReceiveWaitTime; w != 0 && (w < time.Second || w > 20*time.Second) {
		add("brokers.sqs.receiveWaitTime", "must be between 1s and 20s (SQS's long-poll range), got %s", w)
	}
	if q.ConsumeWorkers < 0 {
		add("brokers.sqs.consumeWorkers", "must be 0 (default 1) or more, got %d", q.ConsumeWorkers)
	}
}

// RedeliveryDeadline implements configs.RedeliveryDeadliner: a received
// command comes back when its visibility timeout ends.
func (q *Section) RedeliveryDeadline() (time.Duration, string) {
	if q.VisibilityTimeout > 0 {
		return q.VisibilityTimeout, "brokers.sqs.visibilityTimeout"
	}
	return DefaultVisibilityTimeout, "the SQS queue's default visibility timeout"
}

// DuplicateWindow implements configs.DuplicateWindower.
func (q *Section) DuplicateWindow() (time.Duration, string) {
	return DeduplicationInterval, "the SQS FIFO deduplication interval"
}

// CloudEvents implements configs.CloudEventsLimiter: SQS has no CloudEvents
// binding with headers.
func (q *Section) CloudEvents() (string, bool) { return "", false }

type sqsBroker struct {
	cfg  *configs.Config
	qcfg Config
	pub  *Publisher
}

func open(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (broker.Broker, error) {
	qcfg := SectionOf(cfg).AdapterConfig(logger)
	pub, err := NewPublisher(ctx, qcfg)
	if err != nil {
		return nil, awsconf.Hint(err, regionPath)
	}
	return &sqsBroker{cfg: cfg, qcfg: qcfg, pub: pub}, nil
}

func (b *sqsBroker) Name() string                 { return BrokerName }
func (b *sqsBroker) Publisher() message.Publisher { return b.pub }
func (b *sqsBroker) Close() error                 { return b.pub.Close() }

func (b *sqsBroker) Ping(ctx context.Context, topic string) error { return b.pub.Ping(ctx, topic) }

func (b *sqsBroker) QueueDepth(ctx context.Context, topic, group string) (int64, error) {
	return b.pub.QueueDepth(ctx, topic, group)
}

// Subscriber reads queues. SQS has no consumer groups: every receiver of a
// queue competes for its messages, so the group is ignored, and a reader
// without group (tail) is refused the queue the daemon consumes.
func (b *sqsBroker) Subscriber(opts broker.SubscribeOptions) (message.Subscriber, error) {
	qcfg := b.qcfg
	qcfg.MaxInFlight = opts.MaxInFlight
	sub, err := NewSubscriber(context.Background(), qcfg)
	if err != nil {
		return nil, awsconf.Hint(err, regionPath)
	}
	if opts.Group != "" {
		return sub, nil
	}
	return broker.Reader(sqsReader{Subscriber: sub, cfg: b.cfg, consume: opts.Consume}, nil, BrokerName, b.qcfg.Logger)
}

// ErrCommandsQueue: a reader without group asked for the commands queue.
var ErrCommandsQueue = errors.New("SQS cannot read a queue without taking its messages away: " +
	"every receive hides the message from the daemon, and a reader that deletes it loses the command")

// sqsReader refuses the commands queue, which the daemon consumes, and any
// other queue unless the reader agreed to take what it reads (Consume): the
// results and event queues have readers of their own (senders, consumers).
type sqsReader struct {
	*Subscriber
	cfg     *configs.Config
	consume bool
}

func (r sqsReader) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if r.cfg.Commands.Broker == BrokerName && SameQueue(topic, r.cfg.Commands.DLQTopic) {
		return nil, fmt.Errorf("%w. Queue %q (commands.dlqTopic) holds the poison queue: read it with `emitd dlq list`, "+
			"which keeps every dead letter", ErrCommandsQueue, topic)
	}
	if r.cfg.Commands.Broker == BrokerName && SameQueue(topic, r.cfg.Commands.Topic) {
		return nil, fmt.Errorf("%w. Queue %q (commands.topic) belongs to the daemon: see its outcomes with `emitd tail --results`, "+
			"or its depth with `aws sqs get-queue-attributes --attribute-names ApproximateNumberOfMessages`", ErrCommandsQueue, topic)
	}
	if !r.consume {
		return nil, fmt.Errorf("%w. Reading %q would delete what it shows from its other readers; "+
			"`emitd tail --consume` does it anyway (e.g. on a queue of your own)", ErrCommandsQueue, topic)
	}
	return r.Subscriber.Subscribe(ctx, topic)
}

// SameQueue compares queue names, a URL standing for its last segment.
func SameQueue(a, b string) bool {
	last := func(s string) string { return s[strings.LastIndex(s, "/")+1:] }
	return last(a) == last(b)
}

// EnsureTopics resolves every queue (GetQueueUrl) and creates the missing
// ones when brokers.sqs.createIfMissing is set, with the configured
// visibility timeout and FIFO for .fifo names.
func (b *sqsBroker) EnsureTopics(ctx context.Context, topics ...string) error {
	sub, err := NewSubscriber(ctx, b.qcfg)
	if err != nil {
		return awsconf.Hint(err, regionPath)
	}
	defer sub.Close()
	var client *awssqs.Client
	if !b.qcfg.CreateIfMissing {
		awsCfg, err := awsconf.Load(ctx, b.qcfg.Region, b.qcfg.AWSConfig)
		if err != nil {
			return awsconf.Hint(err, regionPath)
		}
		client = awssqs.NewFromConfig(awsCfg, func(o *awssqs.Options) {
			if b.qcfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(b.qcfg.Endpoint)
			}
		})
	}
	for _, topic := range topics {
		path := broker.TopicPath(b.cfg, topic)
		// watermill-aws turns SQS's QueueDoesNotExist into an error of its
		// own that only its text tells apart, so ask SQS first and match the
		// SDK's type. A queue URL is taken as it is, as the adapter does.
		if client != nil && !IsQueueURL(topic) {
			_, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
			if missing := (*sqstypes.QueueDoesNotExist)(nil); errors.As(err, &missing) {
				return fmt.Errorf("SQS queue %q (%s) does not exist: create it, or set brokers.sqs.createIfMissing: true", topic, path)
			}
			if err != nil {
				return fmt.Errorf("SQS queue %q (%s): %w", topic, path, awsconf.Hint(err, regionPath))
			}
		}
		if err := sub.SubscribeInitializeWithContext(ctx, topic); err != nil {
			return fmt.Errorf("SQS queue %q (%s): %w", topic, path, awsconf.Hint(err, regionPath))
		}
	}
	return nil
}
