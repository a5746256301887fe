package sns

import (
	"context"
	"fmt"
	"strconv"

	wsns "github.com/ThreeDotsLabs/watermill-aws/sns"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/emitd/emitd/adapters/sqs"
)

// Publisher publishes to SNS topics. Topic: a topic name or a topic ARN.
type Publisher struct {
	c     *client
	inner *wsns.Publisher
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher builds a publisher; ctx only bounds loading the AWS config.
func NewPublisher(ctx context.Context, cfg Config) (*Publisher, error) {
	c, err := newClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	inner, err := wsns.NewPublisher(wsns.PublisherConfig{
		AWSConfig:                   c.awsCfg,
		OptFns:                      c.optFns,
		DoNotCreateTopicIfNotExists: !cfg.CreateIfMissing,
		TopicResolver:               c.resolver,
		GenerateCreateTopicInput:    createTopicInput,
		Marshaler:                   Marshaler{},
	}, c.logger())
	if err != nil {
		return nil, fmt.Errorf("sns publisher: %w", err)
	}
	return &Publisher{c: c, inner: inner}, nil
}

// Publish sends the messages in order, in PublishBatch calls of up to ten
// (watermill-aws publishes one call per message); failures are reported as
// the sqs adapter's are (sqs.PublishBatches): refused for good through the
// sender's fault, pending otherwise, in order.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	if len(messages) == 0 {
		return nil
	}
	ctx := messages[0].Context()
	arn, err := p.c.resolver.ResolveTopic(ctx, topic)
	if err != nil {
		return err
	}
	return sqs.PublishBatches(topic, messages, IsPermanent, func(chunk []*message.Message) (map[int]sqs.EntryFailure, error) {
		entries := make([]types.PublishBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			in := Marshaler{}.Marshal(arn, m)
			entries[i] = types.PublishBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), Message: in.Message,
				MessageAttributes: in.MessageAttributes, MessageGroupId: in.MessageGroupId, MessageDeduplicationId: in.MessageDeduplicationId}
		}
		out, err := p.c.sns.PublishBatch(ctx, &awssns.PublishBatchInput{TopicArn: aws.String(string(arn)), PublishBatchRequestEntries: entries})
		if err != nil {
			return nil, err
		}
		failed := map[int]sqs.EntryFailure{}
		for _, f := range out.Failed {
			i, _ := strconv.Atoi(aws.ToString(f.Id))
			failed[i] = sqs.EntryFailure{Err: fmt.Errorf("sns: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message)), SenderFault: f.SenderFault}
		}
		return failed, nil
	})
}

// CreateTopic creates the topic (idempotent) and returns its ARN.
func (p *Publisher) CreateTopic(ctx context.Context, topic string) (string, error) {
	if !IsTopicARN(topic) {
		arn, err := p.c.createTopic(ctx, topic)
		return string(arn), err
	}
	return p.inner.CreateTopic(ctx, topic)
}

// Close releases nothing.
func (p *Publisher) Close() error { return p.inner.Close() }

// SubscriberConfig configures the subscriber: SNS side, queue side, and
// which queue each topic is delivered to.
type SubscriberConfig struct {
	Config
	// Queue configures the SQS side. Region, Endpoint, AWSConfig and Logger
	// left empty are taken from Config. Set Queue.CreateIfMissing to let the
	// subscriber create the queue.
	Queue sqs.Config
	// QueueName names the queue subscribed to a topic (given its name).
	// Default: the topic's own name (a FIFO topic needs a .fifo queue).
	QueueName func(topicName string) string
}

// Subscriber subscribes an SQS queue to each topic (raw message delivery;
// the queue's access policy lets the topic send) and consumes that queue.
type Subscriber struct {
	c     *client
	inner *wsns.Subscriber
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber builds a subscriber.
func NewSubscriber(ctx context.Context, cfg SubscriberConfig) (*Subscriber, error) {
	c, err := newClient(ctx, cfg.Config)
	if err != nil {
		return nil, err
	}
	q := cfg.Queue
	if q.Region == "" {
		q.Region = cfg.Region
	}
	if q.Endpoint == "" {
		q.Endpoint = cfg.Endpoint
	}
	if q.AWSConfig == nil {
		q.AWSConfig = cfg.AWSConfig
	}
	if q.Logger == nil {
		q.Logger = cfg.Logger
	}
	sqsCfg, err := q.SubscriberConfig(ctx)
	if err != nil {
		return nil, err
	}
	name := cfg.QueueName
	if name == nil {
		name = func(topic string) string { return topic }
	}
	inner, err := wsns.NewSubscriber(wsns.SubscriberConfig{
		AWSConfig:     c.awsCfg,
		OptFns:        c.optFns,
		TopicResolver: c.resolver,
		GenerateSqsQueueName: func(_ context.Context, arn wsns.TopicArn) (string, error) {
			topic, err := wsns.ExtractTopicNameFromTopicArn(arn)
			if err != nil {
				return "", err
			}
			return name(string(topic)), nil
		},
		// GenerateSubscribeInput: watermill-aws's default, RawMessageDelivery=true.
	}, sqsCfg, c.logger())
	if err != nil {
		return nil, fmt.Errorf("sns subscriber: %w", err)
	}
	return &Subscriber{c: c, inner: inner}, nil
}

// Subscribe creates the topic first (CreateIfMissing), then the queue and
// the subscription, then consumes the queue.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if _, err := s.c.ensureTopic(ctx, topic); err != nil {
		return nil, err
	}
	return s.inner.Subscribe(ctx, topic) // subscribes the queue, then consumes
}

// SubscribeInitialize sets up topic, queue and subscription without consuming.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	return s.SubscribeInitializeWithContext(context.Background(), topic)
}

// SubscribeInitializeWithContext is SubscribeInitialize with a context.
func (s *Subscriber) SubscribeInitializeWithContext(ctx context.Context, topic string) error {
	if _, err := s.c.ensureTopic(ctx, topic); err != nil {
		return err
	}
	return s.inner.SubscribeInitializeWithContext(ctx, topic)
}

// Close stops consuming; subscriptions and queues stay.
func (s *Subscriber) Close() error { return s.inner.Close() }
