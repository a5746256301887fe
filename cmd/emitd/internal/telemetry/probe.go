package telemetry

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emitd/emitd/publisher"
)

// Store is what the probe asks of the store.
type Store interface {
	Ping(ctx context.Context) error
	publisher.Reporter
}

// Check is one broker check: Name says which ("commands broker nats").
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Probe looks at the store and the brokers every Interval and keeps what it
// saw: /readyz answers from it at once (a probe that waits for a hung
// database would time out the orchestrator's own probe), and the store's
// gauges on /metrics are read from it.
type Probe struct {
	Store   Store
	Brokers []Check
	// PoisonDepth, if set, tells the poison queue's depth (ok false: the
	// broker cannot tell). Asked every DepthEvery rounds.
	PoisonDepth func(ctx context.Context) (n int64, ok bool, err error)
	// Running says whether the commands subscription runs.
	Running     func() bool
	MaxRelayLag time.Duration
	Interval    time.Duration // default 2s
	Timeout     time.Duration // of each check; default 3s
	DepthEvery  int           // default 5
	Logger      watermill.LoggerAdapter

	mu    sync.Mutex
	last  Snapshot
	ready *bool // the last verdict logged
}

// Snapshot is one round of checks.
type Snapshot struct {
	At          time.Time
	StoreErr    error
	Outboxes    publisher.OutboxReport
	DeadLetters []publisher.DeadLetterCount
	BrokerErrs  map[string]error
	Running     bool
	PoisonDepth int64
	PoisonKnown bool
	PoisonErr   error
}

// stale: a round that ended longer ago than this means the checks hang.
const stale = 10 * time.Second

// Run checks until ctx ends.
func (p *Probe) Run(ctx context.Context) {
	if p.Interval <= 0 {
		p.Interval = 2 * time.Second
	}
	if p.Timeout <= 0 {
		p.Timeout = 3 * time.Second
	}
	if p.DepthEvery <= 0 {
		p.DepthEvery = 5
	}
	if p.Logger == nil {
		p.Logger = watermill.NopLogger{}
	}
	for round := 0; ; round++ {
		p.round(ctx, round%p.DepthEvery == 0)
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.Interval):
		}
	}
}

// round runs every check at once, each bounded by Timeout.
func (p *Probe) round(ctx context.Context, depth bool) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	var s Snapshot
	var mu sync.Mutex
	var wg sync.WaitGroup
	s.BrokerErrs = map[string]error{}
	wg.Go(func() {
		err := p.Store.Ping(ctx)
		var ob publisher.OutboxReport
		var dl []publisher.DeadLetterCount
		if err == nil {
			ob, err = p.Store.Outboxes(ctx)
		}
		if err == nil {
			dl, err = p.Store.DeadLetterCounts(ctx)
		}
		mu.Lock()
		s.StoreErr, s.Outboxes, s.DeadLetters = err, ob, dl
		mu.Unlock()
	})
	for _, b := range p.Brokers {
		wg.Go(func() {
			err := b.Ping(ctx)
			mu.Lock()
			s.BrokerErrs[b.Name] = err
			mu.Unlock()
		})
	}
	p.mu.Lock()
	prev := p.last
	p.mu.Unlock()
	s.PoisonDepth, s.PoisonKnown, s.PoisonErr = prev.PoisonDepth, prev.PoisonKnown, prev.PoisonErr
	if depth && p.PoisonDepth != nil {
		wg.Go(func() {
			n, ok, err := p.PoisonDepth(ctx)
			mu.Lock()
			s.PoisonDepth, s.PoisonKnown, s.PoisonErr = n, ok && err == nil, err
			mu.Unlock()
		})
	}
	wg.Wait()
	if p.Running != nil {
		s.Running = p.Running()
	}
	s.At = time.Now()
	p.mu.Lock()
	p.last = s
	p.mu.Unlock()
	p.logVerdict()
}

// logVerdict logs when readiness changes, not at every round.
func (p *Probe) logVerdict() {
	ok, reasons := p.Ready()
	p.mu.Lock()
	changed := p.ready == nil || *p.ready != ok
	p.ready = &ok
	p.mu.Unlock()
	switch {
	case !changed:
	case ok:
		p.Logger.Info("ready", nil)
	default:
		p.Logger.Info("not ready", watermill.LogFields{"reasons": strings.Join(reasons, "; ")})
	}
}

// Last is the latest round.
func (p *Probe) Last() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Ready says whether emitd is ready, and if not, why (one line a reason).
func (p *Probe) Ready() (bool, []string) {
	s := p.Last()
	now := time.Now()
	if s.At.IsZero() {
		return false, []string{"starting: no check has completed yet"}
	}
	var why []string
	if age := now.Sub(s.At); age > stale {
		why = append(why, fmt.Sprintf("checks: the last round of checks ended %s ago (a check hangs)", age.Round(time.Second)))
	}
	if !s.Running {
		why = append(why, "commands: the commands subscription is not running")
	}
	if s.StoreErr != nil {
		why = append(why, "store: "+bound(s.StoreErr.Error()))
	}
	names := make([]string, 0, len(s.BrokerErrs))
	for n := range s.BrokerErrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := s.BrokerErrs[n]; err != nil {
			why = append(why, n+": "+bound(err.Error()))
		}
	}
	if s.StoreErr == nil {
		for _, r := range []struct {
			name string
			b    publisher.Backlog
		}{{"events", s.Outboxes.Envelopes}, {"outcomes", s.Outboxes.Outcomes}} {
			if age := r.b.Age(s.At); age > p.MaxRelayLag {
				why = append(why, fmt.Sprintf("relay %s: the oldest of %d unsent messages has waited %s, over http.maxRelayLag (%s)",
					r.name, r.b.Pending, age.Round(time.Second), p.MaxRelayLag))
			}
		}
	}
	return len(why) == 0, why
}

// bound keeps a reason (a driver's error text) to one short line.
func bound(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const n = 300
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// Collector exports what the probe saw as gauges: the outboxes, the dead
// letters the store holds, the poison queue's depth (only where the broker
// tells it) and readiness.
func (p *Probe) Collector() prometheus.Collector { return probeCollector{p} }

type probeCollector struct{ p *Probe }

var (
	descPending        = prometheus.NewDesc("emitd_outbox_pending", "Envelopes committed and not yet taken by their bus.", nil, nil)
	descOldest         = prometheus.NewDesc("emitd_outbox_oldest_pending_seconds", "Age of the oldest envelope waiting in the outbox (the events relay's lag); 0 when none waits.", nil, nil)
	descOutcomePending = prometheus.NewDesc("emitd_outcome_outbox_pending", "Outcomes committed and not yet on the results topic.", nil, nil)
	descOutcomeOldest  = prometheus.NewDesc("emitd_outcome_outbox_oldest_pending_seconds", "Age of the oldest outcome waiting (the outcomes relay's lag).", nil, nil)
	descStored         = prometheus.NewDesc("emitd_dead_letters_stored", "Dead letters the store holds (purged ones aside), by kind.", []string{"kind"}, nil)
	descDepth          = prometheus.NewDesc("emitd_poison_queue_depth", "Dead letters waiting on the poison queue, not yet moved into the store (where the broker can tell: JetStream, SQS, RabbitMQ).", nil, nil)
	descReady          = prometheus.NewDesc("emitd_ready", "1 when /readyz answers 200, else 0.", nil, nil)
	descStoreUp        = prometheus.NewDesc("emitd_store_up", "1 when the store answered the last check.", nil, nil)
)

func (c probeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descOldest, descOutcomePending, descOutcomeOldest, descStored, descDepth, descReady, descStoreUp} {
		ch <- d
	}
}

func (c probeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Last()
	ready, _ := c.p.Ready()
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b2f(ready))
	if s.At.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, b2f(s.StoreErr == nil))
	if s.StoreErr == nil {
		ob := s.Outboxes
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(ob.Envelopes.Pending))
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, ob.Envelopes.Age(time.Now()).Seconds())
		ch <- prometheus.MustNewConstMetric(descOutcomePending, prometheus.GaugeValue, float64(ob.Outcomes.Pending))
		ch <- prometheus.MustNewConstMetric(descOutcomeOldest, prometheus.GaugeValue, ob.Outcomes.Age(time.Now()).Seconds())
		byKind := map[string]int64{publisher.KindCommand: 0, publisher.KindEvent: 0, publisher.KindOutcome: 0}
		for _, d := range s.DeadLetters {
			byKind[d.Kind] += d.Count
		}
		for k, n := range byKind {
			ch <- prometheus.MustNewConstMetric(descStored, prometheus.GaugeValue, float64(n), k)
		}
	}
	if s.PoisonKnown {
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(s.PoisonDepth))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
