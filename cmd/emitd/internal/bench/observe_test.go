package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// stallTimeout bounds how long a wait may see no new message before the run
// is declared stuck: a stuck run fails, it does not report a slow figure.
const stallTimeout = 60 * time.Second

// keyFunc says which command a message answers (its correlation id), and
// what is wrong with it if it is not a plain success.
type keyFunc func(msg *message.Message) (key string, problem string, err error)

// outcomeKey reads an outcome: {"commandId","correlationId","status","reason",...}.
func outcomeKey(msg *message.Message) (string, string, error) {
	var o struct {
		CommandID     string `json:"commandId"`
		CorrelationID string `json:"correlationId"`
		Status        string `json:"status"`
		Reason        string `json:"reason"`
	}
	if err := json.Unmarshal(msg.Payload, &o); err != nil {
		return "", "", fmt.Errorf("not an outcome: %w", err)
	}
	if o.Status != "accepted" {
		return o.CorrelationID, fmt.Sprintf("command %s: %s (%s)", o.CommandID, o.Status, o.Reason), nil
	}
	return o.CorrelationID, "", nil
}

// eventKey reads an envelope (the EventBridge entry) and returns the
// correlation id its Detail carries in metadata.correlationId.
func eventKey(msg *message.Message) (string, string, error) {
	var e struct {
		Detail string
	}
	if err := json.Unmarshal(msg.Payload, &e); err != nil {
		return "", "", fmt.Errorf("not an entry: %w", err)
	}
	var d struct {
		Metadata struct {
			CorrelationID string `json:"correlationId"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		return "", "", fmt.Errorf("Detail is not JSON: %w", err)
	}
	return d.Metadata.CorrelationID, "", nil
}

// observer records when each expected message first arrived on one topic.
// Keys are looked up in index (key -> position); other messages (there
// should be none: every run has topics of its own) are counted, not kept.
type observer struct {
	name  string
	index map[string]int

	mu       sync.Mutex
	arrivals []time.Time // by position; zero until it arrived
	seen     int
	repeats  int // a key seen again: delivery is at least once
	foreign  int // a key not in index
	problems []string
	err      error // the subscription ended early, or a message made no sense
	done     chan struct{}
}

// observe subscribes to topic and records arrivals until the benchmark
// ends or stop is called. sub must be subscribed before anything the run
// waits for is published: on RabbitMQ (and SNS) a reader that comes later
// never sees it.
func observe(b *testing.B, name string, sub message.Subscriber, topic string, index map[string]int, key keyFunc) *observer {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		b.Fatalf("%s: subscribe to %s: %v", name, topic, err)
	}
	o := &observer{name: name, index: index, arrivals: make([]time.Time, len(index)), done: make(chan struct{})}
	go o.run(ch, key)
	b.Cleanup(func() {
		cancel()
		_ = sub.Close()
		<-o.done
	})
	return o
}

func (o *observer) run(ch <-chan *message.Message, key keyFunc) {
	defer close(o.done)
	for msg := range ch {
		at := time.Now()
		k, problem, err := key(msg)
		msg.Ack()
		o.mu.Lock()
		switch i, ok := o.index[k]; {
		case err != nil:
			if o.err == nil {
				o.err = fmt.Errorf("message %s: %w", msg.UUID, err)
			}
		case !ok:
			o.foreign++
		case !o.arrivals[i].IsZero():
			o.repeats++
		default:
			o.arrivals[i] = at
			o.seen++
			if problem != "" && len(o.problems) < 5 {
				o.problems = append(o.problems, problem)
			}
		}
		o.mu.Unlock()
	}
}

// errStalled: nothing new arrived for stallTimeout.
var errStalled = errors.New("stalled")

// pollInterval is how often a wait looks at the arrivals. The arrival times
// are taken by the reader as each message comes, so this bounds only how
// late a wait notices, not what it measures; waking on every message would
// take CPU from the daemon under test.
const pollInterval = 10 * time.Millisecond

// waitFor waits until every position in [from, to) has arrived, or until
// nothing new arrived for stallTimeout, or until deadline (zero: none).
// It returns the number arrived in that range.
func (o *observer) waitFor(from, to int, deadline time.Time) (int, error) {
	lastProgress, lastN := time.Now(), -1
	for {
		n, err := o.count(from, to)
		switch {
		case err != nil:
			return n, fmt.Errorf("%s: %w", o.name, err)
		case n == to-from:
			return n, nil
		case !deadline.IsZero() && !time.Now().Before(deadline):
			return n, nil
		}
		if n != lastN {
			lastProgress, lastN = time.Now(), n
		} else if time.Since(lastProgress) > stallTimeout {
			return n, fmt.Errorf("%s: %w: %d of %d after %s without news", o.name, errStalled, n, to-from, stallTimeout)
		}
		wait := pollInterval
		if !deadline.IsZero() {
			wait = max(min(wait, time.Until(deadline)), 0)
		}
		select {
		case <-o.done:
			o.mu.Lock()
			if o.err == nil {
				o.err = errors.New("subscription ended")
			}
			o.mu.Unlock()
		case <-time.After(wait):
		}
	}
}

// count is how many positions in [from, to) have arrived, and what went
// wrong so far. It counts the positions outside the range, which are few
// (a wait is for the warm-up or for all the rest), not those in it.
func (o *observer) count(from, to int) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.seen
	for _, outside := range [][]time.Time{o.arrivals[:from], o.arrivals[to:]} {
		for _, at := range outside {
			if !at.IsZero() {
				n--
			}
		}
	}
	if o.err != nil {
		return n, o.err
	}
	if len(o.problems) > 0 {
		return n, fmt.Errorf("not accepted: %v", o.problems)
	}
	return n, nil
}

// snapshot copies the arrivals and the counts.
func (o *observer) snapshot() (arrivals []time.Time, repeats, foreign int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Time(nil), o.arrivals...), o.repeats, o.foreign
}

// last is the latest arrival in [from, to).
func last(arrivals []time.Time, from, to int) time.Time {
	var t time.Time
	for _, at := range arrivals[from:to] {
		if at.After(t) {
			t = at
		}
	}
	return t
}
