package sns

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// Ping says whether SNS answers for topic (GetTopicAttributes).
func (p *Publisher) Ping(ctx context.Context, topic string) error {
	arn, err := p.c.resolver.ResolveTopic(ctx, topic)
	if err != nil {
		return err
	}
	if _, err := p.c.sns.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(string(arn))}); err != nil {
		return fmt.Errorf("sns: topic %q: %w", topic, err)
	}
	return nil
}
