package bench

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emitd/emitd/adapters/broker"
)

type latencyResult struct {
	latencies []time.Duration // per command sent; see latencyRun
	answered  int
	sent      int
	sendTime  time.Duration
	peakRSS   int64
}

func (r *latencyResult) add(o latencyResult) {
	r.latencies = append(r.latencies, o.latencies...)
	r.answered += o.answered
	r.sent += o.sent
	r.sendTime += o.sendTime
	r.peakRSS = max(r.peakRSS, o.peakRSS)
}

func (r *latencyResult) report(b *testing.B) {
	slices.Sort(r.latencies)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(r.latencies, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(r.latencies, 99)), "p99-ms")
	b.ReportMetric(100*float64(r.answered)/float64(r.sent), "answered-%")
	b.ReportMetric(float64(r.peakRSS)/1e6, "peak-RSS-MB")
	b.ReportMetric(float64(r.sent)/r.sendTime.Seconds(), "sent-commands/s")
	b.ReportMetric(0, "ns/op")
}

// latencyRun is one run on a fresh daemon. A command whose domain event had
// not arrived when the grace period ended counts with the time it had waited
// by then, so with fewer than all events in, the percentiles are lower
// bounds (they are never computed over the fast ones alone).
func latencyRun(b *testing.B, rate int, duration, grace time.Duration) latencyResult {
	b.Helper()
	run := newRunID()
	r := startEmitd(b, &embeddedTarget, run)
	n := int(float64(rate) * duration.Seconds())
	cmds := newCommands(run, n)
	reader := func(name string, br broker.Broker, topic string, key keyFunc) *observer {
		sub, err := br.Subscriber(broker.SubscribeOptions{FromBeginning: true})
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return observe(b, name, sub, topic, cmds.index, key)
	}
	outcomes := reader("outcomes", r.commands, r.cfg.Commands.ResultsTopic, outcomeKey)
	domain := reader("domain bus", r.events, r.cfg.Events.DomainBus, eventKey)
	pub, topic := r.commands.Publisher(), r.cfg.Commands.Topic

	publishAll(b, pub, topic, cmds.msgs[:1])
	for _, o := range []*observer{outcomes, domain} {
		if _, err := o.waitFor(0, 1, time.Time{}); err != nil {
			b.Fatalf("warm-up command: %v\nemitd log:\n%s", err, r.log())
		}
	}

	// The schedule hands each command, when due, to one of latencySenders
	// goroutines, so that a publish that waits for the broker (which runs
	// inside the daemon under test) does not hold back the next one: the
	// offered rate is the schedule's, whatever the daemon does.
	sentAt := make([]time.Time, n+1)
	due := make(chan int, latencySenders)
	failed := make(chan error, latencySenders)
	var senders sync.WaitGroup
	for range latencySenders {
		senders.Go(func() {
			for i := range due {
				sentAt[i] = time.Now()
				if err := pub.Publish(topic, cmds.msgs[i]); err != nil {
					select {
					case failed <- fmt.Errorf("send command %d: %w", i, err):
					default:
					}
				}
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	began := time.Now()
	for i := 1; i <= n; i++ {
		if wait := time.Until(began.Add(time.Duration(i-1) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		due <- i
	}
	close(due)
	senders.Wait()
	select {
	case err := <-failed:
		b.Fatal(err)
	default:
	}
	lastSend := time.Now()
	deadline := lastSend.Add(grace)
	for _, o := range []*observer{outcomes, domain} {
		if _, err := o.waitFor(1, n+1, deadline); err != nil {
			b.Fatalf("%v\nemitd log:\n%s", err, r.log())
		}
	}
	rss, err := r.daemon.peakRSS()
	if err != nil {
		b.Fatalf("peak RSS of emitd: %v", err)
	}

	answers, _, _ := outcomes.snapshot()
	events, _, _ := domain.snapshot()
	res := latencyResult{sent: n, sendTime: lastSend.Sub(began), peakRSS: rss}
	delivered := 0
	for i := 1; i <= n; i++ {
		if at := answers[i]; !at.IsZero() && !at.After(deadline) {
			res.answered++
		}
		at := events[i]
		if at.IsZero() || at.After(deadline) {
			at = deadline
		} else {
			delivered++
		}
		res.latencies = append(res.latencies, at.Sub(sentAt[i]))
	}
	b.Logf("rate %d/s: sent %d in %s; within %s after: %d answered, %d domain events; peak RSS %.0f MB; %s",
		rate, n, res.sendTime.Round(time.Millisecond), grace, res.answered, delivered, float64(rss)/1e6, loadAverage())
	return res
}

// latencySenders is how many publishes may be under way at once in a
// latency run.
const latencySenders = 8

// percentile is the nearest-rank percentile of sorted values (0 if none).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted))*p/100)) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
