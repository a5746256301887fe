package sqs_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

var seq atomic.Int64

// envelopeMsg is publisher.ToMessage of a fresh envelope on slot, plus extra
// metadata keys.
func envelopeMsg(t testing.TB, slot string, extra int) *message.Message {
	t.Helper()
	n := seq.Add(1)
	id := watermill.NewUUID()
	env := domain.Envelope{
		EventBusName:  "orders",
		Source:        "emitd.orders",
		DetailType:    "OrderPlaced",
		Detail:        fmt.Sprintf(`{"metadata":{"id":%q,"correlationId":"corr-%d"},"data":{"slotId":%q,"event":"OrderPlaced","n":%d}}`, id, n, slot, n),
		ID:            id,
		CorrelationID: fmt.Sprintf("corr-%d", n),
		SlotID:        slot,
	}
	msg, err := publisher.ToMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < extra; i++ {
		msg.Metadata.Set(fmt.Sprintf("extra-%02d", i), fmt.Sprintf("value %d of %d", i, n))
	}
	return msg
}

func config(endpoint string) sqs.Config {
	c := awstest.AWSConfig(endpoint)
	return sqs.Config{CreateIfMissing: true, VisibilityTimeout: time.Second, AWSConfig: &c, ReceiveWaitTime: time.Second}
}

func newPubSub(t testing.TB, cfg sqs.Config) (*sqs.Publisher, *sqs.Subscriber) {
	t.Helper()
	ctx := context.Background()
	pub, err := sqs.NewPublisher(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := sqs.NewSubscriber(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(); _ = pub.Close() })
	return pub, sub
}

func receiveN(t testing.TB, ch <-chan *message.Message, n int, ack bool) []*message.Message {
	t.Helper()
	var got []*message.Message
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("subscription closed after %d of %d", len(got), n)
			}
			got = append(got, m)
			if ack {
				m.Ack()
			}
		case <-timeout:
			t.Fatalf("received %d of %d messages", len(got), n)
		}
	}
	return got
}

func assertSame(t testing.TB, got, want *message.Message) {
	t.Helper()
	if got.UUID != want.UUID {
		t.Errorf("UUID %q, want %q", got.UUID, want.UUID)
	}
	if string(got.Payload) != string(want.Payload) {
		t.Errorf("payload\n got %s\nwant %s", got.Payload, want.Payload)
	}
	if !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("metadata\n got %v\nwant %v", got.Metadata, want.Metadata)
	}
}

func sdkClient(endpoint string) *awssqs.Client {
	return awssqs.NewFromConfig(awstest.AWSConfig(endpoint))
}

func queueURL(t testing.TB, c *awssqs.Client, name string) string {
	t.Helper()
	out, err := c.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

func nativeReceive(t testing.TB, c *awssqs.Client, url string, n int) []types.Message {
	t.Helper()
	var got []types.Message
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		out, err := c.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(url),
			MaxNumberOfMessages:         1,
			WaitTimeSeconds:             1,
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
	if len(got) < n {
		t.Fatalf("received %d of %d native messages", len(got), n)
	}
	return got
}

// Envelopes published through the adapter come back through the Watermill
// subscriber unchanged: payload, UUID and all metadata, including a message
// with 14 metadata keys (more than SQS's 10 attributes).
func TestRoundTripWatermill(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	pub, sub := newPubSub(t, config(endpoint))
	const queue = "roundtrip"

	want := []*message.Message{envelopeMsg(t, "slot-a", 0), envelopeMsg(t, "slot-b", 9), envelopeMsg(t, "", 0)}
	want[2].Metadata.Set("empty-value", "")
	if err := pub.Publish(queue, want...); err != nil {
		t.Fatal(err)
	}
	if len(want[1].Metadata) != 14 {
		t.Fatalf("test setup: %d metadata keys, want 14", len(want[1].Metadata))
	}
	ch, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, ch, len(want), true)
	byUUID := map[string]*message.Message{}
	for _, m := range got {
		byUUID[m.UUID] = m
	}
	for _, w := range want {
		g, ok := byUUID[w.UUID]
		if !ok {
			t.Fatalf("message %s not received", w.UUID)
		}
		assertSame(t, g, w)
		env, err := publisher.FromMessage(g)
		if err != nil {
			t.Fatal(err)
		}
		if env.ID != w.UUID || env.SlotID != w.Metadata.Get(publisher.MetaSlotID) {
			t.Errorf("envelope %+v", env)
		}
	}
}

// What a plain SDK consumer sees: body = the entry JSON bytes, attributes
// source/detail-type/event-id, never more than 10 attributes.
func TestNativeForm(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	pub, _ := newPubSub(t, config(endpoint))
	const queue = "native"

	msgs := []*message.Message{envelopeMsg(t, "slot-a", 0), envelopeMsg(t, "slot-a", 9)}
	if err := pub.Publish(queue, msgs...); err != nil {
		t.Fatal(err)
	}
	c := sdkClient(endpoint)
	got := nativeReceive(t, c, queueURL(t, c, queue), len(msgs))
	for _, m := range got {
		uuid := aws.ToString(m.MessageAttributes[sqs.UUIDAttribute].StringValue)
		var want *message.Message
		for _, w := range msgs {
			if w.UUID == uuid {
				want = w
			}
		}
		if want == nil {
			t.Fatalf("unknown message %v", m.MessageAttributes)
		}
		if aws.ToString(m.Body) != string(want.Payload) {
			t.Errorf("body\n got %s\nwant %s", aws.ToString(m.Body), want.Payload)
		}
		if !strings.HasPrefix(aws.ToString(m.Body), `{"EventBusName":"orders","Source":"emitd.orders","DetailType":"OrderPlaced","Detail":"{`) {
			t.Errorf("body is not the entry JSON: %s", aws.ToString(m.Body))
		}
		if n := len(m.MessageAttributes); n > sqs.MaxAttributes {
			t.Errorf("%d attributes", n)
		}
		for _, k := range []string{"source", "detail-type", "event-id"} {
			a, ok := m.MessageAttributes[k]
			if !ok || aws.ToString(a.DataType) != "String" || aws.ToString(a.StringValue) != want.Metadata.Get(k) {
				t.Errorf("attribute %s = %+v, want %q", k, a, want.Metadata.Get(k))
			}
		}
		names := make([]string, 0, len(m.MessageAttributes))
		for k := range m.MessageAttributes {
			names = append(names, k)
		}
		sort.Strings(names)
		t.Logf("%d metadata keys -> %d attributes %v", len(want.Metadata), len(names), names)
		_, packed := m.MessageAttributes[sqs.PackedAttribute]
		if packed != (len(want.Metadata) > sqs.MaxAttributes-1) {
			t.Errorf("packed attribute present=%v with %d metadata keys", packed, len(want.Metadata))
		}
	}
}

// A queue URL works as a topic, and a queue created by someone else is used.
func TestQueueURLTopic(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	c := sdkClient(endpoint)
	out, err := c.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String("by-url")})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(out.QueueUrl)
	cfg := config(endpoint)
	cfg.CreateIfMissing = false
	pub, sub := newPubSub(t, cfg)
	msg := envelopeMsg(t, "s", 0)
	if err := pub.Publish(url, msg); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, receiveN(t, ch, 1, true)[0], msg)

	if err := pub.Publish("no-such-queue", msg); err == nil {
		t.Fatal("publish to a missing queue with CreateIfMissing=false succeeded")
	}
}

// A nacked message comes back at once (it is made visible again); an acked
// one is deleted.
func TestNackRedelivers(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	pub, sub := newPubSub(t, config(endpoint))
	const queue = "nack"
	msg := envelopeMsg(t, "s", 0)
	if err := pub.Publish(queue, msg); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	first := receiveN(t, ch, 1, false)[0]
	assertSame(t, first, msg)
	first.Nack()
	start := time.Now()
	second := receiveN(t, ch, 1, true)[0]
	assertSame(t, second, msg)
	t.Logf("redelivered after %s", time.Since(start).Round(time.Millisecond))

	c := sdkClient(endpoint)
	deadline := time.Now().Add(3 * time.Second)
	for {
		attrs, err := c.GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(queueURL(t, c, queue)),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
		})
		if err != nil {
			t.Fatal(err)
		}
		if attrs.Attributes["ApproximateNumberOfMessages"] == "0" && attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not deleted after ack: %v", attrs.Attributes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FIFO queue: the group is the slot id (fallback: the UUID), the
// deduplication id is the UUID (a re-send is dropped), each slot keeps its
// order.
func TestFIFOGroupPerSlot(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	cfg := config(endpoint)
	cfg.FIFO = true
	pub, sub := newPubSub(t, cfg)
	const queue = "events.fifo"

	if err := pub.Publish("not-fifo", envelopeMsg(t, "a", 0)); err == nil {
		t.Fatal("Config.FIFO: a non-.fifo queue was accepted")
	}

	var msgs []*message.Message
	for i := 0; i < 6; i++ {
		msgs = append(msgs, envelopeMsg(t, []string{"slot-a", "slot-b"}[i%2], 0))
	}
	noSlot := envelopeMsg(t, "", 0)
	msgs = append(msgs, noSlot)
	if err := pub.Publish(queue, msgs...); err != nil {
		t.Fatal(err)
	}
	// The relay sends the first one again: SQS drops the duplicate.
	if err := pub.Publish(queue, msgs[0]); err != nil {
		t.Fatal(err)
	}

	c := sdkClient(endpoint)
	got := nativeReceive(t, c, queueURL(t, c, queue), len(msgs))
	order := map[string][]string{}
	for _, m := range got {
		group := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
		dedup := m.Attributes[string(types.MessageSystemAttributeNameMessageDeduplicationId)]
		uuid := aws.ToString(m.MessageAttributes[sqs.UUIDAttribute].StringValue)
		slot := aws.ToString(m.MessageAttributes[publisher.MetaSlotID].StringValue)
		wantGroup := slot
		if slot == "" {
			wantGroup = uuid
		}
		if group != wantGroup || dedup != uuid {
			t.Errorf("message %s: group %q dedup %q, want group %q dedup %q", uuid, group, dedup, wantGroup, uuid)
		}
		order[group] = append(order[group], uuid)
	}
	for _, slot := range []string{"slot-a", "slot-b"} {
		var want []string
		for _, m := range msgs {
			if m.Metadata.Get(publisher.MetaSlotID) == slot {
				want = append(want, m.UUID)
			}
		}
		if !reflect.DeepEqual(order[slot], want) {
			t.Errorf("%s order %v, want %v", slot, order[slot], want)
		}
	}
	// Nothing more: the duplicate was dropped.
	out, err := c.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL(t, c, queue)), WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 0 {
		t.Errorf("duplicate delivered: %v", aws.ToString(out.Messages[0].Body))
	}

	// And the Watermill subscriber reads FIFO messages unchanged.
	more := envelopeMsg(t, "slot-c", 9)
	if err := pub.Publish(queue, more); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, receiveN(t, ch, 1, true)[0], more)
}

// With no explicit endpoint or AWS config the SDK's standard environment is
// honoured: AWS_ENDPOINT_URL_SQS, AWS_REGION, the credential chain.
func TestStandardEnvironment(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	awstest.SetEnv(t, map[string]string{
		"AWS_ENDPOINT_URL":     "http://127.0.0.1:1", // the SQS-specific one wins
		"AWS_ENDPOINT_URL_SQS": endpoint,
	})

	pub, sub := newPubSub(t, sqs.Config{CreateIfMissing: true, ReceiveWaitTime: time.Second})
	msg := envelopeMsg(t, "s", 0)
	if err := pub.Publish("env", msg); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "env")
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, receiveN(t, ch, 1, true)[0], msg)

	// Config.Endpoint overrides the environment.
	t.Setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:1")
	pub2, _ := newPubSub(t, sqs.Config{Endpoint: endpoint})
	if err := pub2.Publish("env", envelopeMsg(t, "s", 0)); err != nil {
		t.Fatal(err)
	}
}

// A message SQS refuses for good is Refused in the BatchError, the others are
// still delivered; a failure that may pass leaves it and the rest Pending.
func TestPublishBatchError(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	pub, _ := newPubSub(t, config(endpoint))
	good1, bad, good2 := envelopeMsg(t, "s", 0), message.NewMessage(watermill.NewUUID(), []byte("bad \x00 body")), envelopeMsg(t, "s", 0)
	err := pub.Publish("batch", good1, bad, good2)
	be, ok := publisher.AsBatchError(err)
	if !ok {
		t.Fatalf("error %v, want a BatchError", err)
	}
	if len(be.Refused) != 1 || be.Refused[bad.UUID] == nil || len(be.Pending) != 0 {
		t.Fatalf("refused %v pending %v", be.Refused, be.Pending)
	}
	t.Logf("refused: %v", be.Refused[bad.UUID])
	c := sdkClient(endpoint)
	if got := nativeReceive(t, c, queueURL(t, c, "batch"), 2); len(got) != 2 {
		t.Fatal(got)
	}

	// An unreachable SQS is a failure of the queue, not of the messages:
	// the plain error (every message pending), no refusal.
	dead := config("http://127.0.0.1:1")
	pubDead, _ := newPubSub(t, dead)
	url := "http://127.0.0.1:1/000000000000/batch" // a URL: no GetQueueUrl call first
	err = pubDead.Publish(url, good1, good2)
	if _, isBatch := publisher.AsBatchError(err); err == nil || isBatch {
		t.Fatalf("unreachable broker: %v, want the plain error", err)
	}
}

func BenchmarkPublish(b *testing.B) {
	endpoint := awstest.StartFauxqs(b)
	for _, workers := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			pub, _ := newPubSub(b, config(endpoint))
			queue := fmt.Sprintf("bench-%d", workers)
			if err := pub.Publish(queue, envelopeMsg(b, "s", 0)); err != nil {
				b.Fatal(err)
			}
			msgs := make([]*message.Message, 256)
			for i := range msgs {
				msgs[i] = envelopeMsg(b, fmt.Sprint("slot-", i%16), 0)
			}
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
						if err := pub.Publish(queue, msgs[i%int64(len(msgs))]); err != nil {
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

// A message reported in progress stays hidden past its visibility timeout
// while it is worked on; once that stops, it comes back.
func TestInProgressExtendsVisibility(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	pub, sub := newPubSub(t, config(endpoint)) // visibility 1s
	const queue = "inprogress"
	msg := envelopeMsg(t, "s", 0)
	if err := pub.Publish(queue, msg); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, ch, 1, false)[0]
	touch := publisher.InProgress(got)
	if touch == nil {
		t.Fatal("an SQS message carries no in-progress signal")
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		touch()
		select {
		case again := <-ch:
			t.Fatalf("redelivered %s while in progress", again.UUID)
		case <-time.After(300 * time.Millisecond):
		}
	}
	again := receiveN(t, ch, 1, true)[0] // no longer touched: visible again
	assertSame(t, again, msg)
	got.Ack()
}
