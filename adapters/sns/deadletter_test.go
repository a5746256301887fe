package sns_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/sns"
)

// A subscription's dead-letter queue holds what the subscription would have
// delivered. The emulator's deliveries to two queues, one with raw message
// delivery and one without, are the two shapes: read back, each gives the
// published message byte for byte, and the notification names its topic.
func TestParseSubscriptionDeadLetterOfBothShapes(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	ctx := context.Background()
	pub := newPublisher(t, snsConfig(endpoint))
	topicArn, err := pub.CreateTopic(ctx, "reservation")
	if err != nil {
		t.Fatal(err)
	}
	cfg := awstest.AWSConfig(endpoint)
	sq := awssqs.NewFromConfig(cfg)
	subscribe := func(name string, raw bool) string {
		q, err := sq.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		qa, err := sq.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		attrs := map[string]string{}
		if raw {
			attrs["RawMessageDelivery"] = "true"
		}
		if _, err := awssns.NewFromConfig(cfg).Subscribe(ctx, &awssns.SubscribeInput{TopicArn: aws.String(topicArn),
			Protocol: aws.String("sqs"), Endpoint: aws.String(qa.Attributes["QueueArn"]), Attributes: attrs}); err != nil {
			t.Fatal(err)
		}
		return aws.ToString(q.QueueUrl)
	}
	wrapped, raw := subscribe("wrapped", false), subscribe("raw", true)
	msg := envelopeMsg(t, "Reserved", "slot-1", 0)
	if err := pub.Publish("reservation", msg); err != nil {
		t.Fatal(err)
	}

	got := nativeReceive(t, sq, wrapped, 1, 30*time.Second)[0]
	d, err := sns.ParseSubscriptionDeadLetter(aws.ToString(got.Body))
	if err != nil {
		t.Fatal(err)
	}
	n := d.Notification
	if d.Raw || d.Message != string(msg.Payload) || n.Type != "Notification" || n.TopicArn != topicArn || n.MessageID == "" || n.Timestamp.IsZero() {
		t.Errorf("notification: %+v\nbody %s", d, aws.ToString(got.Body))
	}
	if sns.TopicName(n.TopicArn) != "reservation" {
		t.Errorf("topic name of %s: %q", n.TopicArn, sns.TopicName(n.TopicArn))
	}

	got = nativeReceive(t, sq, raw, 1, 30*time.Second)[0]
	d, err = sns.ParseSubscriptionDeadLetter(aws.ToString(got.Body))
	if err != nil || !d.Raw || d.Message != string(msg.Payload) || d.Notification.TopicArn != "" {
		t.Errorf("raw: %+v, %v", d, err)
	}
}

func TestParseSubscriptionDeadLetterRefusesABrokenNotification(t *testing.T) {
	for _, body := range []string{
		`{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:000000000000:t","MessageId":"m"}`,
		`{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:000000000000:t","Message":"x","Timestamp":"not a time"}`,
	} {
		if _, err := sns.ParseSubscriptionDeadLetter(body); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
	if d, err := sns.ParseSubscriptionDeadLetter("not json"); err != nil || !d.Raw || d.Message != "not json" {
		t.Errorf("bytes that are not a notification: %+v, %v (taken as delivered raw)", d, err)
	}
	if sns.TopicName("analytics") != "analytics" {
		t.Error("a name is its own name")
	}
}
