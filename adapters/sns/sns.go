// Package sns is the Amazon SNS adapter: events go out to SNS topics (one
// topic per bus; the Watermill topic is a topic name or a topic ARN), built on
// watermill-aws.
//
// A published message is what SNS users expect: the SNS message is the
// Watermill payload unchanged (the EventBridge entry JSON), the metadata goes
// into message attributes with source, detail-type and event-id first (for
// subscription filter policies) and never more than 10 (SNS delivers at most
// 10 to an SQS subscription; the rest is packed as in the sqs adapter). On
// FIFO topics (.fifo) the message group is the slot id and the deduplication
// id the message UUID.
//
// The subscriber (for tests and `emitd tail`) subscribes an SQS queue to the
// topic with raw message delivery, so the queue holds the same body and
// attributes as a direct SQS publish and the sqs adapter's unmarshaler gives
// back the Watermill message unchanged.
package sns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	wsns "github.com/ThreeDotsLabs/watermill-aws/sns"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"

	"github.com/emitd/emitd/adapters/awsconf"
	"github.com/emitd/emitd/adapters/sqs"
)

// Config configures the SNS side of the publisher and the subscriber.
type Config struct {
	// Region overrides the SDK's region (AWS_REGION, the profile).
	Region string
	// Endpoint overrides the SNS endpoint. Empty: the SDK decides
	// (AWS_ENDPOINT_URL_SNS, AWS_ENDPOINT_URL, config file, the real service).
	Endpoint string
	// CreateIfMissing creates topics that do not exist (names ending in .fifo
	// as FIFO topics): on first use of a topic name, and for a topic ARN when
	// a publish finds it missing or before subscribing to it.
	CreateIfMissing bool
	// FIFO requires every topic to be a FIFO topic (.fifo); others are refused.
	FIFO bool
	// AccountID, if set, turns topic names into ARNs without an API call
	// (when CreateIfMissing is off). Otherwise a name is resolved by
	// CreateTopic (idempotent) or, without CreateIfMissing, by ListTopics.
	AccountID string

	// AWSConfig, if set, is used instead of config.LoadDefaultConfig.
	AWSConfig *aws.Config
	// Logger for watermill-aws; nil logs nothing.
	Logger watermill.LoggerAdapter
}

type client struct {
	cfg      Config
	awsCfg   aws.Config
	optFns   []func(*sns.Options)
	sns      *sns.Client
	resolver *topicResolver
}

func newClient(ctx context.Context, cfg Config) (*client, error) {
	awsCfg, err := awsconf.Load(ctx, cfg.Region, cfg.AWSConfig)
	if err != nil {
		return nil, err
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("sns: %w: set Config.Region or AWS_REGION", awsconf.ErrNoRegion)
	}
	var optFns []func(*sns.Options)
	if cfg.Endpoint != "" {
		endpoint := cfg.Endpoint
		optFns = append(optFns, func(o *sns.Options) { o.BaseEndpoint = aws.String(endpoint) })
	}
	c := &client{cfg: cfg, awsCfg: awsCfg, optFns: optFns, sns: sns.NewFromConfig(awsCfg, optFns...)}
	c.resolver = &topicResolver{c: c, cache: map[string]wsns.TopicArn{}}
	return c, nil
}

func (c *client) logger() watermill.LoggerAdapter {
	if c.cfg.Logger == nil {
		return watermill.NopLogger{}
	}
	return c.cfg.Logger
}

// IsTopicARN says whether a topic is given as an ARN rather than a name.
func IsTopicARN(topic string) bool { return strings.HasPrefix(topic, "arn:") }

func createTopicInput(ctx context.Context, name wsns.TopicName, attrs wsns.ConfigAttributes) (sns.CreateTopicInput, error) {
	if sqs.IsFIFO(string(name)) {
		attrs.FifoTopic = "true"
	}
	return wsns.GenerateCreateTopicInputDefault(ctx, name, attrs)
}

// createTopic creates (or finds: CreateTopic is idempotent) the named topic.
func (c *client) createTopic(ctx context.Context, name string) (wsns.TopicArn, error) {
	in, err := createTopicInput(ctx, wsns.TopicName(name), wsns.ConfigAttributes{})
	if err != nil {
		return "", err
	}
	out, err := c.sns.CreateTopic(ctx, &in)
	if err != nil {
		return "", fmt.Errorf("sns: create topic %s: %w", name, err)
	}
	return wsns.TopicArn(aws.ToString(out.TopicArn)), nil
}

// ensureTopic makes sure the topic exists (CreateIfMissing) before a
// subscription: SNS refuses to subscribe to a missing topic.
func (c *client) ensureTopic(ctx context.Context, topic string) (wsns.TopicArn, error) {
	arn, err := c.resolver.ResolveTopic(ctx, topic)
	if err != nil || !c.cfg.CreateIfMissing || !IsTopicARN(topic) {
		return arn, err // names were created while resolving
	}
	name, err := wsns.ExtractTopicNameFromTopicArn(arn)
	if err != nil {
		return "", err
	}
	created, err := c.createTopic(ctx, string(name))
	if err != nil {
		return "", err
	}
	if created != arn {
		return "", fmt.Errorf("sns: cannot create topic %s here: CreateTopic made %s (another account or region?)", arn, created)
	}
	return arn, nil
}

// topicResolver maps a topic (name or ARN) to its ARN; names are resolved
// once per process.
type topicResolver struct {
	c     *client
	mu    sync.Mutex
	cache map[string]wsns.TopicArn
}

func (r *topicResolver) ResolveTopic(ctx context.Context, topic string) (wsns.TopicArn, error) {
	if topic == "" {
		return "", errors.New("sns: empty topic")
	}
	if r.c.cfg.FIFO && !sqs.IsFIFO(topic) {
		return "", fmt.Errorf("sns: topic %q is not a FIFO topic (must end in %s) and Config.FIFO is set", topic, sqs.FIFOSuffix)
	}
	if IsTopicARN(topic) {
		return wsns.TopicArn(topic), nil
	}
	r.mu.Lock()
	arn, ok := r.cache[topic]
	r.mu.Unlock()
	if ok {
		return arn, nil
	}
	var err error
	switch {
	case r.c.cfg.CreateIfMissing:
		arn, err = r.c.createTopic(ctx, topic)
	case r.c.cfg.AccountID != "":
		arn, err = wsns.GenerateTopicArn(r.c.awsCfg.Region, r.c.cfg.AccountID, topic)
	default:
		arn, err = r.c.findTopic(ctx, topic)
	}
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.cache[topic] = arn
	r.mu.Unlock()
	return arn, nil
}

func (c *client) findTopic(ctx context.Context, name string) (wsns.TopicArn, error) {
	p := sns.NewListTopicsPaginator(c.sns, &sns.ListTopicsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("sns: list topics: %w", err)
		}
		for _, t := range page.Topics {
			if arn := aws.ToString(t.TopicArn); strings.HasSuffix(arn, ":"+name) {
				return wsns.TopicArn(arn), nil
			}
		}
	}
	return "", fmt.Errorf("sns: topic %s does not exist (and CreateIfMissing is off)", name)
}

// Marshaler maps a Watermill message to an SNS Publish call. It sets TopicArn
// (watermill-aws's default sets TargetArn, which fauxqs refuses; AWS takes
// either but not both).
type Marshaler struct{}

var _ wsns.Marshaler = Marshaler{}

// Marshal: Message = payload unchanged, attributes per sqs.EncodeAttributes,
// FIFO topics get group = slot id (else UUID) and deduplication id = UUID.
func (Marshaler) Marshal(topicArn wsns.TopicArn, msg *message.Message) *sns.PublishInput {
	attrs := sqs.EncodeAttributes(msg.UUID, msg.Metadata)
	out := make(map[string]types.MessageAttributeValue, len(attrs))
	for k, v := range attrs {
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	in := &sns.PublishInput{
		TopicArn:          aws.String(string(topicArn)),
		Message:           aws.String(string(msg.Payload)),
		MessageAttributes: out,
	}
	if sqs.IsFIFO(string(topicArn)) {
		in.MessageGroupId = aws.String(sqs.GroupID(msg))
		in.MessageDeduplicationId = aws.String(sqs.DeduplicationID(msg))
	}
	return in
}

// IsPermanent says whether SNS refused a message for good.
func IsPermanent(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidParameter", "ParameterValueInvalid", "ValidationException", "InvalidParameterValue":
		return true
	}
	return false
}
