package sqs_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/contract"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/domain"
)

// The shared adapter contract, on a standard queue and on a FIFO queue. A
// queue is one consumer group (subscribers of a queue compete for its
// messages), so ConsumerGroups is not declared; per-slot order holds on FIFO
// queues only (group id = slot id).
func TestContract(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	for _, fifo := range []bool{false, true} {
		name, suffix := "sqs-fauxqs", ""
		if fifo {
			name, suffix = "sqs-fauxqs-fifo", sqs.FIFOSuffix
		}
		t.Run(name, func(t *testing.T) {
			contract.Run(t, contract.Factory{
				Name: name,
				NewPublisher: func(t *testing.T) message.Publisher {
					p, err := sqs.NewPublisher(context.Background(), config(endpoint))
					if err != nil {
						t.Fatalf("[%s] NewPublisher: %v", name, err)
					}
					t.Cleanup(func() { _ = p.Close() })
					return p
				},
				NewSubscriber: func(t *testing.T, _ string) message.Subscriber {
					s, err := sqs.NewSubscriber(context.Background(), config(endpoint))
					if err != nil {
						t.Fatalf("[%s] NewSubscriber: %v", name, err)
					}
					t.Cleanup(func() { _ = s.Close() })
					return s
				},
				NewTopic: func(t *testing.T) string {
					return "contract-" + watermill.NewShortUUID() + suffix
				},
			}, contract.Features{
				PerKeyOrder: fifo,
				Persistent:  true,
				Redelivery:  true, // made visible again at once
				InFlight:    20,
				NativeCheck: func(t *testing.T, topic string, sent []domain.Envelope) {
					c := sdkClient(endpoint)
					got := nativeReceive(t, c, queueURL(t, c, topic), len(sent))
					checkNative(t, name, got, sent, fifo)
				},
			})
		})
	}
}

// checkNative: body = entry JSON, the metadata as String attributes, at most
// 10; on FIFO queues group = slot id and each slot in publish order.
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
			if a := m.MessageAttributes[k]; aws.ToString(a.StringValue) != v || aws.ToString(a.DataType) != "String" {
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
