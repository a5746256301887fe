package sns_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

var seq atomic.Int64

func envelopeMsg(t testing.TB, detailType, slot string, extra int) *message.Message {
	t.Helper()
	n := seq.Add(1)
	id := watermill.NewUUID()
	msg, err := publisher.ToMessage(domain.Envelope{
		EventBusName:  "orders",
		Source:        "emitd.orders",
		DetailType:    detailType,
		Detail:        fmt.Sprintf(`{"metadata":{"id":%q},"data":{"slotId":%q,"n":%d}}`, id, slot, n),
		ID:            id,
		CorrelationID: fmt.Sprint("corr-", n),
		SlotID:        slot,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < extra; i++ {
		msg.Metadata.Set(fmt.Sprintf("extra-%02d", i), fmt.Sprint("v", i))
	}
	return msg
}

func snsConfig(endpoint string) sns.Config {
	c := awstest.AWSConfig(endpoint)
	return sns.Config{CreateIfMissing: true, AWSConfig: &c}
}

func newPublisher(t testing.TB, cfg sns.Config) *sns.Publisher {
	t.Helper()
	pub, err := sns.NewPublisher(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func newSubscriber(t testing.TB, cfg sns.Config, queueName func(string) string) *sns.Subscriber {
	t.Helper()
	sub, err := sns.NewSubscriber(context.Background(), sns.SubscriberConfig{
		Config:    cfg,
		Queue:     sqs.Config{CreateIfMissing: true, VisibilityTimeout: time.Second, ReceiveWaitTime: time.Second},
		QueueName: queueName,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func receiveN(t testing.TB, ch <-chan *message.Message, n int) []*message.Message {
	t.Helper()
	var got []*message.Message
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case m := <-ch:
			got = append(got, m)
			m.Ack()
		case <-timeout:
			t.Fatalf("received %d of %d", len(got), n)
		}
	}
	return got
}

func assertSame(t testing.TB, got, want *message.Message) {
	t.Helper()
	if got.UUID != want.UUID || string(got.Payload) != string(want.Payload) || !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("message changed:\n got %s %s %v\nwant %s %s %v", got.UUID, got.Payload, got.Metadata, want.UUID, want.Payload, want.Metadata)
	}
}

// nativeQueue creates a queue with the plain SDK and subscribes it to the
// topic with raw message delivery (and a filter policy, if given).
func nativeQueue(t testing.TB, endpoint, topicArn, name, filterPolicy string) (*awssqs.Client, string) {
	t.Helper()
	ctx := context.Background()
	cfg := awstest.AWSConfig(endpoint)
	sq := awssqs.NewFromConfig(cfg)
	attrs := map[string]string{}
	if sqs.IsFIFO(name) {
		attrs["FifoQueue"] = "true"
	}
	q, err := sq.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	qa, err := sq.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	subAttrs := map[string]string{"RawMessageDelivery": "true"}
	if filterPolicy != "" {
		subAttrs["FilterPolicy"] = filterPolicy
	}
	if _, err := awssns.NewFromConfig(cfg).Subscribe(ctx, &awssns.SubscribeInput{
		TopicArn: aws.String(topicArn), Protocol: aws.String("sqs"),
		Endpoint: aws.String(qa.Attributes["QueueArn"]), Attributes: subAttrs,
	}); err != nil {
		t.Fatal(err)
	}
	return sq, aws.ToString(q.QueueUrl)
}

func nativeReceive(t testing.TB, c *awssqs.Client, url string, n int, wait time.Duration) []types.Message {
	t.Helper()
	var got []types.Message
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && (n < 0 || len(got) < n) {
		out, err := c.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 1, WaitTimeSeconds: 1,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got = append(got, m)
			if _, err := c.DeleteMessage(context.Background(), &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n >= 0 && len(got) < n {
		t.Fatalf("received %d of %d native messages", len(got), n)
	}
	return got
}

// SNS -> subscribed SQS queue -> Watermill subscriber: payload, UUID and
// metadata unchanged, also with 14 metadata keys; topic by name and by ARN.
func TestRoundTripWatermill(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	cfg := snsConfig(endpoint)
	pub := newPublisher(t, cfg)
	sub := newSubscriber(t, cfg, func(topic string) string { return topic + "-tail" })

	for _, topic := range []string{"orders", fmt.Sprintf("arn:aws:sns:%s:%s:payments", awstest.Region, awstest.AccountID)} {
		t.Run(topic, func(t *testing.T) {
			ch, err := sub.Subscribe(context.Background(), topic) // creates the topic first
			if err != nil {
				t.Fatal(err)
			}
			want := []*message.Message{envelopeMsg(t, "OrderPlaced", "s1", 0), envelopeMsg(t, "OrderPlaced", "s2", 9)}
			if err := pub.Publish(topic, want...); err != nil {
				t.Fatal(err)
			}
			got := receiveN(t, ch, len(want))
			for _, w := range want {
				found := false
				for _, g := range got {
					if g.UUID == w.UUID {
						assertSame(t, g, w)
						found = true
					}
				}
				if !found {
					t.Errorf("message %s not received", w.UUID)
				}
			}
		})
	}
}

// What a plain SQS consumer subscribed to the topic sees (raw message
// delivery): body = the entry JSON, attributes source/detail-type/event-id,
// at most 10; and a filter policy on detail-type works.
func TestNativeDelivery(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	pub := newPublisher(t, snsConfig(endpoint))
	arn, err := pub.CreateTopic(context.Background(), "bus-native")
	if err != nil {
		t.Fatal(err)
	}
	c, all := nativeQueue(t, endpoint, arn, "all", "")
	_, shipped := nativeQueue(t, endpoint, arn, "shipped-only", `{"detail-type":["OrderShipped"]}`)

	msgs := []*message.Message{envelopeMsg(t, "OrderPlaced", "s", 0), envelopeMsg(t, "OrderShipped", "s", 9)}
	if err := pub.Publish("bus-native", msgs...); err != nil {
		t.Fatal(err)
	}
	got := nativeReceive(t, c, all, len(msgs), 30*time.Second)
	for i, m := range got {
		want := msgs[i]
		if aws.ToString(m.Body) != string(want.Payload) {
			t.Errorf("body\n got %s\nwant %s", aws.ToString(m.Body), want.Payload)
		}
		if n := len(m.MessageAttributes); n > sqs.MaxAttributes {
			t.Errorf("%d attributes", n)
		}
		for _, k := range []string{"source", "detail-type", "event-id"} {
			if v := aws.ToString(m.MessageAttributes[k].StringValue); v != want.Metadata.Get(k) {
				t.Errorf("attribute %s = %q, want %q", k, v, want.Metadata.Get(k))
			}
		}
		t.Logf("%d metadata keys -> %d SQS attributes", len(want.Metadata), len(m.MessageAttributes))
	}

	filtered := nativeReceive(t, c, shipped, -1, 2*time.Second)
	if len(filtered) != 1 || aws.ToString(filtered[0].MessageAttributes["event-id"].StringValue) != msgs[1].UUID {
		t.Errorf("filter policy on detail-type: got %d messages", len(filtered))
	}
}

// FIFO topic -> FIFO queue: group = slot id, deduplication id = UUID, order
// kept per slot, a re-sent message dropped.
func TestFIFOTopic(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	cfg := snsConfig(endpoint)
	cfg.FIFO = true
	pub := newPublisher(t, cfg)
	if err := pub.Publish("plain", envelopeMsg(t, "X", "s", 0)); err == nil {
		t.Fatal("Config.FIFO accepted a non-FIFO topic")
	}
	arn, err := pub.CreateTopic(context.Background(), "bus.fifo")
	if err != nil {
		t.Fatal(err)
	}
	c, url := nativeQueue(t, endpoint, arn, "bus-native.fifo", "")

	var msgs []*message.Message
	for i := 0; i < 6; i++ {
		msgs = append(msgs, envelopeMsg(t, "OrderPlaced", []string{"slot-a", "slot-b"}[i%2], 0))
	}
	if err := pub.Publish("bus.fifo", msgs...); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("bus.fifo", msgs[0]); err != nil { // a relay's re-send
		t.Fatal(err)
	}
	got := nativeReceive(t, c, url, len(msgs), 30*time.Second)
	order := map[string][]string{}
	for _, m := range got {
		group := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
		id := aws.ToString(m.MessageAttributes["event-id"].StringValue)
		if slot := aws.ToString(m.MessageAttributes["slot-id"].StringValue); group != slot {
			t.Errorf("group %q, slot %q", group, slot)
		}
		order[group] = append(order[group], id)
	}
	for _, slot := range []string{"slot-a", "slot-b"} {
		var want []string
		for _, m := range msgs {
			if m.Metadata.Get("slot-id") == slot {
				want = append(want, m.UUID)
			}
		}
		if !reflect.DeepEqual(order[slot], want) {
			t.Errorf("%s: order %v, want %v", slot, order[slot], want)
		}
	}
	if extra := nativeReceive(t, c, url, -1, 1500*time.Millisecond); len(extra) != 0 {
		t.Errorf("duplicate delivered: %d more", len(extra))
	}

	// The Watermill subscriber on a FIFO topic (its queue keeps the .fifo name).
	sub := newSubscriber(t, cfg, nil)
	ch, err := sub.Subscribe(context.Background(), "events.fifo")
	if err != nil {
		t.Fatal(err)
	}
	m := envelopeMsg(t, "OrderPlaced", "slot-c", 9)
	if err := pub.Publish("events.fifo", m); err != nil {
		t.Fatal(err)
	}
	assertSame(t, receiveN(t, ch, 1)[0], m)
}

// Without CreateIfMissing a missing topic is an error, not a silent create;
// an existing one is found by name.
func TestNoCreate(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	cfg := snsConfig(endpoint)
	cfg.CreateIfMissing = false
	pub := newPublisher(t, cfg)
	err := pub.Publish("missing", envelopeMsg(t, "X", "s", 0))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("publish to a missing topic: %v", err)
	}
	if _, err := newPublisher(t, snsConfig(endpoint)).CreateTopic(context.Background(), "exists"); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("exists", envelopeMsg(t, "X", "s", 0)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkPublish(b *testing.B) {
	endpoint := awstest.StartFauxqs(b)
	pub := newPublisher(b, snsConfig(endpoint))
	arn, err := pub.CreateTopic(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	nativeQueue(b, endpoint, arn, "bench-sink", "") // a subscriber, so each publish fans out once
	msgs := make([]*message.Message, 256)
	for i := range msgs {
		msgs[i] = envelopeMsg(b, "OrderPlaced", fmt.Sprint("slot-", i%16), 0)
	}
	for _, workers := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			// Exactly `workers` goroutines share b.N publishes (RunParallel
			// would start a multiple of GOMAXPROCS).
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if err := pub.Publish("bench", msgs[i%int64(len(msgs))]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
