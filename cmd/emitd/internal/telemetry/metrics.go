// Package telemetry is emitd's operations surface: the Prometheus metrics,
// the readiness probe, and the HTTP listener that serves them
// (/metrics, /healthz, /readyz, and whatever else is mounted on it).
package telemetry

import (
	"runtime/debug"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
	"github.com/emitd/emitd/router"
	"github.com/emitd/emitd/schedule"
)

// Command statuses of emitd_commands_total.
const (
	StatusAccepted     = "accepted"
	StatusRejected     = "rejected"
	StatusDuplicate    = "duplicate"
	StatusDeadLettered = "dead_lettered"
)

// commandCodes are the reason codes a command dead letter can have
// (router.ReasonCode, the too-large check); anything else is "other".
var commandCodes = []string{"malformed", "unknown_type", "invalid", "unsupported_version", "panic",
	"permanent_error", "retries_exhausted", "too_large"}

// Metrics are emitd's Prometheus metrics, in a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry

	commands      *prometheus.CounterVec
	duration      prometheus.Histogram
	published     *prometheus.CounterVec
	publishTime   *prometheus.HistogramVec
	publishFailed *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	retries       prometheus.Counter
	fired         *prometheus.CounterVec
}

// NewMetrics registers every metric; the counters of every known label set
// start at 0, so that rate() and increase() see their first event.
func NewMetrics(buses []string, entries []string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "emitd_commands_total",
		Help: "Commands settled, by type and status (accepted, rejected, duplicate, dead_lettered); counted after the commit."}, []string{"type", "status"})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "emitd_command_duration_seconds",
		Help:    "From a command's receipt from the broker to the commit of its outcome (to its dead letter being kept).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)})
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "emitd_events_published_total",
		Help: "Envelopes the bus took and that left the outbox, by bus."}, []string{"bus"})
	m.publishTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "emitd_publish_duration_seconds",
		Help: "One publish call of the events relay (a batch for one bus), by bus.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"bus"})
	m.publishFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "emitd_publish_failures_total",
		Help: "Publish calls of the events relay that failed as a whole (the bus down, no permission), by bus."}, []string{"bus"})
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "emitd_dead_letters_total",
		Help: "Dead letters made, by kind (command, event, outcome) and bounded reason code."}, []string{"kind", "reason"})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{Name: "emitd_retries_total",
		Help: "Retries of a lone failing command (a store outage is waited out, not retried)."})
	m.fired = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "emitd_schedule_fired_total",
		Help: "Firings of the built-in schedule that the commands topic took, by entry."}, []string{"schedule"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "emitd_build_info", Help: "Always 1; the version of this emitd."}, []string{"version"})
	build.WithLabelValues(Version()).Set(1)
	for _, c := range []prometheus.Collector{m.commands, m.duration, m.published, m.publishTime, m.publishFailed, m.deadLetters,
		m.retries, m.fired, build, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	for _, t := range append(domain.CommandTypes(), "unknown") {
		for _, st := range []string{StatusAccepted, StatusRejected, StatusDuplicate, StatusDeadLettered} {
			m.commands.WithLabelValues(string(t), st)
		}
	}
	for _, c := range commandCodes {
		m.deadLetters.WithLabelValues(publisher.KindCommand, c)
	}
	for _, c := range []string{publisher.CodeRefused, publisher.CodePolicy} {
		m.deadLetters.WithLabelValues(publisher.KindEvent, c)
	}
	m.deadLetters.WithLabelValues(publisher.KindOutcome, publisher.CodeRefused)
	for _, b := range buses {
		m.published.WithLabelValues(b)
		m.publishFailed.WithLabelValues(b)
	}
	for _, e := range entries {
		m.fired.WithLabelValues(e)
	}
	return m
}

// Version is this build's version: the module version for a released
// build, else the VCS revision the binary was built from.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// typeLabel bounds a command type for a label: the known types, else
// "unknown" (bytes that are not a command claim any type they like).
func typeLabel(t domain.CommandType) string {
	if t.Known() {
		return string(t)
	}
	return "unknown"
}

func codeLabel(known []string, code string) string {
	if slices.Contains(known, code) {
		return code
	}
	return "other"
}

// Commands is the command pipeline's observer (router.Observer).
func (m *Metrics) Commands() router.Observer { return commandObserver{m} }

type commandObserver struct{ m *Metrics }

func (o commandObserver) Committed(typ domain.CommandType, status string, took time.Duration) {
	o.m.commands.WithLabelValues(typeLabel(typ), status).Inc()
	o.m.duration.Observe(took.Seconds())
}

func (o commandObserver) DeadLettered(typ domain.CommandType, code string, took time.Duration) {
	o.m.commands.WithLabelValues(typeLabel(typ), StatusDeadLettered).Inc()
	o.m.deadLetters.WithLabelValues(publisher.KindCommand, codeLabel(commandCodes, code)).Inc()
	if took > 0 {
		o.m.duration.Observe(took.Seconds())
	}
}

func (o commandObserver) Retried() { o.m.retries.Inc() }

// Events is the events relay's observer.
func (m *Metrics) Events() publisher.RelayObserver {
	return relayObserver{m: m, kind: publisher.KindEvent, buses: true}
}

// Outcomes is the outcomes relay's observer (its dead letters only).
func (m *Metrics) Outcomes() publisher.RelayObserver {
	return relayObserver{m: m, kind: publisher.KindOutcome}
}

type relayObserver struct {
	m     *Metrics
	kind  string
	buses bool // count deliveries by bus (the events relay)
}

func (o relayObserver) Publish(topic string, _ int, d time.Duration, err error) {
	if !o.buses {
		return
	}
	o.m.publishTime.WithLabelValues(topic).Observe(d.Seconds())
	if err != nil {
		o.m.publishFailed.WithLabelValues(topic).Inc()
	}
}

func (o relayObserver) Sent(topic string, n int) {
	if o.buses {
		o.m.published.WithLabelValues(topic).Add(float64(n))
	}
}

func (o relayObserver) DeadLettered(_ string, code string) {
	o.m.deadLetters.WithLabelValues(o.kind, codeLabel([]string{publisher.CodeRefused, publisher.CodePolicy}, code)).Inc()
}

// Fired counts a firing of the schedule.
func (m *Metrics) Fired(f schedule.Firing) { m.fired.WithLabelValues(f.Entry).Inc() }
