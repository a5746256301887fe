package sqs_test

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/emitd/emitd/adapters/awstest"
	"github.com/emitd/emitd/adapters/sqs"
)

// A queue of someone else's, with a visibility timeout of its own (an
// hour: a receive that hid anything would show at once), holding three
// messages with typed attributes, as EventBridge writes a rule target's
// dead letters.
func foreignQueue(t *testing.T) (sqs.Config, *awssqs.Client, string) {
	t.Helper()
	endpoint := awstest.StartFauxqs(t)
	c := sdkClient(endpoint)
	ctx := context.Background()
	out, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("rule-dlq"),
		Attributes: map[string]string{"VisibilityTimeout": "3600"}})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(out.QueueUrl)
	for _, body := range []string{"one", "two", "three"} {
		if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
			MessageAttributes: map[string]types.MessageAttributeValue{
				"ERROR_CODE":     {DataType: aws.String("String"), StringValue: aws.String("SDK_CLIENT_ERROR")},
				"RETRY_ATTEMPTS": {DataType: aws.String("Number"), StringValue: aws.String("3")},
				"BLOB":           {DataType: aws.String("Binary"), BinaryValue: []byte{0x01, 0x02}},
			}}); err != nil {
			t.Fatal(err)
		}
	}
	awsCfg := awstest.AWSConfig(endpoint)
	return sqs.Config{AWSConfig: &awsCfg}, c, url
}

func bodies(msgs []sqs.Received) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Body)
	}
	sort.Strings(out)
	return out
}

// A receive with visibility zero takes nothing: the next receive, by anyone,
// gets the same messages at once. That needs the zero on the wire: the
// SDK's own receive with VisibilityTimeout 0 leaves the field out, and the
// queue's timeout (an hour here) hides what it returned.
func TestQueueReceiveWithZeroVisibilityTakesNothing(t *testing.T) {
	cfg, c, url := foreignQueue(t)
	ctx := context.Background()
	q, err := sqs.OpenQueue(ctx, cfg, "rule-dlq")
	if err != nil {
		t.Fatal(err)
	}
	if q.URL() != url {
		t.Errorf("URL %q, want %q", q.URL(), url)
	}
	for round := 1; round <= 3; round++ {
		got, err := q.Receive(ctx, 10, 0, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if b := bodies(got); len(b) != 3 || b[0] != "one" || b[1] != "three" || b[2] != "two" {
			t.Fatalf("round %d: received %v, want all three again", round, b)
		}
		for _, m := range got {
			if m.Attributes["ERROR_CODE"] != "SDK_CLIENT_ERROR" || m.Attributes["RETRY_ATTEMPTS"] != "3" || m.Attributes["BLOB"] != "\x01\x02" {
				t.Errorf("attributes %v", m.Attributes)
			}
			if m.Receives != round || m.Sent.IsZero() || time.Since(m.Sent) > time.Minute || m.MessageID == "" || m.Receipt == "" {
				t.Errorf("round %d: %+v", round, m)
			}
		}
	}
	// The SDK alone: the zero is not sent, and the receive hides.
	out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 0})
	if err != nil || len(out.Messages) != 3 {
		t.Fatalf("plain SDK receive: %d messages, %v", len(out.Messages), err)
	}
	if got, _ := q.Receive(ctx, 10, 0, time.Second); len(got) != 0 {
		t.Fatalf("after a plain SDK receive with VisibilityTimeout 0, %d messages were still visible: "+
			"the SDK now sends the zero, and sendZeroVisibility can go", len(got))
	}
}

// A receive with a visibility timeout hides what it returns until Release
// (or the timeout); Delete removes it.
func TestQueueHidesReleasesAndDeletes(t *testing.T) {
	cfg, _, url := foreignQueue(t)
	ctx := context.Background()
	q, err := sqs.OpenQueue(ctx, cfg, url) // by URL: no lookup
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Receive(ctx, 2, time.Minute, time.Second)
	if err != nil || len(got) != 2 {
		t.Fatalf("receive 2: %d, %v", len(got), err)
	}
	rest, _ := q.Receive(ctx, 10, time.Minute, time.Second)
	if len(rest) != 1 {
		t.Fatalf("while two are hidden, %d visible, want 1", len(rest))
	}
	if none, _ := q.Receive(ctx, 10, 0, time.Second); len(none) != 0 {
		t.Fatalf("all hidden, yet %d received", len(none))
	}
	if err := q.Delete(ctx, got[0].Receipt); err != nil {
		t.Fatal(err)
	}
	if err := q.Release(ctx, []string{got[1].Receipt, rest[0].Receipt}); err != nil {
		t.Fatal(err)
	}
	back, _ := q.Receive(ctx, 10, 0, time.Second)
	if b := bodies(back); len(b) != 2 || b[0] == got[0].Body || b[1] == got[0].Body {
		t.Fatalf("after deleting %q and releasing the others: %v", got[0].Body, b)
	}
}

// A queue that does not exist is said so, and never created.
func TestOpenQueueNeverCreates(t *testing.T) {
	cfg, c, _ := foreignQueue(t)
	cfg.CreateIfMissing = true
	_, err := sqs.OpenQueue(context.Background(), cfg, "no-such-dlq")
	if !errors.Is(err, sqs.ErrNoQueue) {
		t.Fatalf("open a missing queue: %v, want ErrNoQueue", err)
	}
	if _, err := c.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String("no-such-dlq")}); err == nil {
		t.Fatal("OpenQueue created the queue")
	}
}
