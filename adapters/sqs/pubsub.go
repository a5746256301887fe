package sqs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	wsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/emitd/emitd/publisher"
)

// Publisher publishes to SQS queues. Topic: a queue name or a queue URL.
type Publisher struct {
	inner *wsqs.Publisher
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher builds a publisher. The context only bounds loading the AWS
// configuration (credentials are resolved lazily, on first use).
func NewPublisher(ctx context.Context, cfg Config) (*Publisher, error) {
	pc, err := cfg.PublisherConfig(ctx)
	if err != nil {
		return nil, err
	}
	inner, err := wsqs.NewPublisher(pc, cfg.logger())
	if err != nil {
		return nil, fmt.Errorf("sqs publisher: %w", err)
	}
	return &Publisher{inner: inner}, nil
}

// PublisherConfig is the watermill-aws configuration NewPublisher uses.
func (c Config) PublisherConfig(ctx context.Context) (wsqs.PublisherConfig, error) {
	awsCfg, optFns, err := c.load(ctx)
	if err != nil {
		return wsqs.PublisherConfig{}, err
	}
	return wsqs.PublisherConfig{
		AWSConfig:                   awsCfg,
		OptFns:                      optFns,
		CreateQueueConfig:           c.queueAttributes(),
		DoNotCreateQueueIfNotExists: !c.CreateIfMissing,
		QueueUrlResolver:            newResolver(c.FIFO),
		GenerateSendMessageInput:    sendMessageInput,
		GenerateCreateQueueInput:    createQueueInput,
		Marshaler:                   Marshaler{},
	}, nil
}

// Publish sends the messages in order, one SendMessage each. If any fails it
// returns a *publisher.BatchError: a message SQS refused for good (invalid
// contents or attributes) is Refused and the rest still go; on any other
// failure that message and all after it are Pending (so a FIFO slot is never
// sent out of order).
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	return PublishEach(topic, messages, p.inner.Publish, IsPermanent)
}

// Close releases nothing: the SDK client holds no resources to free.
func (p *Publisher) Close() error { return p.inner.Close() }

// PublishEach publishes messages one at a time through publish and reports
// the outcome as a *publisher.BatchError (nil when all were delivered).
// Shared with the SNS adapter.
func PublishEach(topic string, messages []*message.Message, publish func(string, ...*message.Message) error, permanent func(error) bool) error {
	var be *publisher.BatchError
	var first error
	for i, msg := range messages {
		err := publish(topic, msg)
		if err == nil {
			continue
		}
		if be == nil {
			be = &publisher.BatchError{Refused: map[string]error{}, Pending: map[string]error{}}
			first = err
		}
		if permanent(err) {
			be.Refused[msg.UUID] = err
			continue
		}
		be.Pending[msg.UUID] = err
		for _, rest := range messages[i+1:] {
			be.Pending[rest.UUID] = fmt.Errorf("not sent: an earlier message failed: %w", err)
		}
		break
	}
	if be == nil {
		return nil
	}
	// Wrapped so that logs show why; publisher.AsBatchError still finds it.
	return fmt.Errorf("%s: %w (first failure: %v)", topic, be, first)
}

// IsPermanent says whether SQS refused a message for good: sending the same
// message again cannot succeed.
func IsPermanent(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	// The JSON protocol's codes, or the query protocol's ones that SQS (and
	// fauxqs) may send for compatibility: AWS.SimpleQueueService.<code>.
	switch strings.TrimPrefix(ae.ErrorCode(), "AWS.SimpleQueueService.") {
	case "InvalidMessageContents", "InvalidAttributeName", "InvalidAttributeValue",
		"InvalidParameterValue", "MissingParameter", "UnsupportedOperation":
		return true
	}
	return false
}

// Subscriber receives from SQS queues. Topic: a queue name or a queue URL.
// Each Subscribe runs Config.ConsumeWorkers receive loops; a message is
// deleted on Ack; after a Nack it is left alone and SQS delivers it again when
// its visibility timeout ends.
type Subscriber struct {
	*wsqs.Subscriber
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber builds a subscriber.
func NewSubscriber(ctx context.Context, cfg Config) (*Subscriber, error) {
	sc, err := cfg.SubscriberConfig(ctx)
	if err != nil {
		return nil, err
	}
	inner, err := wsqs.NewSubscriber(sc, cfg.logger())
	if err != nil {
		return nil, fmt.Errorf("sqs subscriber: %w", err)
	}
	return &Subscriber{Subscriber: inner}, nil
}

// SubscriberConfig is the watermill-aws configuration NewSubscriber uses (the
// SNS adapter builds its queue side from it).
//
// Receive is watermill-aws's default, one message per ReceiveMessage: with
// MaxNumberOfMessages 10 its subscriber was seen to lose receives ("use of
// closed network connection") against fauxqs, each hiding the messages for a
// visibility timeout; see docs/TESTING-BROKERS.md.
func (c Config) SubscriberConfig(ctx context.Context) (wsqs.SubscriberConfig, error) {
	awsCfg, optFns, err := c.load(ctx)
	if err != nil {
		return wsqs.SubscriberConfig{}, err
	}
	wait := c.ReceiveWaitTime
	if wait <= 0 || wait > 20*time.Second {
		wait = 20 * time.Second
	}
	waitSeconds := int32(wait.Round(time.Second) / time.Second)
	if waitSeconds < 1 {
		waitSeconds = 1
	}
	return wsqs.SubscriberConfig{
		AWSConfig:                   awsCfg,
		OptFns:                      optFns,
		DoNotCreateQueueIfNotExists: !c.CreateIfMissing,
		QueueUrlResolver:            newResolver(c.FIFO),
		QueueConfigAttributes:       c.queueAttributes(),
		GenerateCreateQueueInput:    createQueueInput,
		GenerateReceiveMessageInput: func(_ context.Context, url wsqs.QueueURL) (*sqs.ReceiveMessageInput, error) {
			return &sqs.ReceiveMessageInput{
				QueueUrl:              aws.String(string(url)),
				MessageAttributeNames: []string{"All"},
				WaitTimeSeconds:       waitSeconds,
				MaxNumberOfMessages:   1,
			}, nil
		},
		ConsumeWorkers: c.ConsumeWorkers,
		Unmarshaler:    Marshaler{},
	}, nil
}
