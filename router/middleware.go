package router

import (
	"context"
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

	"github.com/emitd/emitd/publisher"
)

// failures records the attempts of one delivery, shared by the retry and
// poison middleware through the message context.
type failures struct {
	start       time.Time // the first attempt began
	attempts    int
	first, last time.Time // failures
}

type failuresKey struct{}

func failuresOf(msg *message.Message) *failures {
	f, _ := msg.Context().Value(failuresKey{}).(*failures)
	return f
}

// RetryPolicy bounds retries of transient failures by count and by time.
// MaxElapsed bounds the whole stay of a message in the handler, attempts
// and waits included: no retry starts that could not end within it. It must
// stay below the broker's redelivery deadline (NATS AckWait, SQS visibility
// timeout), or the broker hands the message to someone else meanwhile.
type RetryPolicy struct {
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	MaxElapsed      time.Duration
	AttemptTimeout  time.Duration // the handler timeout: the longest one attempt may take
}

// delay is the exponential backoff for retry n (1-based) with full jitter in
// [d/2, d], so that instances retrying the same store do not stampede.
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.InitialInterval << (n - 1)
	if d <= 0 || d > p.MaxInterval {
		d = p.MaxInterval
	}
	return d/2 + rand.N(d/2+1)
}

// PoisonQueue dead-letters permanent failures at once and transient ones once
// Retry (inside it) has given up. While shutting down it dead-letters
// nothing: the error goes back to the router, the message is nacked and the
// broker redelivers it to the next instance.
type PoisonQueue struct {
	Publisher message.Publisher
	Topic     string
	Instance  string
	Stopping  <-chan struct{} // closed when the daemon starts shutting down
	Stats     *Stats
	Logger    watermill.LoggerAdapter
	// OnDeadLetter, if set, is told about each message once it is in the
	// poison queue (the handler answers the sender with it).
	OnDeadLetter func(msg *message.Message, reason string)
}

// closed reports whether ch is closed (nil never is).
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Middleware implements message.HandlerMiddleware.
func (pq PoisonQueue) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		f := &failures{start: time.Now()}
		msg.SetContext(context.WithValue(msg.Context(), failuresKey{}, f))
		out, err := h(msg)
		if err == nil {
			return out, nil
		}
		if closed(pq.Stopping) {
			return nil, err
		}
		class := Classify(err)
		reason := err.Error()
		if class == Transient {
			reason = fmt.Sprintf("retries exhausted after %d attempts: %s", f.attempts, reason)
		}
		if perr := pq.publish(msg, class, reason, f); perr != nil {
			// Nothing is lost: the message is nacked and comes back.
			return nil, fmt.Errorf("poison queue %q unreachable (%v); message left for redelivery: %w", pq.Topic, perr, err)
		}
		pq.Stats.deadLettered(ReasonCode(err))
		if pq.OnDeadLetter != nil {
			pq.OnDeadLetter(msg, reason)
		}
		pq.Logger.Error("command dead-lettered", err, watermill.LogFields{
			"message_uuid": msg.UUID, "class": class, "dlq_topic": pq.Topic})
		return nil, nil
	}
}

func (pq PoisonQueue) publish(msg *message.Message, class Class, reason string, f *failures) error {
	id := msg.UUID
	if id == "" { // e.g. a plain NATS client's message: give each dead letter its own id
		id = watermill.NewUUID()
	}
	dl := message.NewMessage(id, msg.Payload)
	for k, v := range msg.Metadata {
		dl.Metadata.Set(k, v)
	}
	now := time.Now().UTC()
	if f.attempts == 0 { // failed without passing through Retry (e.g. a panic in it)
		f.attempts, f.first, f.last = 1, now, now
	}
	dl.Metadata.Set(publisher.DLQReason, reason)
	dl.Metadata.Set(publisher.DLQClass, string(class))
	dl.Metadata.Set(publisher.DLQTopic, message.SubscribeTopicFromCtx(msg.Context()))
	dl.Metadata.Set(publisher.DLQHandler, message.HandlerNameFromCtx(msg.Context()))
	dl.Metadata.Set(publisher.DLQAttempts, strconv.Itoa(f.attempts))
	dl.Metadata.Set(publisher.DLQFirstFailure, f.first.Format(time.RFC3339Nano))
	dl.Metadata.Set(publisher.DLQLastFailure, f.last.Format(time.RFC3339Nano))
	dl.Metadata.Set(publisher.DLQInstance, pq.Instance)
	dl.Metadata.Set(publisher.DLQDigest, publisher.Digest(msg.Payload))
	if dl.Metadata.Get(publisher.DLQReplays) == "" {
		dl.Metadata.Set(publisher.DLQReplays, "0")
	}
	return pq.Publisher.Publish(pq.Topic, dl)
}

// Retry runs the handler again after a transient failure, with exponential
// backoff and jitter, until it succeeds, the failure turns permanent, the
// bound (count or time) is reached, or the daemon shuts down.
type Retry struct {
	Policy   RetryPolicy
	Stopping <-chan struct{} // closed when the daemon starts shutting down
	Stats    *Stats
	Logger   watermill.LoggerAdapter
}

// Middleware implements message.HandlerMiddleware.
func (r Retry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		f := failuresOf(msg)
		if f == nil {
			f = &failures{start: time.Now()}
		}
		baseCtx := msg.Context()
		for {
			msg.SetContext(baseCtx) // each attempt gets a fresh handler timeout
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			now := time.Now().UTC()
			f.attempts++
			if f.first.IsZero() {
				f.first = now
			}
			f.last = now
			wait := r.Policy.delay(f.attempts)
			if Classify(err) == Permanent || closed(r.Stopping) || f.attempts > r.Policy.MaxRetries ||
				now.Add(wait+r.Policy.AttemptTimeout).Sub(f.start) > r.Policy.MaxElapsed {
				return nil, err
			}
			r.Stats.retried()
			r.Logger.Info("transient failure, retrying", watermill.LogFields{
				"message_uuid": msg.UUID, "attempt": f.attempts, "retry_in": wait.String(), "error": err.Error()})
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.Stopping: // no new attempt once the daemon stops: leave it for redelivery
				t.Stop()
				return nil, err
			case <-baseCtx.Done():
				t.Stop()
				return nil, err
			}
		}
	}
}

// Recover turns a handler panic into a *PanicError naming the frame that
// panicked. It sits inside Retry and PoisonQueue so that a panic is seen by
// them as a permanent failure; outermost, it would reach the router as a
// plain error and the message would be redelivered for ever.
func Recover(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if v := recover(); v != nil {
				out, err = nil, &PanicError{Value: v, Where: panicSite(), Stack: string(debug.Stack())}
			}
		}()
		return h(msg)
	}
}

// panicSite returns the first frame below the runtime's panic machinery.
func panicSite() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		fr, more := frames.Next()
		if !strings.HasPrefix(fr.Function, "runtime.") {
			return fmt.Sprintf("%s (%s:%d)", fr.Function, fr.File, fr.Line)
		}
		if !more {
			return "unknown"
		}
	}
}

// Timeout bounds one attempt of the handler. The attempt's context is not
// cancelled when the router closes (the subscription's context is): a
// command in flight at shutdown finishes its transaction instead of failing
// half way; only its timeout bounds it.
func Timeout(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), d)
			defer cancel()
			msg.SetContext(ctx)
			return h(msg)
		}
	}
}

// Stats counts outcomes by class and reason for the shutdown log (and, later,
// the metrics endpoint).
type Stats struct {
	mu       sync.Mutex
	counters map[string]int64
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

func (s *Stats) deadLettered(code string) { s.add("dead_lettered." + code) }
func (s *Stats) retried()                 { s.add("retried") }
func (s *Stats) accepted()                { s.add("accepted") }
func (s *Stats) rejected(reason string)   { s.add("rejected." + reason) }
func (s *Stats) duplicate()               { s.add("duplicate") }

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
