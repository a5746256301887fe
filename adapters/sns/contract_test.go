package sns_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/domain"
)

// groupQueue is the queue of a consumer group on a topic: one queue per
// (topic, group), subscribed to the topic; FIFO topics need .fifo queues.
func groupQueue(topic, group string) string {
	base, fifo := strings.CutSuffix(topic, sqs.FIFOSuffix)
	name := base + "-" + group
	if fifo {
		name += sqs.FIFOSuffix
	}
	return name
}

// The shared adapter contract: SNS topic -> one SQS queue per consumer group
// (raw message delivery) -> Watermill. Standard and FIFO topics.
func TestContract(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	for _, fifo := range []bool{false, true} {
		name, suffix := "sns-fauxqs", ""
		if fifo {
			name, suffix = "sns-fauxqs-fifo", sqs.FIFOSuffix
		}
		t.Run(name, func(t *testing.T) {
			contract.Run(t, contract.Factory{
				Name: name,
				NewPublisher: func(t *testing.T) message.Publisher {
					return newPublisher(t, snsConfig(endpoint))
				},
				NewSubscriber: func(t *testing.T, group string) message.Subscriber {
					return newSubscriber(t, snsConfig(endpoint), func(topic string) string { return groupQueue(topic, group) })
				},
				NewTopic: func(t *testing.T) string {
					topic := "contract-" + watermill.NewShortUUID() + suffix
					if _, err := newPublisher(t, snsConfig(endpoint)).CreateTopic(context.Background(), topic); err != nil {
						t.Fatalf("[%s] CreateTopic: %v", name, err)
					}
					return topic
				},
			}, contract.Features{
				PerKeyOrder:    fifo,
				ConsumerGroups: true,
				Persistent:     true,
				Redelivery:     true,
				NativeCheck: func(t *testing.T, topic string, sent []domain.Envelope) {
					c := awssqs.NewFromConfig(awstest.AWSConfig(endpoint))
					q, err := c.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(groupQueue(topic, contract.NativeGroup))})
					if err != nil {
						t.Fatal(err)
					}
					got := nativeReceive(t, c, aws.ToString(q.QueueUrl), len(sent), contract.WaitTimeout)
					checkNative(t, name, got, sent, fifo)
				},
			})
		})
	}
}

// checkNative: what a plain SQS consumer of a raw-delivery subscription sees.
func checkNative(t *testing.T, name string, got []types.Message, sent []domain.Envelope, fifo bool) {
	t.Helper()
	byID := map[string]int{}
	for i, env := range sent {
		byID[env.ID] = i
	}
	last := map[string]int{}
	for _, m := range got {
		i, ok := byID[aws.ToString(m.MessageAttributes["event-id"].StringValue)]
		if !ok {
			t.Fatalf("[%s] unknown message %v", name, m.MessageAttributes)
		}
		env := sent[i]
		if want := string(contract.EntryJSON(t, env)); aws.ToString(m.Body) != want {
			t.Errorf("[%s] envelope %d: body\n got %s\nwant %s", name, i, aws.ToString(m.Body), want)
		}
		if len(m.MessageAttributes) > sqs.MaxAttributes {
			t.Errorf("[%s] envelope %d: %d attributes", name, i, len(m.MessageAttributes))
		}
		want := contract.HeaderKeys(env)
		for k, v := range want {
			if a := m.MessageAttributes[k]; aws.ToString(a.StringValue) != v {
				t.Errorf("[%s] envelope %d: attribute %s = %+v, want %q", name, i, k, a, v)
			}
		}
		for k := range m.MessageAttributes {
			if _, ok := want[k]; !ok && k != sqs.UUIDAttribute {
				t.Errorf("[%s] envelope %d: unexpected attribute %s", name, i, k)
			}
		}
		if fifo {
			if g := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]; g != env.SlotID {
				t.Errorf("[%s] envelope %d: group %q, want slot %q", name, i, g, env.SlotID)
			}
			if i < last[env.SlotID] {
				t.Errorf("[%s] slot %s out of order", name, env.SlotID)
			}
			last[env.SlotID] = i
		}
	}
}
