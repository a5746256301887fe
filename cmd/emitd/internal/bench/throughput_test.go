package bench

import (
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// sendBatch is how many messages one Publish call carries, as `emitd send`
// sends a file.
const sendBatch = 500

// emitdSenders is how many goroutines send the commands of a throughput run,
// each its share in batches of sendBatch, as several services would. One
// would measure the sender where its publisher waits for each message in
// turn: emitd's RabbitMQ publisher waits for every confirm (about 2 ms here),
// which caps one sender at about 500 commands/s, below what the daemon takes.
// 4 is the channel pool of that publisher.
const emitdSenders = 4

// report runs b.N measurement runs and reports their combined rate; the
// default ns/op (set-up included) would only mislead.
func report(b *testing.B, unit string, run func() (int, time.Duration)) {
	var total int
	var took time.Duration
	for range b.N {
		n, d := run()
		total, took = total+n, took+d
	}
	b.ReportMetric(float64(total)/took.Seconds(), unit)
	b.ReportMetric(0, "ns/op")
}

// publishAll publishes msgs from this goroutine, sendBatch at a time.
func publishAll(b *testing.B, pub message.Publisher, topic string, msgs []*message.Message) {
	b.Helper()
	for start := 0; start < len(msgs); start += sendBatch {
		if err := pub.Publish(topic, msgs[start:min(start+sendBatch, len(msgs))]...); err != nil {
			b.Fatalf("publish to %s: %v", topic, err)
		}
	}
}

// publishConcurrently publishes msgs from senders goroutines, each a
// contiguous share, sendBatch at a time.
func publishConcurrently(b *testing.B, pub message.Publisher, topic string, msgs []*message.Message, senders int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	share := (len(msgs) + senders - 1) / senders
	for start := 0; start < len(msgs); start += share {
		part := msgs[start:min(start+share, len(msgs))]
		wg.Go(func() {
			for i := 0; i < len(part); i += sendBatch {
				if err := pub.Publish(topic, part[i:min(i+sendBatch, len(part))]...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("publish to %s: %v", topic, err)
	}
}

// emitdThroughput is one run: a fresh daemon, readers on the results topic
// and both buses, one warm-up command (so that neither the daemon's nor the
// readers' start-up is measured: Kafka consumer groups take seconds to
// join), then N commands. It returns N and the time from the first send to
// the last of the 3N messages (N outcomes, N domain events, N analytics
// copies).
func emitdThroughput(b *testing.B, t *target) (int, time.Duration) {
	b.Helper()
	n := commandsPerRun(b)
	run := newRunID()
	r := startEmitd(b, t, run)
	cmds := newCommands(run, n)
	outcomes, domain, analytics := r.readers(b, cmds.index)
	observers := []*observer{outcomes, domain, analytics}
	pub, topic := r.commands.Publisher(), r.cfg.Commands.Topic

	publishAll(b, pub, topic, cmds.msgs[:1])
	for _, o := range observers {
		if _, err := o.waitFor(0, 1, time.Time{}); err != nil {
			b.Fatalf("warm-up command: %v\nemitd log:\n%s", err, r.log())
		}
	}

	began := time.Now()
	publishConcurrently(b, pub, topic, cmds.msgs[1:], emitdSenders)
	sent := time.Since(began)
	var end time.Time
	for _, o := range observers {
		if _, err := o.waitFor(1, n+1, time.Time{}); err != nil {
			b.Fatalf("%v\nemitd log:\n%s", err, r.log())
		}
		arrivals, repeats, foreign := o.snapshot()
		if l := last(arrivals, 1, n+1); l.After(end) {
			end = l
		}
		if repeats > 0 || foreign > 0 {
			b.Logf("%s: %d repeated deliveries, %d messages of no command of this run", o.name, repeats, foreign)
		}
	}
	took := end.Sub(began)
	b.Logf("%s: %d commands sent in %s; all outcomes and events in %s (%.0f commands/s); %s",
		t.name, n, sent.Round(time.Millisecond), took.Round(time.Millisecond), float64(n)/took.Seconds(), loadAverage())
	return n, took
}

// rawThroughput is one run of Watermill's own pub/sub: one warm-up message,
// then N published while the subscriber consumes and acks them. It returns
// N and the time from the first publish to the last arrival.
func rawThroughput(b *testing.B, t *target) (int, time.Duration) {
	b.Helper()
	n := commandsPerRun(b)
	run := newRunID()
	ps := t.raw(b, run)
	msgs, index := rawMessages(run, n)
	o := observe(b, "raw "+t.name, ps.sub, ps.topic, index, uuidKey)

	publishAll(b, ps.pub, ps.topic, msgs[:1])
	if _, err := o.waitFor(0, 1, time.Time{}); err != nil {
		b.Fatalf("warm-up message: %v", err)
	}
	began := time.Now()
	publishAll(b, ps.pub, ps.topic, msgs[1:])
	sent := time.Since(began)
	if _, err := o.waitFor(1, n+1, time.Time{}); err != nil {
		b.Fatal(err)
	}
	arrivals, repeats, _ := o.snapshot()
	took := last(arrivals, 1, n+1).Sub(began)
	if repeats > 0 {
		b.Logf("raw %s: %d repeated deliveries", t.name, repeats)
	}
	b.Logf("raw %s: %d messages published in %s; all received in %s (%.0f msgs/s); %s",
		t.name, n, sent.Round(time.Millisecond), took.Round(time.Millisecond), float64(n)/took.Seconds(), loadAverage())
	return n, took
}
