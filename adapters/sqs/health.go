package sqs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Ping says whether SQS answers for topic's queue (GetQueueAttributes).
func (p *Publisher) Ping(ctx context.Context, topic string) error {
	u, err := p.q.url(ctx, topic)
	if err != nil {
		return err
	}
	if _, err := p.q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}}); err != nil {
		return fmt.Errorf("sqs: queue %q: %w", queueName(topic), err)
	}
	return nil
}

// QueueDepth is how many messages wait in topic's queue, visible or taken
// and not yet deleted (SQS's approximate counts; group is not used: on SQS
// every reader takes from the one queue). It only reads: it never creates
// the queue, and receives nothing.
func (p *Publisher) QueueDepth(ctx context.Context, topic, _ string) (int64, error) {
	u := topic
	if !IsQueueURL(topic) {
		out, err := p.q.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queueName(topic))})
		if err != nil {
			return 0, fmt.Errorf("sqs: queue %q: %w", queueName(topic), err)
		}
		u = aws.ToString(out.QueueUrl)
	}
	out, err := p.q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, fmt.Errorf("sqs: queue %q: %w", queueName(topic), err)
	}
	var n int64
	for _, a := range []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible} {
		v, err := strconv.ParseInt(out.Attributes[string(a)], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("sqs: queue %q: attribute %s is %q", queueName(topic), a, out.Attributes[string(a)])
		}
		n += v
	}
	return n, nil
}
