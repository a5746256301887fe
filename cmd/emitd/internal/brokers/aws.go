package brokers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/configs"
)

// ---- SQS: commands in, DLQ, results, events out ------------------------------

type sqsBroker struct {
	cfg  *configs.Config
	qcfg sqs.Config
	pub  *sqs.Publisher
}

func sqsConfig(q *configs.SQSConfig, logger watermill.LoggerAdapter) sqs.Config {
	return sqs.Config{
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

func openSQS(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	qcfg := sqsConfig(cfg.Brokers.SQS, logger)
	pub, err := sqs.NewPublisher(ctx, qcfg)
	if err != nil {
		return nil, awsHint(err, "brokers.sqs.region")
	}
	return &sqsBroker{cfg: cfg, qcfg: qcfg, pub: pub}, nil
}

func (b *sqsBroker) Name() string                 { return configs.BrokerSQS }
func (b *sqsBroker) Publisher() message.Publisher { return b.pub }
func (b *sqsBroker) Close() error                 { return b.pub.Close() }

func (b *sqsBroker) Ping(ctx context.Context, topic string) error { return b.pub.Ping(ctx, topic) }

func (b *sqsBroker) QueueDepth(ctx context.Context, topic, group string) (int64, error) {
	return b.pub.QueueDepth(ctx, topic, group)
}

// Subscriber reads queues. SQS has no consumer groups: every receiver of a
// queue competes for its messages, so the group is ignored, and a reader
// without group (tail) is refused the queue the daemon consumes.
func (b *sqsBroker) Subscriber(opts SubscribeOptions) (message.Subscriber, error) {
	qcfg := b.qcfg
	qcfg.MaxInFlight = opts.MaxInFlight
	sub, err := sqs.NewSubscriber(context.Background(), qcfg)
	if err != nil {
		return nil, awsHint(err, "brokers.sqs.region")
	}
	if opts.Group != "" {
		return sub, nil
	}
	return reader(sqsReader{Subscriber: sub, cfg: b.cfg, consume: opts.Consume}, nil, configs.BrokerSQS, b.qcfg.Logger)
}

// ErrSQSCommandsQueue: a reader without group asked for the commands queue.
var ErrSQSCommandsQueue = errors.New("SQS cannot read a queue without taking its messages away: " +
	"every receive hides the message from the daemon, and a reader that deletes it loses the command")

// sqsReader refuses the commands queue, which the daemon consumes, and any
// other queue unless the reader agreed to take what it reads (Consume): the
// results and event queues have readers of their own (senders, consumers).
type sqsReader struct {
	*sqs.Subscriber
	cfg     *configs.Config
	consume bool
}

func (r sqsReader) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if r.cfg.Commands.Broker == configs.BrokerSQS && sameQueue(topic, r.cfg.Commands.DLQTopic) {
		return nil, fmt.Errorf("%w. Queue %q (commands.dlqTopic) holds the poison queue: read it with `emitd dlq list`, "+
			"which keeps every dead letter", ErrSQSCommandsQueue, topic)
	}
	if r.cfg.Commands.Broker == configs.BrokerSQS && sameQueue(topic, r.cfg.Commands.Topic) {
		return nil, fmt.Errorf("%w. Queue %q (commands.topic) belongs to the daemon: see its outcomes with `emitd tail --results`, "+
			"or its depth with `aws sqs get-queue-attributes --attribute-names ApproximateNumberOfMessages`", ErrSQSCommandsQueue, topic)
	}
	if !r.consume {
		return nil, fmt.Errorf("%w. Reading %q would delete what it shows from its other readers; "+
			"`emitd tail --consume` does it anyway (e.g. on a queue of your own)", ErrSQSCommandsQueue, topic)
	}
	return r.Subscriber.Subscribe(ctx, topic)
}

// sameQueue compares queue names, a URL standing for its last segment.
func sameQueue(a, b string) bool {
	last := func(s string) string { return s[strings.LastIndex(s, "/")+1:] }
	return last(a) == last(b)
}

// EnsureTopics resolves every queue (GetQueueUrl) and creates the missing
// ones when brokers.sqs.createIfMissing is set, with the configured
// visibility timeout and FIFO for .fifo names.
func (b *sqsBroker) EnsureTopics(ctx context.Context, topics ...string) error {
	sub, err := sqs.NewSubscriber(ctx, b.qcfg)
	if err != nil {
		return awsHint(err, "brokers.sqs.region")
	}
	defer sub.Close()
	var client *awssqs.Client
	if !b.qcfg.CreateIfMissing {
		awsCfg, err := sqs.LoadAWSConfig(ctx, b.qcfg.Region, b.qcfg.AWSConfig)
		if err != nil {
			return awsHint(err, "brokers.sqs.region")
		}
		client = awssqs.NewFromConfig(awsCfg, func(o *awssqs.Options) {
			if b.qcfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(b.qcfg.Endpoint)
			}
		})
	}
	for _, topic := range topics {
		// watermill-aws turns SQS's QueueDoesNotExist into an error of its
		// own that only its text tells apart, so ask SQS first and match the
		// SDK's type. A queue URL is taken as it is, as the adapter does.
		if client != nil && !sqs.IsQueueURL(topic) {
			_, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
			if missing := (*sqstypes.QueueDoesNotExist)(nil); errors.As(err, &missing) {
				return fmt.Errorf("SQS queue %q (%s) does not exist: create it, or set brokers.sqs.createIfMissing: true", topic, topicPath(b.cfg, topic))
			}
			if err != nil {
				return fmt.Errorf("SQS queue %q (%s): %w", topic, topicPath(b.cfg, topic), awsHint(err, "brokers.sqs.region"))
			}
		}
		if err := sub.SubscribeInitializeWithContext(ctx, topic); err != nil {
			return fmt.Errorf("SQS queue %q (%s): %w", topic, topicPath(b.cfg, topic), awsHint(err, "brokers.sqs.region"))
		}
	}
	return nil
}

// ---- SNS: events out -----------------------------------------------------------

type snsBroker struct {
	cfg    *configs.Config
	scfg   sns.Config
	pub    *sns.Publisher
	logger watermill.LoggerAdapter
}

// DefaultTailQueueSuffix ends the name of the queue `emitd tail` subscribes
// to an SNS bus.
const DefaultTailQueueSuffix = "-emitd-tail"

func openSNS(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	s := cfg.Brokers.SNS
	scfg := sns.Config{Region: s.Region, Endpoint: s.Endpoint, CreateIfMissing: s.CreateIfMissing, FIFO: s.FIFO,
		AccountID: s.AccountID, Logger: logger}
	pub, err := sns.NewPublisher(ctx, scfg)
	if err != nil {
		return nil, awsHint(err, "brokers.sns.region")
	}
	return &snsBroker{cfg: cfg, scfg: scfg, pub: pub, logger: logger}, nil
}

func (b *snsBroker) Name() string                 { return configs.BrokerSNS }
func (b *snsBroker) Publisher() message.Publisher { return b.pub }
func (b *snsBroker) Close() error                 { return b.pub.Close() }

func (b *snsBroker) Ping(ctx context.Context, topic string) error { return b.pub.Ping(ctx, topic) }

// Subscriber subscribes an SQS queue of its own to each bus topic (raw
// delivery, so the queue holds the entry JSON) and reads it: for a reader
// without group, <topic><tailQueueSuffix>, created on first use and kept, so
// a later tail sees what arrived in between; for a group, <topic>-<group>.
// The queue lives in brokers.sqs's region and endpoint when that section
// exists, else in SNS's.
func (b *snsBroker) Subscriber(opts SubscribeOptions) (message.Subscriber, error) {
	suffix := DefaultTailQueueSuffix
	if s := b.cfg.Brokers.SNS.TailQueueSuffix; s != "" {
		suffix = s
	}
	if opts.Group != "" {
		suffix = "-" + opts.Group
	}
	queue := sqs.Config{CreateIfMissing: true, Logger: b.logger}
	if q := b.cfg.Brokers.SQS; q != nil {
		queue = sqsConfig(q, b.logger)
		queue.CreateIfMissing = true // the tail queue is emitd's own
	}
	sub, err := sns.NewSubscriber(context.Background(), sns.SubscriberConfig{
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
		return nil, awsHint(err, "brokers.sns.region")
	}
	if opts.Group != "" {
		return sub, nil
	}
	return reader(sub, nil, configs.BrokerSNS, b.logger)
}

// EnsureTopics creates the bus topics (brokers.sns.createIfMissing) or checks
// that they exist: SNS refuses a publish to a missing topic, and the daemon
// had better say so at start than at the first event.
func (b *snsBroker) EnsureTopics(ctx context.Context, topics ...string) error {
	if b.scfg.CreateIfMissing {
		for _, topic := range topics {
			if _, err := b.pub.CreateTopic(ctx, topic); err != nil {
				return fmt.Errorf("SNS topic %q (%s): %w", topic, topicPath(b.cfg, topic), awsHint(err, "brokers.sns.region"))
			}
		}
		return nil
	}
	awsCfg, err := sqs.LoadAWSConfig(ctx, b.scfg.Region, nil)
	if err != nil {
		return err
	}
	client := awssns.NewFromConfig(awsCfg, func(o *awssns.Options) {
		if b.scfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(b.scfg.Endpoint)
		}
	})
	for _, topic := range topics {
		if err := checkSNSTopic(ctx, client, topic); err != nil {
			return fmt.Errorf("SNS topic %q (%s): %w", topic, topicPath(b.cfg, topic), awsHint(err, "brokers.sns.region"))
		}
	}
	return nil
}

var errNoSuchTopic = errors.New("does not exist: create it, or set brokers.sns.createIfMissing: true")

func checkSNSTopic(ctx context.Context, client *awssns.Client, topic string) error {
	if sns.IsTopicARN(topic) {
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

// ---- EventBridge: events out ---------------------------------------------------

type eventBridgeBroker struct {
	cfg *configs.Config
	pub *eventbridge.Publisher
}

func openEventBridge(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter) (Broker, error) {
	eb := cfg.Brokers.EventBridge
	pub, err := eventbridge.NewPublisher(ctx, eventbridge.Config{Region: eb.Region, Endpoint: eb.Endpoint,
		MaxEntryBytes: eb.MaxEntryBytes, MaxAttempts: eb.MaxAttempts}, logger)
	if err != nil {
		return nil, awsHint(err, "brokers.eventbridge.region")
	}
	return &eventBridgeBroker{cfg: cfg, pub: pub}, nil
}

func (b *eventBridgeBroker) Name() string                 { return configs.BrokerEventBridge }
func (b *eventBridgeBroker) Publisher() message.Publisher { return b.pub }
func (b *eventBridgeBroker) Close() error                 { return b.pub.Close() }

func (b *eventBridgeBroker) Ping(ctx context.Context, topic string) error {
	return b.pub.Ping(ctx, topic)
}

// Subscriber always fails: PutEvents is write-only.
func (b *eventBridgeBroker) Subscriber(SubscribeOptions) (message.Subscriber, error) {
	return nil, fmt.Errorf("events.broker is eventbridge: %w. Against the local test server, "+
		"`go run ./cmd/ebtest -bus %s -bus %s` prints every entry it accepts", eventbridge.ErrCannotTail,
		b.cfg.Events.DomainBus, b.cfg.Events.AnalyticsBus)
}

// EnsureTopics checks each bus exists (DescribeEventBus): EventBridge accepts
// events for a bus that does not exist and drops them without a word.
func (b *eventBridgeBroker) EnsureTopics(ctx context.Context, topics ...string) error {
	for _, bus := range topics {
		if err := b.pub.CheckBus(ctx, bus); err != nil {
			if missing := (*ebtypes.ResourceNotFoundException)(nil); errors.As(err, &missing) {
				return fmt.Errorf("%s: %w; create it (aws events create-event-bus --name %s) or fix the name: "+
					"EventBridge would accept and silently drop every event sent to it", topicPath(b.cfg, bus), err, bus)
			}
			return fmt.Errorf("%s: %w", topicPath(b.cfg, bus), awsHint(err, "brokers.eventbridge.region"))
		}
	}
	return nil
}

// awsHint adds what usually fixes an AWS SDK error to its message.
func awsHint(err error, regionPath string) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no AWS region"):
		return fmt.Errorf("%w (set %s, or AWS_REGION)", err, regionPath)
	case strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found"):
		return fmt.Errorf("%w (no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role)", err)
	}
	return err
}
