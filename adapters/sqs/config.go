// Package sqs is the Amazon SQS adapter: a Watermill publisher and subscriber
// (built on watermill-aws) where the Watermill topic is a queue name or a queue
// URL.
//
// On the wire a message is what SQS users expect: the body is the Watermill
// payload unchanged (for events the EventBridge entry JSON, for commands the
// command JSON); the metadata travels as message attributes (source,
// detail-type, event-id first, for native consumers), never more than SQS's
// 10: what does not fit is packed into one attribute and unpacked on receive,
// so metadata round-trips unchanged. On FIFO queues (names ending in .fifo)
// the message group is the slot id (per-slot order) and the deduplication id
// is the message UUID (the event id), so a relay's re-send within SQS's
// 5-minute window is dropped.
package sqs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/emitd/emitd/adapters/awsconf"
)

// FIFOSuffix ends the name of every FIFO queue (and FIFO SNS topic).
const FIFOSuffix = ".fifo"

// Config configures both the publisher and the subscriber.
type Config struct {
	// Region overrides the SDK's region (AWS_REGION, the profile).
	Region string
	// Endpoint overrides the SQS endpoint (e.g. http://127.0.0.1:4566). Empty:
	// the SDK decides (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, config file,
	// then the real service).
	Endpoint string
	// CreateIfMissing creates queues that do not exist, on publish and on
	// subscribe. Names ending in .fifo are created as FIFO queues.
	CreateIfMissing bool
	// FIFO requires every queue to be a FIFO queue: a topic whose queue name
	// does not end in .fifo is refused rather than silently unordered.
	// FIFO handling (group and deduplication ids) follows the .fifo suffix
	// either way, as SQS itself does.
	FIFO bool
	// VisibilityTimeout of queues this adapter creates: how long a received
	// message stays hidden; after a nack the message comes back when it ends.
	// Zero: SQS's default (30 s).
	VisibilityTimeout time.Duration
	// ConsumeWorkers is how many receive loops each Subscribe runs (default 1).
	ConsumeWorkers int
	// MaxInFlight bounds the messages a subscription has received and not
	// yet seen acknowledged (DefaultMaxInFlight when zero).
	MaxInFlight int
	// ReceiveWaitTime is the long-poll wait of each receive, at most 20 s
	// (default 20 s).
	ReceiveWaitTime time.Duration

	// AWSConfig, if set, is used as is instead of config.LoadDefaultConfig
	// (Region and Endpoint still override it).
	AWSConfig *aws.Config
	// Logger for watermill-aws; nil logs nothing.
	Logger watermill.LoggerAdapter
}

func (c Config) load(ctx context.Context) (aws.Config, []func(*sqs.Options), error) {
	awsCfg, err := awsconf.Load(ctx, c.Region, c.AWSConfig)
	if err != nil {
		return aws.Config{}, nil, err
	}
	if awsCfg.Region == "" {
		return aws.Config{}, nil, fmt.Errorf("sqs: %w: set Config.Region or AWS_REGION", awsconf.ErrNoRegion)
	}
	var optFns []func(*sqs.Options)
	if c.Endpoint != "" {
		endpoint := c.Endpoint
		optFns = append(optFns, func(o *sqs.Options) { o.BaseEndpoint = aws.String(endpoint) })
	}
	return awsCfg, optFns, nil
}

func (c Config) logger() watermill.LoggerAdapter {
	if c.Logger == nil {
		return watermill.NopLogger{}
	}
	return c.Logger
}

func (c Config) queueAttributes() wsqs.QueueConfigAttributes {
	var a wsqs.QueueConfigAttributes
	if c.VisibilityTimeout > 0 {
		a.VisibilityTimeout = fmt.Sprint(int(c.VisibilityTimeout.Round(time.Second) / time.Second))
	}
	return a
}

// createQueueInput creates .fifo names as FIFO queues.
func createQueueInput(ctx context.Context, name wsqs.QueueName, attrs wsqs.QueueConfigAttributes) (*sqs.CreateQueueInput, error) {
	if strings.HasSuffix(string(name), FIFOSuffix) {
		attrs.FifoQueue = true
	}
	return wsqs.GenerateCreateQueueInputDefault(ctx, name, attrs)
}

// IsQueueURL says whether a topic names a queue by URL rather than by name.
func IsQueueURL(topic string) bool {
	return strings.HasPrefix(topic, "https://") || strings.HasPrefix(topic, "http://")
}

// queueName is the queue's name: the topic, or the last segment of its URL.
func queueName(topic string) string {
	if IsQueueURL(topic) {
		return topic[strings.LastIndex(topic, "/")+1:]
	}
	return topic
}

// resolver maps a topic to a queue: a URL is used as is (no API call; it is
// assumed to exist), a name is looked up with GetQueueUrl once and cached.
type resolver struct {
	byName *wsqs.GetQueueUrlByNameUrlResolver
	fifo   bool
}

func newResolver(fifo bool) *resolver {
	return &resolver{
		byName: wsqs.NewGetQueueUrlByNameUrlResolver(wsqs.GetQueueUrlByNameUrlResolverConfig{}),
		fifo:   fifo,
	}
}

func (r *resolver) ResolveQueueUrl(ctx context.Context, p wsqs.ResolveQueueUrlParams) (wsqs.QueueUrlResolverResult, error) {
	name := queueName(p.Topic)
	if name == "" {
		return wsqs.QueueUrlResolverResult{}, fmt.Errorf("sqs: topic %q names no queue", p.Topic)
	}
	if r.fifo && !strings.HasSuffix(name, FIFOSuffix) {
		return wsqs.QueueUrlResolverResult{}, fmt.Errorf("sqs: queue %q is not a FIFO queue (name must end in %s) and Config.FIFO is set", name, FIFOSuffix)
	}
	if IsQueueURL(p.Topic) {
		url := wsqs.QueueURL(p.Topic)
		exists := true
		return wsqs.QueueUrlResolverResult{QueueName: wsqs.QueueName(name), QueueURL: &url, Exists: &exists}, nil
	}
	return r.byName.ResolveQueueUrl(ctx, p)
}

// SubscriberConfig is a watermill-aws SQS subscriber configuration for this
// Config: the SNS adapter's readers (emitd tail on an SNS bus) consume their
// queue with it. The daemon's own commands never come through it (see
// Subscriber, which receives in batches).
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
				WaitTimeSeconds:       c.waitSeconds(),
				MaxNumberOfMessages:   1,
			}, nil
		},
		ConsumeWorkers: c.ConsumeWorkers,
		Unmarshaler:    Marshaler{},
	}, nil
}
