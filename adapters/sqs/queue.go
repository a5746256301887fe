package sqs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Queue reads a queue that emitd does not own, as an operator does, such as
// the dead-letter queue of an EventBridge rule target or of an SNS
// subscription (`emitd dlq list --from-queue`, `emitd replay --from-queue`).
// Unlike Subscriber it hands out what SQS says of each message (when it was
// sent, how often it was received), and each receive says how long it hides
// what it returns: zero hides nothing, so a listing takes nothing away from
// the queue's other readers.
type Queue struct {
	client *sqs.Client
	url    string
}

// OpenQueue resolves topic (a queue name, with sqs:GetQueueUrl, or a queue
// URL, taken as it is) and never creates it: a queue that does not exist is
// ErrNoQueue, whatever cfg.CreateIfMissing says.
func OpenQueue(ctx context.Context, cfg Config, topic string) (*Queue, error) {
	cfg.CreateIfMissing = false
	cfg.FIFO = false // a queue of someone else's, of whatever kind it is
	q, err := newQueues(ctx, cfg)
	if err != nil {
		return nil, err
	}
	url, err := q.url(ctx, topic)
	if err != nil {
		return nil, err
	}
	return &Queue{client: q.client, url: url}, nil
}

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

// Received is one message as a receive returned it.
type Received struct {
	MessageID string
	// Receipt identifies this receive of the message: Delete and Release
	// take it.
	Receipt string
	Body    string
	// Attributes are the message attributes: String and Number values as
	// their text, Binary ones as their bytes.
	Attributes map[string]string
	// Sent is when the message entered the queue (SentTimestamp).
	Sent time.Time
	// Receives is how often the message was received, this receive
	// included (ApproximateReceiveCount).
	Receives int
}

// Receive returns up to n messages (at most 10), waiting up to wait
// (long polling, at most 20 s) for the first; each is hidden from the
// queue's other receivers for visibility. A visibility of zero hides
// nothing: the messages stay where they are, as if never received (but
// for their receive count, which SQS raises on every receive, and which a
// redrive policy on this queue itself would count).
func (q *Queue) Receive(ctx context.Context, n int, visibility, wait time.Duration) ([]Received, error) {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:              aws.String(q.url),
		MaxNumberOfMessages:   int32(min(max(n, 1), MaxBatchEntries)),
		WaitTimeSeconds:       int32(min(20*time.Second, max0(wait)).Round(time.Second) / time.Second),
		VisibilityTimeout:     int32(max0(visibility).Round(time.Second) / time.Second),
		MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameSentTimestamp,
			types.MessageSystemAttributeNameApproximateReceiveCount,
		},
	}
	var opts []func(*sqs.Options)
	if in.VisibilityTimeout == 0 {
		opts = append(opts, func(o *sqs.Options) { o.APIOptions = append(o.APIOptions, sendZeroVisibility) })
	}
	out, err := q.client.ReceiveMessage(ctx, in, opts...)
	if err != nil {
		return nil, fmt.Errorf("sqs: receive from %s: %w", q.url, err)
	}
	msgs := make([]Received, 0, len(out.Messages))
	for _, m := range out.Messages {
		r := Received{MessageID: aws.ToString(m.MessageId), Receipt: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Attributes: make(map[string]string, len(m.MessageAttributes))}
		for k, v := range m.MessageAttributes {
			switch {
			case v.StringValue != nil:
				r.Attributes[k] = *v.StringValue
			case v.BinaryValue != nil:
				r.Attributes[k] = string(v.BinaryValue)
			}
		}
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
			r.Sent = time.UnixMilli(ms).UTC()
		}
		r.Receives, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		msgs = append(msgs, r)
	}
	return msgs, nil
}

// Delete removes the message received with receipt.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(receipt)}); err != nil {
		return fmt.Errorf("sqs: delete from %s: %w", q.url, err)
	}
	return nil
}

// Release makes the messages received with these receipts visible again at
// once, rather than when their visibility timeout ends
// (ChangeMessageVisibilityBatch, ten at a time). A message not released
// comes back by itself when its visibility timeout ends.
func (q *Queue) Release(ctx context.Context, receipts []string) error {
	var errs []error
	for len(receipts) > 0 {
		n := min(len(receipts), MaxBatchEntries)
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, n)
		for i, r := range receipts[:n] {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r), VisibilityTimeout: 0}
		}
		receipts = receipts[n:]
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sqs: make messages of %s visible again: %w", q.url, errors.Join(errs...))
	}
	return nil
}

// sendZeroVisibility writes "VisibilityTimeout": 0 into a ReceiveMessage
// request. SQS tells a zero (what is received stays visible) from no value
// (the queue's visibility timeout, 30 s unless set), but the SDK cannot:
// its VisibilityTimeout is a plain int32, and it leaves a zero out of the
// request, so a receive meant to take nothing would hide every message it
// shows. This runs after the SDK's serializer, before the request is hashed
// and signed, and adds the zero to the JSON body.
func sendZeroVisibility(stack *middleware.Stack) error {
	return stack.Serialize.Add(middleware.SerializeMiddlewareFunc("emitd.ZeroVisibilityTimeout",
		func(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (middleware.SerializeOutput, middleware.Metadata, error) {
			req, ok := in.Request.(*smithyhttp.Request)
			if !ok || req.GetStream() == nil {
				return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("sqs: zero visibility: unexpected request %T", in.Request)
			}
			body, err := io.ReadAll(req.GetStream())
			if err != nil {
				return middleware.SerializeOutput{}, middleware.Metadata{}, err
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
				return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("sqs: zero visibility: the request body is not a JSON object (%v)", err)
			}
			fields["VisibilityTimeout"] = json.RawMessage("0")
			if body, err = json.Marshal(fields); err != nil {
				return middleware.SerializeOutput{}, middleware.Metadata{}, err
			}
			if in.Request, err = req.SetStream(bytes.NewReader(body)); err != nil {
				return middleware.SerializeOutput{}, middleware.Metadata{}, err
			}
			return next.HandleSerialize(ctx, in)
		}), middleware.After)
}

func max0(d time.Duration) time.Duration { return max(d, 0) }
