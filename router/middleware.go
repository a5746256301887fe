package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// RetryPolicy bounds retries of a lone command that keeps failing, by count
// and by time. MaxElapsed bounds the whole stay of a message, from the
// moment it was taken from the broker: no retry starts that could not end
// within it. It must stay below the broker's redelivery deadline (NATS
// AckWait, SQS visibility timeout), or the broker hands the message to
// someone else meanwhile. A store outage is not bound by it: commands wait
// for the store (see Pipeline).
type RetryPolicy struct {
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	MaxElapsed      time.Duration
}

// delay is the exponential backoff for retry n (1-based) with jitter in
// [d/2, d], so that instances retrying the same store do not stampede.
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.InitialInterval << (max(n, 1) - 1)
	if d <= 0 || d > p.MaxInterval {
		d = p.MaxInterval
	}
	return d/2 + rand.N(d/2+1)
}

// PoisonQueue sends the messages the pipeline dead-lettered to the poison
// queue. The decision is already committed (the sender's outcome with it);
// this only moves the bytes. A dead letter the poison topic cannot take (too
// large for the broker with its poison context, or the broker down) is kept
// whole in the store instead, where `emitd dlq` finds it like any other.
// Only when both fail is the message left for redelivery, after a backoff
// that grows with each failed delivery, so that a failure to poison never
// becomes a hot loop; it is logged loudly once, then summarised.
type PoisonQueue struct {
	Publisher message.Publisher
	Topic     string
	Store     publisher.DeadLetterStore
	Instance  string
	Retry     RetryPolicy
	Timeout   time.Duration // bounds each publish and store attempt
	Stopping  <-chan struct{}
	Stats     *Stats
	Logger    watermill.LoggerAdapter

	failing *failing
}

// NewPoisonQueue fills in what PoisonQueue keeps between messages.
func NewPoisonQueue(pq PoisonQueue) *PoisonQueue {
	pq.failing = &failing{attempts: map[string]int{}}
	if pq.Logger == nil {
		pq.Logger = watermill.NopLogger{}
	}
	if pq.Timeout <= 0 {
		pq.Timeout = 10 * time.Second
	}
	return &pq
}

// Middleware implements message.HandlerMiddleware.
func (pq *PoisonQueue) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		var dl *DeadLetterError
		if !errors.As(err, &dl) {
			return out, err
		}
		where, perr := pq.deadLetter(msg, dl)
		if perr != nil {
			n := pq.failing.fail(msg.UUID, perr, pq.Logger)
			t := time.NewTimer(pq.Retry.delay(n))
			select {
			case <-t.C:
			case <-pq.Stopping:
			}
			t.Stop()
			return nil, fmt.Errorf("dead letter not stored anywhere yet; left for redelivery: %w", perr)
		}
		pq.failing.succeed(msg.UUID)
		var typ domain.CommandType
		took := time.Duration(0)
		if it := itemOf(msg); it != nil {
			typ, took = it.cmd.Type, time.Since(it.received)
		}
		pq.Stats.deadLettered(typ, dl.Code, took)
		pq.Logger.Info("command dead-lettered", watermill.LogFields{
			"message_uuid": Clip(msg.UUID), "code": dl.Code, "class": dl.Class, "reason": dl.Reason, "kept_in": where})
		return nil, nil
	}
}

// deadLetter publishes the dead letter to the poison topic, or keeps it in
// the store, and says where it went.
func (pq *PoisonQueue) deadLetter(msg *message.Message, dl *DeadLetterError) (string, error) {
	m := pq.message(msg, dl)
	ctx, cancel := context.WithTimeout(context.Background(), pq.Timeout)
	defer cancel()
	m.SetContext(ctx)
	err := pq.Publisher.Publish(pq.Topic, m)
	if err == nil {
		return pq.Topic, nil
	}
	if pq.Store == nil {
		return "", err
	}
	sctx, scancel := context.WithTimeout(context.Background(), pq.Timeout)
	defer scancel()
	if serr := pq.Store.AddDeadLetters(sctx, []publisher.DeadLetter{publisher.CommandDeadLetter(m)}); serr != nil {
		return "", fmt.Errorf("poison queue %q: %w; store: %w", pq.Topic, err, serr)
	}
	pq.failing.kept(err, pq.Logger)
	return "store", nil
}

// message is the dead letter of msg.
func (pq *PoisonQueue) message(msg *message.Message, dl *DeadLetterError) *message.Message {
	return DeadLetterMessage(msg, dl, pq.Instance)
}

// DeadLetterMessage is the dead letter of msg: the original payload and
// metadata, byte for byte, plus the poison context (reason, class, topic,
// handler, attempts, failure times, instance, payload digest, replays).
func DeadLetterMessage(msg *message.Message, dl *DeadLetterError, instance string) *message.Message {
	id := msg.UUID
	if id == "" { // e.g. a plain NATS client's message: give each dead letter its own id
		id = watermill.NewUUID()
	}
	m := message.NewMessage(id, msg.Payload)
	for k, v := range msg.Metadata {
		m.Metadata.Set(k, v)
	}
	first, last := dl.First, dl.Last
	if first.IsZero() {
		first = time.Now()
	}
	if last.IsZero() {
		last = first
	}
	attempts := max(dl.Attempts, 1)
	m.Metadata.Set(publisher.DLQReason, dl.Reason)
	m.Metadata.Set(publisher.DLQCode, dl.Code)
	m.Metadata.Set(publisher.DLQClass, string(dl.Class))
	m.Metadata.Set(publisher.DLQTopic, message.SubscribeTopicFromCtx(msg.Context()))
	m.Metadata.Set(publisher.DLQHandler, message.HandlerNameFromCtx(msg.Context()))
	m.Metadata.Set(publisher.DLQAttempts, strconv.Itoa(attempts))
	m.Metadata.Set(publisher.DLQFirstFailure, first.UTC().Format(time.RFC3339Nano))
	m.Metadata.Set(publisher.DLQLastFailure, last.UTC().Format(time.RFC3339Nano))
	m.Metadata.Set(publisher.DLQInstance, instance)
	m.Metadata.Set(publisher.DLQDigest, publisher.Digest(msg.Payload))
	if m.Metadata.Get(publisher.DLQReplays) == "" {
		m.Metadata.Set(publisher.DLQReplays, "0")
	}
	return m
}

// failing keeps the failed dead-letter deliveries: per message, for the
// backoff; in all, for logging once and then a summary a minute.
type failing struct {
	mu       sync.Mutex
	attempts map[string]int
	logged   time.Time
	since    int // failures since the last log line
	keptLog  time.Time
}

// maxTracked bounds the per-message memory of failures.
const maxTracked = 10000

func (f *failing) fail(id string, err error, logger watermill.LoggerAdapter) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.attempts) >= maxTracked {
		clear(f.attempts)
	}
	f.attempts[id]++
	f.since++
	if time.Since(f.logged) >= time.Minute {
		logger.Error("cannot dead-letter: neither the poison queue nor the store takes the dead letter; "+
			"the command is left for redelivery, with backoff", err,
			watermill.LogFields{"failures": f.since, "message_uuid": Clip(id)})
		f.logged, f.since = time.Now(), 0
	}
	return f.attempts[id]
}

func (f *failing) succeed(id string) {
	f.mu.Lock()
	delete(f.attempts, id)
	f.mu.Unlock()
}

func (f *failing) kept(err error, logger watermill.LoggerAdapter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.keptLog) >= time.Minute {
		logger.Error("the poison queue refused a dead letter; it is kept whole in the store (emitd dlq list shows it)", err, nil)
		f.keptLog = time.Now()
	}
}

// Clip bounds a string from a message (an id, a type) for a log line.
func Clip(s string) string {
	const n = 128
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// Recover turns a panic in the handler chain into a *PanicError naming the
// frame that panicked, permanent, so it is dead-lettered instead of being
// redelivered for ever. (A panic while deciding a command is caught inside
// the pipeline, which dead-letters that command alone.)
func Recover(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if v := recover(); v != nil {
				out, err = nil, newPanicError(v)
			}
		}()
		return h(msg)
	}
}

func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Where: panicSite(), Stack: string(debug.Stack())}
}

// panicSite returns the frame that panicked: the first one past the
// runtime's panic machinery.
func panicSite() string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(1, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	sawPanic := false
	for {
		fr, more := frames.Next()
		if fr.Function == "runtime.gopanic" || strings.HasPrefix(fr.Function, "runtime.panic") {
			sawPanic = true
		} else if sawPanic && !strings.HasPrefix(fr.Function, "runtime.") {
			return fmt.Sprintf("%s (%s:%d)", fr.Function, fr.File, fr.Line)
		}
		if !more {
			return "unknown"
		}
	}
}

// Stats counts outcomes by class and reason for the shutdown log, and
// hands each count to Observer (the metrics) at the same moment: after the
// commit, or for a dead letter once it is kept on the poison queue or in
// the store.
type Stats struct {
	Observer Observer // nil: none

	mu       sync.Mutex
	counters map[string]int64
}

// Observer sees every command as Stats counts it. Types are as the command
// said (for bytes that are not a command, what they claimed, or ""):
// bound them before using them as labels.
type Observer interface {
	// Committed: the command's outcome committed; status is accepted,
	// rejected or duplicate (dead-lettered commands come through
	// DeadLettered); took is from its receipt to the commit.
	Committed(typ domain.CommandType, status string, took time.Duration)
	// DeadLettered: the command's dead letter is kept; code is the bounded
	// reason code (ReasonCode).
	DeadLettered(typ domain.CommandType, code string, took time.Duration)
	// Retried: a lone failing command is tried again.
	Retried()
}

func (s *Stats) add(key string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counters == nil {
		s.counters = map[string]int64{}
	}
	s.counters[key]++
}

func (s *Stats) deadLettered(typ domain.CommandType, code string, took time.Duration) {
	s.add("dead_lettered." + code)
	if s != nil && s.Observer != nil {
		s.Observer.DeadLettered(typ, code, took)
	}
}

func (s *Stats) retried() {
	s.add("retried")
	if s != nil && s.Observer != nil {
		s.Observer.Retried()
	}
}
func (s *Stats) accepted()              { s.add("accepted") }
func (s *Stats) rejected(reason string) { s.add("rejected." + reason) }
func (s *Stats) duplicate()             { s.add("duplicate") }

// Snapshot returns a copy of the counters.
func (s *Stats) Snapshot() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.counters))
	for k, v := range s.counters {
		out[k] = v
	}
	return out
}
