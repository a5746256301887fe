package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

func TestClassify(t *testing.T) {
	_, invalid := domain.ParseCommand([]byte(`{"type":"Nope","id":"x"}`))
	cases := map[string]struct {
		err  error
		want Class
	}{
		"invalid command":   {invalid, Permanent},
		"wrapped invalid":   {fmt.Errorf("decide: %w", invalid), Permanent},
		"panic":             {&PanicError{Value: "boom", Where: "x"}, Permanent},
		"marked permanent":  {MarkPermanent(errors.New("cannot make envelopes")), Permanent},
		"store busy":        {errors.New("database is locked"), Transient},
		"timeout":           {fmt.Errorf("commit: %w", context.DeadlineExceeded), Transient},
		"concurrent update": {fmt.Errorf("slot x: %w", domain.ErrConcurrentUpdate), Transient},
		"rejections never get here, but would be transient": {&domain.RejectedError{Reason: "r"}, Transient},
	}
	for name, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("%s: Classify = %s, want %s", name, got, c.want)
		}
	}
	for err, want := range map[error]string{invalid: "unknown_type", &PanicError{}: "panic",
		errors.New("database is locked"): "retries_exhausted"} {
		if got := ReasonCode(err); got != want {
			t.Errorf("ReasonCode(%v) = %s, want %s", err, got, want)
		}
	}
}

func TestRetryDelayGrowsAndStaysInBounds(t *testing.T) {
	p := RetryPolicy{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second}
	for n := 1; n <= 10; n++ {
		full := min(p.InitialInterval<<(n-1), p.MaxInterval)
		for range 50 {
			d := p.delay(n)
			if d < full/2 || d > full {
				t.Fatalf("retry %d: delay %s outside [%s, %s]", n, d, full/2, full)
			}
		}
	}
}

// chain runs a handler through PoisonQueue > Retry > Recover, as the router does.
func chain(t *testing.T, policy RetryPolicy, stopping <-chan struct{}, h message.HandlerFunc) (message.HandlerFunc, <-chan *message.Message) {
	t.Helper()
	pubsub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 10, Persistent: true}, nil)
	t.Cleanup(func() { pubsub.Close() })
	dlq, err := pubsub.Subscribe(context.Background(), "dlq")
	if err != nil {
		t.Fatal(err)
	}
	pq := PoisonQueue{Publisher: pubsub, Topic: "dlq", Instance: "test", Stopping: stopping, Stats: &Stats{}, Logger: nopLogger{}}
	retry := Retry{Policy: policy, Stopping: stopping, Stats: pq.Stats, Logger: nopLogger{}}
	return pq.Middleware(retry.Middleware(Recover(h))), dlq
}

func TestTransientIsRetriedToTheBoundThenDeadLettered(t *testing.T) {
	calls := 0
	h, dlq := chain(t, RetryPolicy{MaxRetries: 3, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxElapsed: time.Minute},
		nil,
		func(*message.Message) ([]*message.Message, error) { calls++; return nil, errors.New("store down") })
	msg := message.NewMessage("m1", []byte("payload"))
	if _, err := h(msg); err != nil {
		t.Fatalf("a dead-lettered message is acked, got %v", err)
	}
	if calls != 4 {
		t.Fatalf("%d attempts, want 1 + 3 retries", calls)
	}
	d := <-dlq
	if string(d.Payload) != "payload" || d.Metadata.Get(publisher.DLQAttempts) != "4" || d.Metadata.Get(publisher.DLQClass) != "transient" ||
		!strings.HasPrefix(d.Metadata.Get(publisher.DLQReason), "retries exhausted after 4 attempts: store down") {
		t.Fatalf("dead letter %s %v", d.Payload, d.Metadata)
	}
}

func TestPermanentIsNotRetried(t *testing.T) {
	calls := 0
	h, dlq := chain(t, RetryPolicy{MaxRetries: 3, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxElapsed: time.Minute},
		nil,
		func(*message.Message) ([]*message.Message, error) { calls++; panic("nil slot") })
	if _, err := h(message.NewMessage("m1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	d := <-dlq
	if calls != 1 || d.Metadata.Get(publisher.DLQAttempts) != "1" || !strings.Contains(d.Metadata.Get(publisher.DLQReason), "handler panic: nil slot at ") {
		t.Fatalf("%d calls; dead letter %v", calls, d.Metadata)
	}
}

// While shutting down nothing is dead-lettered: the error goes back so the
// message is nacked and redelivered.
func TestShuttingDownLeavesTheMessageForRedelivery(t *testing.T) {
	stopping := make(chan struct{})
	calls := 0
	h, dlq := chain(t, RetryPolicy{MaxRetries: 100, InitialInterval: time.Hour, MaxInterval: time.Hour, MaxElapsed: 10 * time.Hour},
		stopping,
		func(*message.Message) ([]*message.Message, error) {
			calls++
			if calls == 1 {
				// the stop comes while the first retry waits an hour
				go func() { time.Sleep(50 * time.Millisecond); close(stopping) }()
			}
			return nil, errors.New("store down")
		})
	if _, err := h(message.NewMessage("m1", []byte("x"))); err == nil {
		t.Fatal("a message failing at shutdown was acked")
	}
	if calls != 1 {
		t.Errorf("%d attempts; the stop should have ended the retry wait with no new attempt", calls)
	}
	select {
	case d := <-dlq:
		t.Fatalf("dead-lettered at shutdown: %v", d.Metadata)
	case <-time.After(100 * time.Millisecond):
	}
}

type nopLogger = watermill.NopLogger
