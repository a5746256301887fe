package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/emitd/emitd/publisher"
)

// SQS's batch limits.
const (
	// MaxBatchEntries is how many messages one SendMessageBatch,
	// ReceiveMessage or DeleteMessageBatch call takes.
	MaxBatchEntries = 10
	// MaxBatchBytes bounds the bodies and attributes of one
	// SendMessageBatch (SQS's 256 KiB; a single larger message is sent on
	// its own, and SQS says whether it takes it).
	MaxBatchBytes = 256 << 10
	// DefaultMaxInFlight bounds the messages a subscription has received
	// and not yet seen acknowledged.
	DefaultMaxInFlight = 1024
)

// queues resolves topics (queue names or URLs) to queue URLs, once each,
// creating missing queues when the configuration says so.
type queues struct {
	client *sqs.Client
	cfg    Config

	mu   sync.Mutex
	urls map[string]string
}

func newQueues(ctx context.Context, cfg Config) (*queues, error) {
	awsCfg, optFns, err := cfg.load(ctx)
	if err != nil {
		return nil, err
	}
	return &queues{client: sqs.NewFromConfig(awsCfg, optFns...), cfg: cfg, urls: map[string]string{}}, nil
}

// ErrNoQueue: the queue does not exist and Config.CreateIfMissing is off.
var ErrNoQueue = errors.New("sqs: queue does not exist")

func (q *queues) url(ctx context.Context, topic string) (string, error) {
	name := queueName(topic)
	if name == "" {
		return "", fmt.Errorf("sqs: topic %q names no queue", topic)
	}
	if q.cfg.FIFO && !strings.HasSuffix(name, FIFOSuffix) {
		return "", fmt.Errorf("sqs: queue %q is not a FIFO queue (name must end in %s) and Config.FIFO is set", name, FIFOSuffix)
	}
	if IsQueueURL(topic) {
		return topic, nil // assumed to exist: no call
	}
	q.mu.Lock()
	u, ok := q.urls[topic]
	q.mu.Unlock()
	if ok {
		return u, nil
	}
	out, err := q.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	var missing *types.QueueDoesNotExist
	switch {
	case err == nil:
		u = aws.ToString(out.QueueUrl)
	case errors.As(err, &missing) && q.cfg.CreateIfMissing:
		in, cerr := createQueueInput(ctx, wsqs.QueueName(name), q.cfg.queueAttributes())
		if cerr != nil {
			return "", cerr
		}
		created, cerr := q.client.CreateQueue(ctx, in)
		if cerr != nil {
			return "", fmt.Errorf("sqs: create queue %q: %w", name, cerr)
		}
		u = aws.ToString(created.QueueUrl)
	case errors.As(err, &missing):
		return "", fmt.Errorf("%w: %q: %w", ErrNoQueue, name, err)
	default:
		return "", fmt.Errorf("sqs: queue %q: %w", name, err)
	}
	q.mu.Lock()
	q.urls[topic] = u
	q.mu.Unlock()
	return u, nil
}

// Publisher publishes to SQS queues. Topic: a queue name or a queue URL.
type Publisher struct {
	q *queues
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher builds a publisher. The context only bounds loading the AWS
// configuration (credentials are resolved lazily, on first use).
func NewPublisher(ctx context.Context, cfg Config) (*Publisher, error) {
	q, err := newQueues(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Publisher{q: q}, nil
}

// Publish sends the messages in order, in SendMessageBatch calls of up to
// ten (watermill-aws sends one call per message); see PublishBatches for
// what fails how.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	if len(messages) == 0 {
		return nil
	}
	ctx := messages[0].Context()
	url, err := p.q.url(ctx, topic)
	if err != nil {
		return err
	}
	fifo := IsFIFO(url)
	return PublishBatches(topic, messages, IsPermanent, func(chunk []*message.Message) (map[int]EntryFailure, error) {
		entries := make([]types.SendMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			sm, err := Marshaler{}.Marshal(m)
			if err != nil {
				return nil, err
			}
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: sm.Body, MessageAttributes: sm.MessageAttributes}
			if fifo {
				entries[i].MessageGroupId = aws.String(sm.Attributes[sysGroupID])
				entries[i].MessageDeduplicationId = aws.String(sm.Attributes[sysDedupID])
			}
		}
		out, err := p.q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return nil, err
		}
		failed := map[int]EntryFailure{}
		for _, f := range out.Failed {
			i, _ := strconv.Atoi(aws.ToString(f.Id))
			failed[i] = EntryFailure{Err: fmt.Errorf("sqs: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message)), SenderFault: f.SenderFault}
		}
		return failed, nil
	})
}

// EntryFailure is one entry of a batch call that failed: through the
// sender's fault (the message is refused for good) or the service's (it
// may pass later).
type EntryFailure struct {
	Err         error
	SenderFault bool
}

// PublishBatches publishes messages, in order, in chunks of at most
// MaxBatchEntries and MaxBatchBytes, each through one call of send (SQS
// SendMessageBatch, SNS PublishBatch), which returns the failed entries by
// their index in the chunk. Shared by the SQS and SNS publishers.
//
// A message whose entry fails through the sender's fault is refused and
// the others still go. An entry that fails through the service's fault,
// and every message of a call that fails whole (permanent says a lone
// message's call failed for good) or is not sent after that, is pending:
// nothing is sent out of order behind a message that waits. When every
// message is pending the result is the plain error (the queue or topic,
// not a message, failed); otherwise a *publisher.BatchError.
func PublishBatches(topic string, messages []*message.Message, permanent func(error) bool,
	send func(chunk []*message.Message) (map[int]EntryFailure, error)) error {
	be := publisher.BatchError{Refused: map[string]error{}, Pending: map[string]error{}}
	var first error
	pend := func(msgs []*message.Message, err error) {
		for _, m := range msgs {
			if be.Refused[m.UUID] == nil && be.Pending[m.UUID] == nil {
				be.Pending[m.UUID] = err
			}
		}
		if first == nil {
			first = err
		}
	}
	chunks := sendChunks(messages)
	for ci, chunk := range chunks {
		failed, err := send(chunk)
		if err != nil {
			if len(chunk) == 1 && permanent(err) {
				be.Refused[chunk[0].UUID] = err
				continue
			}
			pend(chunk, err)
			for _, rest := range chunks[ci+1:] {
				pend(rest, fmt.Errorf("not sent: an earlier call failed: %w", err))
			}
			break
		}
		stop := false
		for i, m := range chunk {
			f, ok := failed[i]
			switch {
			case !ok:
			case f.SenderFault:
				be.Refused[m.UUID] = f.Err
			default:
				pend([]*message.Message{m}, f.Err)
				stop = true
			}
		}
		if stop {
			for _, rest := range chunks[ci+1:] {
				pend(rest, errors.New("not sent: an earlier message failed"))
			}
			break
		}
	}
	switch {
	case len(be.Refused) == 0 && len(be.Pending) == 0:
		return nil
	case len(be.Refused) == 0 && len(be.Pending) == len(messages):
		return fmt.Errorf("%s: %w", topic, first)
	default:
		return fmt.Errorf("%s: %w (first failure: %v)", topic, &be, first)
	}
}

// sendChunks groups messages, in order, into calls of at most
// MaxBatchEntries and MaxBatchBytes.
func sendChunks(msgs []*message.Message) [][]*message.Message {
	var out [][]*message.Message
	var cur []*message.Message
	size := 0
	for _, m := range msgs {
		n := len(m.Payload)
		for k, v := range m.Metadata {
			n += len(k) + len(v)
		}
		if len(cur) == MaxBatchEntries || (len(cur) > 0 && size+n > MaxBatchBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, m)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Close releases nothing: the SDK client holds no resources to free.
func (p *Publisher) Close() error { return nil }

// IsPermanent says whether SQS refused a message for good: sending the same
// message again cannot succeed.
func IsPermanent(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	// The JSON protocol's codes, or the query protocol's ones that SQS (and
	// fauxqs) may send for compatibility: AWS.SimpleQueueService.<code>.
	switch strings.TrimPrefix(ae.ErrorCode(), "AWS.SimpleQueueService.") {
	case "InvalidMessageContents", "InvalidAttributeName", "InvalidAttributeValue",
		"InvalidParameterValue", "MissingParameter", "UnsupportedOperation", "BatchRequestTooLong":
		return true
	}
	return false
}

// Subscriber receives from SQS queues. Topic: a queue name or a queue URL.
// Each Subscribe runs Config.ConsumeWorkers receive loops, each receiving
// up to ten messages a call, and keeps at most Config.MaxInFlight received
// and not yet acknowledged. An Ack deletes the message (deletes are sent in
// DeleteMessageBatch calls); a Nack makes it visible again at once, for
// redelivery.
type Subscriber struct {
	q *queues

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	loops   sync.WaitGroup
	open    sync.WaitGroup // messages delivered and not yet settled
	deleter []*deleter
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber builds a subscriber.
func NewSubscriber(ctx context.Context, cfg Config) (*Subscriber, error) {
	q, err := newQueues(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Subscriber{q: q, closing: make(chan struct{})}, nil
}

// SubscribeInitialize resolves the queue (creating it when the
// configuration says so).
func (s *Subscriber) SubscribeInitialize(topic string) error {
	return s.SubscribeInitializeWithContext(context.Background(), topic)
}

// SubscribeInitializeWithContext is SubscribeInitialize with a context.
func (s *Subscriber) SubscribeInitializeWithContext(ctx context.Context, topic string) error {
	_, err := s.q.url(ctx, topic)
	return err
}

func (c Config) waitSeconds() int32 {
	wait := c.ReceiveWaitTime
	if wait <= 0 || wait > 20*time.Second {
		wait = 20 * time.Second
	}
	return max(1, int32(wait.Round(time.Second)/time.Second))
}

// Subscribe starts receiving from the queue; the channel closes when the
// subscriber closes or ctx ends.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	url, err := s.q.url(ctx, topic)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("sqs subscriber: closed")
	}
	cfg := s.q.cfg
	inFlight := cfg.MaxInFlight
	if inFlight <= 0 {
		inFlight = DefaultMaxInFlight
	}
	window := make(chan struct{}, inFlight)
	del := newDeleter(s.q.client, url, cfg.logger())
	s.deleter = append(s.deleter, del)
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	workers := max(cfg.ConsumeWorkers, 1)
	var loops sync.WaitGroup
	loops.Add(workers)
	s.loops.Add(workers + 1)
	go func() {
		defer s.loops.Done()
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
		cancel()
		loops.Wait()
		close(out)
	}()
	for range workers {
		go func() {
			defer s.loops.Done()
			defer loops.Done()
			s.receive(ctx, url, window, del, out)
		}()
	}
	return out, nil
}

// receive is one receive loop.
func (s *Subscriber) receive(ctx context.Context, url string, window chan struct{}, del *deleter, out chan<- *message.Message) {
	cfg := s.q.cfg
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		// Take as many places in the window as one call may fill: at
		// least one (waiting for it), up to ten (if free now).
		n := 0
		select {
		case window <- struct{}{}:
			n = 1
		case <-ctx.Done():
			return
		}
	more:
		for n < MaxBatchEntries {
			select {
			case window <- struct{}{}:
				n++
			default:
				break more
			}
		}
		resp, err := s.q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(url),
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             cfg.waitSeconds(),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		var got []types.Message
		if err == nil {
			got = resp.Messages
		}
		for range n - len(got) {
			<-window
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			cfg.logger().Error("sqs: receive failed; retrying", err, watermill.LogFields{"queue": url, "retry_in": backoff.String()})
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		for i := range got {
			m := got[i]
			msg, err := Marshaler{}.Unmarshal(&m)
			if err != nil {
				// Not ours to read (attributes we cannot decode): delivered
				// with the body alone rather than redelivered for ever.
				msg = message.NewMessage(aws.ToString(m.MessageId), []byte(aws.ToString(m.Body)))
			}
			receipt := m.ReceiptHandle
			msg.SetContext(publisher.WithInProgress(ctx, func() { s.extend(url, receipt) }))
			s.open.Add(1)
			go s.settle(url, receipt, msg, window, del)
			select {
			case out <- msg:
			case <-ctx.Done():
				// Not handed out: give it (its settle does) and the rest
				// back at once.
				msg.Nack()
				for _, rest := range got[i+1:] {
					s.release(url, rest.ReceiptHandle)
					<-window
				}
				return
			}
		}
	}
}

// settle deletes an acked message (in a batch) and makes a nacked one
// visible again.
func (s *Subscriber) settle(url string, receipt *string, msg *message.Message, window chan struct{}, del *deleter) {
	defer s.open.Done()
	defer func() { <-window }()
	select {
	case <-msg.Acked():
		del.delete(receipt)
	case <-msg.Nacked():
		s.release(url, receipt)
	case <-s.closing:
		select {
		case <-msg.Acked():
			del.delete(receipt)
		default:
			s.release(url, receipt)
		}
	}
}

// release makes a message visible again at once (rather than after its
// visibility timeout), for the next receiver.
func (s *Subscriber) release(url string, receipt *string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: receipt, VisibilityTimeout: 0,
	}); err != nil {
		s.q.cfg.logger().Info("sqs: cannot make a message visible again; it comes back after its visibility timeout",
			watermill.LogFields{"queue": url, "error": err.Error()})
	}
}

// extend hides a message that is still being worked on for another
// visibility timeout (the queue's, as configured; SQS's 30 s default).
func (s *Subscriber) extend(url string, receipt *string) {
	v := s.q.cfg.VisibilityTimeout
	if v <= 0 {
		v = DefaultVisibilityTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = s.q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: receipt, VisibilityTimeout: int32(v / time.Second),
	})
}

// Close stops receiving, gives back what was received and not acked, sends
// the deletes it holds, and returns.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	dels := s.deleter
	s.mu.Unlock()
	s.loops.Wait()
	s.open.Wait()
	var errs []error
	for _, d := range dels {
		errs = append(errs, d.close())
	}
	return errors.Join(errs...)
}

// deleter sends the deletes of acked messages in DeleteMessageBatch calls
// of up to ten, as soon as ten are waiting or shortly after the first.
type deleter struct {
	client *sqs.Client
	url    string
	logger watermill.LoggerAdapter

	mu      sync.Mutex
	pending []*string
	timer   *time.Timer
	flights sync.WaitGroup
}

// deleteDelay is how long an ack may wait for others to share its call.
const deleteDelay = 5 * time.Millisecond

func newDeleter(c *sqs.Client, url string, logger watermill.LoggerAdapter) *deleter {
	return &deleter{client: c, url: url, logger: logger}
}

func (d *deleter) delete(receipt *string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = append(d.pending, receipt)
	switch {
	case len(d.pending) >= MaxBatchEntries:
		d.flushLocked()
	case d.timer == nil:
		d.timer = time.AfterFunc(deleteDelay, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.timer = nil
			d.flushLocked()
		})
	}
}

func (d *deleter) flushLocked() {
	for len(d.pending) > 0 {
		n := min(len(d.pending), MaxBatchEntries)
		batch := d.pending[:n:n]
		d.pending = d.pending[n:]
		d.flights.Add(1)
		go func() {
			defer d.flights.Done()
			d.send(batch)
		}()
	}
}

func (d *deleter) send(receipts []*string) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(receipts))
	for i, r := range receipts {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: r}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := d.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(d.url), Entries: entries})
	if err != nil {
		d.logger.Error("sqs: delete of acknowledged messages failed; they come back after their visibility timeout (processed once: their command ids are recorded)",
			err, watermill.LogFields{"queue": d.url, "messages": len(receipts)})
		return
	}
	if len(out.Failed) > 0 {
		d.logger.Error("sqs: some deletes failed; those messages come back after their visibility timeout",
			fmt.Errorf("%s: %s", aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message)),
			watermill.LogFields{"queue": d.url, "failed": len(out.Failed)})
	}
}

// close sends what waits and waits for the calls in flight.
func (d *deleter) close() error {
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.flushLocked()
	d.mu.Unlock()
	d.flights.Wait()
	return nil
}
