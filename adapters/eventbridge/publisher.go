// Package eventbridge publishes event envelopes to Amazon EventBridge with
// PutEvents.
//
// Each Watermill message is one envelope (publisher.ToMessage): its payload
// is the entry JSON {"EventBusName","Source","DetailType","Detail"}, its UUID
// the event id. Publish sends them in calls of at most 10 entries whose total
// size stays within the entry-size limit (AWS applies the limit to the whole
// request), re-sends only the entries that failed transiently, and reports
// per message what happened through *publisher.BatchError: refused (the
// entry itself is wrong: the relay dead-letters it) or pending (a failure of
// the call or of the whole bus, such as missing permissions: it stays in the
// outbox).
//
// The entry's Time is left unset, so EventBridge stamps the event with the
// time it received it. The domain time of the event is in the Detail
// (metadata.timestamp, full precision); copying it to Time would cost parsing
// bytes that are final, 14 bytes of the size budget, and the sub-second part.
package eventbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/emitd/emitd/adapters/awsconf"
	"github.com/emitd/emitd/publisher"
)

// Limits of PutEvents and the adapter's defaults.
const (
	MaxEntriesPerCall = 10
	// EntryBytesCap is the service's entry-size cap (1 MiB since AWS raised
	// it from 256 KiB); DefaultMaxEntryBytes is the adapter's limit when
	// none is set.
	EntryBytesCap        = 1 << 20
	DefaultMaxEntryBytes = EntryBytesCap
	DefaultMaxAttempts   = 5
	DefaultBaseBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	DefaultHTTPTimeout   = 10 * time.Second
	timeEntrySizeInBytes = 14
)

// Codes of the refusals the adapter makes itself, before sending.
const (
	CodeEntryTooLarge = "EntryTooLarge" // the entry alone is over MaxEntryBytes
	CodeBusMismatch   = "BusMismatch"   // EventBusName differs from the topic
	CodeNotAnEntry    = "NotAnEntry"    // the payload is not an entry JSON
)

// ErrCannotTail is what `emitd tail` says for an EventBridge bus: PutEvents is
// write-only, events reach consumers only through rules and targets.
var ErrCannotTail = errors.New("EventBridge cannot be read back: add a rule that targets an SQS queue " +
	"or CloudWatch Logs and read that (e.g. `emitd tail` on the SQS queue)")

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("eventbridge publisher is closed")

// Config configures the publisher. Zero values take the defaults.
type Config struct {
	// Region overrides AWS_REGION / the shared config ("" = SDK default).
	Region string
	// Endpoint overrides the service endpoint ("" = SDK default, which
	// honours AWS_ENDPOINT_URL_EVENTBRIDGE and AWS_ENDPOINT_URL).
	Endpoint string
	// MaxEntryBytes is the entry-size limit (default 1 MiB = 1048576). AWS
	// applies it to the sum of a request's entries, so it bounds both a single
	// entry and each call.
	MaxEntryBytes int
	// MaxAttempts bounds the attempts for an entry that fails transiently
	// (and the SDK's attempts for a call that fails whole). Default 5.
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the exponential backoff with jitter
	// between attempts. Defaults 100ms and 5s.
	BaseBackoff, MaxBackoff time.Duration
	// HTTPTimeout bounds, each on its own, connecting to the endpoint, the
	// TLS handshake and the wait for a response's headers. The SDK's default
	// client waits for an answer for ever, so an endpoint that accepts the
	// connection and never answers would hang the relay. Default 10s;
	// PutEvents answers in milliseconds.
	HTTPTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = DefaultBaseBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = c.BaseBackoff
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	return c
}

// httpClient is the SDK's default HTTP client with cfg.HTTPTimeout on each
// step where a silent endpoint would otherwise leave a call waiting.
func (c Config) httpClient() *awshttp.BuildableClient {
	t := c.HTTPTimeout
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = t }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = t
			tr.ResponseHeaderTimeout = t
		})
}

// EntryError says why one event was not delivered.
type EntryError struct {
	EventID string
	Bus     string
	Code    string // EventBridge's ErrorCode, or one of the adapter's Code* constants
	Message string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("eventbridge: event %s on bus %q: %s: %s", e.EventID, e.Bus, e.Code, e.Message)
}

// Publisher is a Watermill message.Publisher for EventBridge. It is safe for
// concurrent use.
type Publisher struct {
	client *eventbridge.Client
	cfg    Config
	logger watermill.LoggerAdapter

	ctx    context.Context // cancelled by Close: interrupts calls and backoff
	cancel context.CancelFunc
	mu     sync.RWMutex
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher loads the AWS configuration the standard way (environment,
// shared files, credential chain; AWS_REGION, AWS_ENDPOINT_URL*), then applies
// cfg.Region and cfg.Endpoint.
func NewPublisher(ctx context.Context, cfg Config, logger watermill.LoggerAdapter) (*Publisher, error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	loadOpts := []func(*config.LoadOptions) error{config.WithHTTPClient(cfg.httpClient())}
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("eventbridge: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("eventbridge: %w: set region in the configuration or AWS_REGION", awsconf.ErrNoRegion)
	}
	client := eventbridge.NewFromConfig(awsCfg, func(o *eventbridge.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = cfg.MaxAttempts
			so.MaxBackoff = cfg.MaxBackoff
			so.BaseDelay = cfg.BaseBackoff
		})
	})
	pctx, cancel := context.WithCancel(context.Background())
	return &Publisher{client: client, cfg: cfg, logger: logger, ctx: pctx, cancel: cancel}, nil
}

// CheckBus tells whether the named bus exists (DescribeEventBus). PutEvents
// itself accepts events for a bus that does not exist and drops them, so a
// daemon should check its buses at start.
func (p *Publisher) CheckBus(ctx context.Context, name string) error {
	_, err := p.client.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(name)})
	if err != nil {
		return fmt.Errorf("eventbridge: event bus %q: %w", name, err)
	}
	return nil
}

// Close stops the publisher: a Publish in progress stops waiting and reports
// its undelivered messages as pending. It does not wait for it.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.cancel()
	}
	return nil
}

// item is one message on its way.
type item struct {
	id    string
	entry types.PutEventsRequestEntry
	size  int
}

// outcome collects what happened to a batch.
type outcome struct {
	refused map[string]error
	pending map[string]error
}

func (o *outcome) refuse(id string, err error) {
	if o.refused == nil {
		o.refused = map[string]error{}
	}
	o.refused[id] = err
}

func (o *outcome) pend(id string, err error) {
	if o.pending == nil {
		o.pending = map[string]error{}
	}
	o.pending[id] = err
}

// Publish sends msgs to the bus named topic. It returns nil when every
// message was delivered, else a *publisher.BatchError naming each message
// refused for good or still pending (ErrClosed after Close).
//
// The calls and the waits between them end when the messages' context ends
// (the relay sets it: its stop, the deadline of its shutdown flush), or at
// Close; what was not delivered by then is pending.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	closed := p.closed
	p.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	ctx, done := p.publishContext(msgs)
	defer done()

	var out outcome
	items := make([]item, 0, len(msgs))
	for _, msg := range msgs {
		it, err := p.toItem(topic, msg)
		if err != nil {
			out.refuse(msg.UUID, err)
			p.logger.Error("EventBridge entry refused before sending", err, watermill.LogFields{"event_id": msg.UUID, "bus": topic})
			continue
		}
		items = append(items, it)
	}

	chunks := chunk(items, p.cfg.MaxEntryBytes)
	for i, c := range chunks {
		if err := p.sendChunk(ctx, topic, c, &out); err != nil {
			// A call failed whole (network, 5xx after the SDK's retries,
			// credentials...): the chunks not yet sent are pending too.
			for _, rest := range chunks[i+1:] {
				for _, it := range rest {
					out.pend(it.id, fmt.Errorf("eventbridge: event %s not sent: %w", it.id, err))
				}
			}
			break
		}
	}

	if len(out.refused) == 0 && len(out.pending) == 0 {
		return nil
	}
	return &publisher.BatchError{Refused: out.refused, Pending: out.pending}
}

// publishContext is the context of one Publish: it ends at Close, or as soon
// as the context of any of msgs ends. The relay gives every message of a
// batch the same one; should they differ, stopping early only leaves
// messages pending, which is always safe.
func (p *Publisher) publishContext(msgs []*message.Message) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(p.ctx)
	var stops []func() bool
	seen := map[<-chan struct{}]bool{} // contexts compare by their Done channel, which is always comparable
	for _, m := range msgs {
		mctx := m.Context()
		d := mctx.Done()
		if d == nil || seen[d] {
			continue // context.Background() and its kin never end
		}
		seen[d] = true
		if mctx.Err() != nil { // ended already: do not send a first call
			cancel(context.Cause(mctx))
			break
		}
		stops = append(stops, context.AfterFunc(mctx, func() { cancel(context.Cause(mctx)) }))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel(nil)
	}
}

// stopped is why ctx (a publishContext) ended: ErrClosed after Close, else
// the messages' context's own cause (context.Canceled, DeadlineExceeded).
func (p *Publisher) stopped(ctx context.Context) error {
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	return fmt.Errorf("eventbridge: publish stopped: %w", context.Cause(ctx))
}

func (p *Publisher) toItem(topic string, msg *message.Message) (item, error) {
	var entry publisher.Entry // the envelope, and resources if it names any
	if err := json.Unmarshal(msg.Payload, &entry); err != nil {
		return item{}, &EntryError{EventID: msg.UUID, Bus: topic, Code: CodeNotAnEntry, Message: "payload is not an entry JSON: " + err.Error()}
	}
	env := entry.Envelope
	if env.EventBusName != topic {
		return item{}, &EntryError{EventID: msg.UUID, Bus: topic, Code: CodeBusMismatch,
			Message: fmt.Sprintf("entry names bus %q but is published to %q", env.EventBusName, topic)}
	}
	e := types.PutEventsRequestEntry{
		EventBusName: aws.String(env.EventBusName),
		Source:       aws.String(env.Source),
		DetailType:   aws.String(env.DetailType),
		Detail:       aws.String(env.Detail),
		Resources:    entry.Resources,
	}
	size := EntrySize(e)
	if size > p.cfg.MaxEntryBytes {
		return item{}, &EntryError{EventID: msg.UUID, Bus: topic, Code: CodeEntryTooLarge,
			Message: fmt.Sprintf("entry is %d bytes, over the %d-byte limit", size, p.cfg.MaxEntryBytes)}
	}
	return item{id: msg.UUID, entry: e, size: size}, nil
}

// EntrySize is the size of a PutEvents entry as EventBridge computes it: 14
// bytes for Time if set, plus the UTF-8 bytes of Source, DetailType, Detail
// and each Resource.
func EntrySize(e types.PutEventsRequestEntry) int {
	n := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail))
	if e.Time != nil {
		n += timeEntrySizeInBytes
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// chunk groups items, in order, into calls of at most 10 entries and at most
// limit bytes.
func chunk(items []item, limit int) [][]item {
	var chunks [][]item
	var cur []item
	size := 0
	for _, it := range items {
		if len(cur) == MaxEntriesPerCall || (len(cur) > 0 && size+it.size > limit) {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, it)
		size += it.size
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// sendChunk delivers one chunk, re-sending only the entries that failed
// transiently, up to MaxAttempts, and records in out every entry it did not
// deliver. It returns an error when a call failed whole in a way that would
// fail the next calls too (the caller then stops and leaves the rest pending).
func (p *Publisher) sendChunk(ctx context.Context, bus string, todo []item, out *outcome) error {
	pendAll := func(items []item, err error) {
		for _, it := range items {
			out.pend(it.id, err)
		}
	}
	for attempt := 1; len(todo) > 0; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, p.backoff(attempt-1)); err != nil {
				err = p.stopped(ctx)
				pendAll(todo, err)
				return err
			}
		}
		if ctx.Err() != nil {
			err := p.stopped(ctx)
			pendAll(todo, err)
			return err
		}
		entries := make([]types.PutEventsRequestEntry, len(todo))
		for i, it := range todo {
			entries[i] = it.entry
		}
		resp, err := p.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		if err != nil && ctx.Err() != nil {
			// Stopped, not failed: the relay's stop or flush deadline, or Close.
			err = p.stopped(ctx)
			p.logger.Info("EventBridge PutEvents call stopped, its entries left pending",
				watermill.LogFields{"bus": bus, "entries": len(todo), "reason": err.Error()})
			pendAll(todo, err)
			return err
		}
		if err != nil && isRequestValidation(err) {
			if len(todo) == 1 {
				eerr := &EntryError{EventID: todo[0].id, Bus: bus, Code: apiCode(err), Message: apiMessage(err)}
				out.refuse(todo[0].id, eerr)
				p.logger.Error("EventBridge refused an entry", eerr, watermill.LogFields{"event_id": todo[0].id, "bus": bus})
				return nil
			}
			// AWS refused the request as a whole for what it holds (e.g. its
			// size limit is lower than the configured one): send each entry
			// alone, so that only the guilty one is refused.
			p.logger.Info("EventBridge refused a call as invalid, sending its entries one by one",
				watermill.LogFields{"bus": bus, "entries": len(todo), "error": err.Error()})
			for i, it := range todo {
				if err := p.sendChunk(ctx, bus, []item{it}, out); err != nil {
					pendAll(todo[i+1:], err)
					return err
				}
			}
			return nil
		}
		// Any other failure of the whole call (network, 5xx after the SDK's
		// retries, throttling, authorisation, a missing bus) is the bus's or
		// the caller's, never one entry's: pending, as is what follows.
		if err != nil {
			err = fmt.Errorf("eventbridge: PutEvents: %w", err)
			p.logger.Error("EventBridge PutEvents call failed", err, watermill.LogFields{"bus": bus, "entries": len(todo)})
			pendAll(todo, err)
			return err
		}
		if len(resp.Entries) != len(todo) {
			err := fmt.Errorf("eventbridge: PutEvents answered %d results for %d entries", len(resp.Entries), len(todo))
			pendAll(todo, err)
			return err
		}
		var retry []item
		var busWide []*EntryError
		for i, r := range resp.Entries {
			it := todo[i]
			if r.ErrorCode == nil && r.EventId != nil {
				continue
			}
			eerr := &EntryError{EventID: it.id, Bus: bus, Code: aws.ToString(r.ErrorCode), Message: aws.ToString(r.ErrorMessage)}
			if eerr.Code == "" { // neither an EventId nor an ErrorCode: unknown, try again
				eerr.Code, eerr.Message = "InternalFailure", "PutEvents answered no EventId and no ErrorCode"
			}
			switch {
			case retryableEntryCode(eerr.Code) && attempt < p.cfg.MaxAttempts:
				retry = append(retry, it)
			case retryableEntryCode(eerr.Code):
				out.pend(it.id, fmt.Errorf("%w (after %d attempts)", eerr, attempt))
				p.logger.Info("EventBridge entry still failing, left pending", watermill.LogFields{"event_id": it.id, "bus": bus, "code": eerr.Code, "attempts": attempt})
			case busWideEntryCode(eerr.Code):
				// Not this entry's fault: the bus or the caller's rights. It
				// stays in the outbox until an operator fixes them, and is
				// not tried again in this call.
				out.pend(it.id, eerr)
				busWide = append(busWide, eerr)
			default:
				out.refuse(it.id, eerr)
				p.logger.Error("EventBridge refused an entry", eerr, watermill.LogFields{"event_id": it.id, "bus": bus, "code": eerr.Code})
			}
		}
		if len(busWide) > 0 {
			p.logger.Error("EventBridge refused entries for a reason of the whole bus (permissions, or the bus is missing); left pending",
				busWide[0], watermill.LogFields{"bus": bus, "entries": len(busWide), "code": busWide[0].Code})
		}
		if len(retry) > 0 {
			p.logger.Debug("EventBridge entries failed transiently, re-sending them", watermill.LogFields{"bus": bus, "entries": len(retry), "attempt": attempt})
		}
		todo = retry
	}
	return nil
}

// backoff is the wait before retry n (1-based): BaseBackoff*2^(n-1), capped at
// MaxBackoff, with equal jitter (half fixed, half random).
func (p *Publisher) backoff(n int) time.Duration {
	d := p.cfg.MaxBackoff
	if n < 30 {
		if e := p.cfg.BaseBackoff << (n - 1); e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// An entry's ErrorCode falls in one of three classes:
//   - transient (retryableEntryCode): another attempt can fix it; sent
//     again with backoff, then left pending;
//   - bus-wide (busWideEntryCode): it says nothing about the entry and
//     everything about the bus or the caller (permissions, a bus that does
//     not exist): every entry would fail alike, so dead-lettering them one by
//     one would empty the outbox into the DLQ. Pending at once: the events
//     wait until an operator fixes the cause;
//   - anything else, unknown codes included (InvalidArgument,
//     MalformedDetail, ...): the entry itself is wrong and no attempt will
//     change that. Refused, so a poison entry cannot block the outbox; it
//     goes to the DLQ, from which it can be replayed.
// Codes are the service's ErrorCode values, the only form entry errors
// take: there is no SDK type for them.

// retryableEntryCode tells the entry error codes that another attempt can
// fix. EventBridge documents InternalFailure and ThrottlingException as the
// retryable ones.
func retryableEntryCode(code string) bool {
	switch code {
	case "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
		"InternalFailure", "InternalException", "InternalError", "ServiceUnavailable", "ServiceUnavailableException",
		"KMSThrottlingException":
		return true
	}
	return false
}

// busWideEntryCode tells the codes of failures of the whole bus: missing
// permissions of any kind (an IAM policy, the bus's resource policy, a
// condition on the source or detail type, credentials), the bus's KMS key,
// and a bus that does not exist.
func busWideEntryCode(code string) bool {
	switch code {
	case "AccessDeniedException", "NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException",
		"ResourceNotFoundException", "UnrecognizedClientException", "InvalidClientTokenId",
		"ExpiredTokenException", "ExpiredToken", "InvalidSignatureException", "SignatureDoesNotMatch",
		"MissingAuthenticationTokenException", "IncompleteSignatureException", "AuthFailure", "OptInRequired":
		return true
	}
	// Authorisation codes not listed share these words; KMS* is the bus's key.
	return strings.HasPrefix(code, "NotAuthorized") || strings.Contains(code, "AccessDenied") ||
		strings.Contains(code, "Unauthorized") || strings.Contains(code, "Forbidden") ||
		strings.HasPrefix(code, "KMS") || strings.HasPrefix(code, "Kms")
}

// isRequestValidation tells a whole-call 400 ValidationException: the request
// content is wrong (too many entries, total size over the limit), not the
// credentials, the network or the service's health.
func isRequestValidation(err error) bool {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
		return false
	}
	return apiCode(err) == "ValidationException"
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return err.Error()
}
