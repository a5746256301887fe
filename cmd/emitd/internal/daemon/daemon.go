// Package daemon assembles emitd from its configuration: the store, the
// brokers, the command pipeline and its router, the relays of envelopes and
// of outcomes, and runs them until told to stop.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"sort"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/cmd/emitd/internal/brokers"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/cmd/emitd/internal/stores"
	"github.com/emitd/emitd/cmd/emitd/internal/telemetry"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
	"github.com/emitd/emitd/router"
	"github.com/emitd/emitd/schedule"
)

// Daemon is one running emitd.
type Daemon struct {
	cfg      *configs.Config
	logger   watermill.LoggerAdapter
	store    stores.Store
	embedded *brokers.Embedded
	commands broker.Broker
	events   broker.Broker
	relay    *publisher.Relay // envelopes to the buses
	answers  *publisher.Relay // outcomes to the results topic
	pipeline *router.Pipeline
	router   *message.Router
	stats    *router.Stats
	stopping chan struct{} // closed when Run starts stopping

	metrics   *telemetry.Metrics
	probe     *telemetry.Probe
	http      *telemetry.Server       // nil: http.listen is off
	scheduler *schedule.Scheduler     // nil: the schedule is off
	handlers  map[string]http.Handler // mounted on the listener beside /metrics

	// Now is the clock the aggregate is given (tests move it).
	Now func() time.Time
}

// Option adjusts a daemon being built.
type Option func(*options)

type options struct {
	wrapStore func(domain.Store) domain.Store
	handlers  map[string]http.Handler
	clock     schedule.Clock
}

// WithHandler mounts h on the operations listener (http.listen) at pattern,
// a net/http ServeMux pattern such as "GET /catalog": how other parts of
// emitd serve their pages beside /metrics, /healthz and /readyz.
func WithHandler(pattern string, h http.Handler) Option {
	return func(o *options) {
		if o.handlers == nil {
			o.handlers = map[string]http.Handler{}
		}
		o.handlers[pattern] = h
	}
}

// WithScheduleClock gives the schedule another clock (tests move it).
func WithScheduleClock(c schedule.Clock) Option {
	return func(o *options) { o.clock = c }
}

// WithStoreWrapper puts wrap around the store the command pipeline uses:
// the seam through which tests inject store faults (busy, down, panics) into
// an otherwise real daemon.
func WithStoreWrapper(wrap func(domain.Store) domain.Store) Option {
	return func(o *options) { o.wrapStore = wrap }
}

// New opens everything the configuration names. On error nothing is left open.
func New(ctx context.Context, cfg *configs.Config, logger watermill.LoggerAdapter, opts ...Option) (*Daemon, error) {
	if p := cfg.Validate(); len(p) > 0 {
		return nil, p // a configuration changed after Load must still hold
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	d := &Daemon{cfg: cfg, logger: logger, stats: &router.Stats{}, stopping: make(chan struct{}),
		Now: func() time.Time { return time.Now().UTC() }}
	started := false
	defer func() {
		if !started {
			d.closeAll()
		}
	}()
	var err error
	if d.store, err = stores.Open(ctx, cfg, stores.Daemon); err != nil {
		return nil, err
	}
	if brokers.UsesEmbedded(cfg) {
		if d.embedded, err = brokers.StartEmbedded(cfg, logger); err != nil {
			return nil, err
		}
		logger.Info("embedded broker listening", watermill.LogFields{"url": d.embedded.URL(), "store": d.embedded.StoreDir()})
	}
	if d.commands, err = brokers.Open(ctx, cfg.Commands.Broker, cfg, logger); err != nil {
		return nil, fmt.Errorf("commands broker %s: %w", cfg.Commands.Broker, err)
	}
	if err = d.commands.EnsureTopics(ctx, cfg.Commands.Topic, cfg.Commands.DLQTopic, cfg.Commands.ResultsTopic); err != nil {
		return nil, fmt.Errorf("commands broker %s: %w", cfg.Commands.Broker, err)
	}
	if d.events, err = brokers.Open(ctx, cfg.Events.Broker, cfg, logger); err != nil {
		return nil, fmt.Errorf("events broker %s: %w", cfg.Events.Broker, err)
	}
	if err = d.events.EnsureTopics(ctx, cfg.Events.DomainBus, cfg.Events.AnalyticsBus); err != nil {
		return nil, fmt.Errorf("events broker %s: %w", cfg.Events.Broker, err)
	}

	rc := cfg.Relay
	d.relay = publisher.NewRelay("events", publisher.EventFeed{Outbox: d.store, Policy: publisher.NewPolicy(cfg.EmitPolicy()),
		Format: brokers.EventFormat(cfg)},
		d.events.Publisher(), logger)
	d.relay.TopicOrder = []string{cfg.Events.DomainBus, cfg.Events.AnalyticsBus}
	entries, loc, err := cfg.ScheduleEntries()
	if err != nil {
		return nil, err
	}
	var names []string
	if cfg.Schedule.On() {
		for _, e := range entries {
			names = append(names, e.Name)
		}
	}
	d.metrics = telemetry.NewMetrics([]string{cfg.Events.DomainBus, cfg.Events.AnalyticsBus}, names)
	d.stats.Observer = d.metrics.Commands()
	d.relay.Observer = d.metrics.Events()
	d.answers = publisher.NewRelay("outcomes", publisher.OutcomeFeed{Outbox: d.store, Topic: cfg.Commands.ResultsTopic, DeadLetters: d.store},
		d.commands.Publisher(), logger)
	d.answers.Observer = d.metrics.Outcomes()
	for _, r := range []*publisher.Relay{d.relay, d.answers} {
		r.BatchSize, r.PollInterval, r.MaxBackoff = rc.BatchSize, rc.PollInterval, rc.MaxBackoff
	}

	sub, err := d.commands.Subscriber(broker.SubscribeOptions{Group: cfg.Commands.Group, FromBeginning: true,
		MaxInFlight: cfg.Router.MaxInFlight})
	if err != nil {
		return nil, err
	}
	var store domain.Store = d.store
	if o.wrapStore != nil {
		store = o.wrapStore(store)
	}
	retry := router.RetryPolicy{MaxRetries: *cfg.Router.Retry.MaxRetries, InitialInterval: cfg.Router.Retry.InitialInterval,
		MaxInterval: cfg.Router.Retry.MaxInterval, MaxElapsed: cfg.Router.Retry.MaxElapsed}
	d.pipeline = &router.Pipeline{
		Store:     store,
		Aggregate: domain.Aggregate{},
		Factory: domain.EnvelopeFactory{Meta: cfg.Metadata, DomainBus: cfg.Events.DomainBus,
			AnalyticsBus: cfg.Events.AnalyticsBus},
		Now:         func() time.Time { return d.Now() },
		MaxBatch:    cfg.Router.BatchSize,
		MaxInFlight: cfg.Router.MaxInFlight,
		MaxBytes:    cfg.Commands.MaxBytes,
		Timeout:     cfg.Router.HandlerTimeout,
		Retry:       retry,
		Ping:        d.store.Ping,
		OnCommit:    func() { d.relay.Notify(); d.answers.Notify() },
		Stats:       d.stats,
		Logger:      logger,
	}
	host, _ := os.Hostname()
	pq := router.NewPoisonQueue(router.PoisonQueue{
		Publisher: d.commands.Publisher(),
		Topic:     cfg.Commands.DLQTopic,
		Store:     d.store,
		Instance:  fmt.Sprintf("%s/%d", host, os.Getpid()),
		Retry:     retry,
		Timeout:   cfg.Router.HandlerTimeout,
		Stopping:  d.stopping,
		Stats:     d.stats,
		Logger:    logger,
	})
	if d.router, _, err = router.New(cfg.Commands.Topic, sub, d.pipeline, pq, logger); err != nil {
		return nil, err
	}
	// Watermill's own handler timing (emitd_watermill_handler_execution_time_seconds):
	// from the router's handing a command over until its batch settled it.
	d.router.AddMiddleware(wmetrics.NewPrometheusMetricsBuilder(d.metrics.Registry, "emitd", "watermill").NewRouterMiddleware().Middleware)

	commands, events := d.commands, d.events
	d.probe = &telemetry.Probe{
		Store: d.store,
		Brokers: []telemetry.Check{
			{Name: "commands broker " + cfg.Commands.Broker, Ping: func(ctx context.Context) error { return commands.Ping(ctx, cfg.Commands.Topic) }},
			{Name: "events broker " + cfg.Events.Broker, Ping: func(ctx context.Context) error { return events.Ping(ctx, cfg.Events.DomainBus) }},
		},
		PoisonDepth: func(ctx context.Context) (int64, bool, error) {
			return broker.QueueDepth(ctx, commands, cfg.Commands.DLQTopic, broker.DeadLetterGroup)
		},
		Running:     d.router.IsRunning,
		MaxRelayLag: cfg.HTTP.MaxRelayLag,
		Logger:      logger,
	}
	d.metrics.Registry.MustRegister(d.probe.Collector())

	if cfg.Schedule.On() && len(entries) > 0 {
		clock := o.clock
		if clock == nil {
			clock = schedule.RealClock{}
		}
		catchUp := time.Duration(0)
		if cfg.Schedule.CatchUp != nil {
			catchUp = *cfg.Schedule.CatchUp
		}
		d.scheduler = &schedule.Scheduler{Entries: entries, Location: loc, CatchUp: catchUp, Clock: clock, Leaser: d.store,
			Publish: func(ctx context.Context, f schedule.Firing) error {
				// A message id of its own: the command id inside makes a
				// repeated firing a duplicate for the pipeline, which
				// answers it (a broker that drops repeated message ids
				// would drop it unanswered, on some brokers only).
				msg := message.NewMessage(watermill.NewUUID(), f.Payload)
				msg.Metadata.Set(publisher.MetaCorrelationID, f.CommandID)
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				msg.SetContext(pctx)
				return commands.Publisher().Publish(cfg.Commands.Topic, msg)
			},
			OnFired: d.metrics.Fired, Logger: logger}
	}

	if addr := cfg.HTTP.ListenAddr(); addr != "" {
		// The event contract of this configuration, as `emitd catalog`
		// prints it: consumers discover the events where the daemon runs.
		cat, err := catalog.New(cfg)
		if err != nil {
			return nil, err
		}
		handlers := map[string]http.Handler{"GET /catalog": cat.Handler()}
		paths := "/metrics /healthz /readyz /catalog"
		if cfg.HTTP.PProf {
			// Index serves every named profile (heap, goroutine, ...) under
			// its prefix; the others are handlers of their own.
			handlers["GET /debug/pprof/"] = http.HandlerFunc(pprof.Index)
			handlers["GET /debug/pprof/cmdline"] = http.HandlerFunc(pprof.Cmdline)
			handlers["GET /debug/pprof/profile"] = http.HandlerFunc(pprof.Profile)
			handlers["GET /debug/pprof/symbol"] = http.HandlerFunc(pprof.Symbol)
			handlers["GET /debug/pprof/trace"] = http.HandlerFunc(pprof.Trace)
			paths += " /debug/pprof/"
		}
		for p, h := range o.handlers {
			handlers[p] = h
		}
		if d.http, err = telemetry.Listen(addr, d.metrics, d.probe, handlers); err != nil {
			return nil, err
		}
		logger.Info("operations listener", watermill.LogFields{"url": "http://" + d.http.Addr(), "paths": paths})
	}
	started = true
	return d, nil
}

// HTTPAddr is the address the operations listener listens on ("" when
// http.listen is off).
func (d *Daemon) HTTPAddr() string {
	if d.http == nil {
		return ""
	}
	return d.http.Addr()
}

// Store is the daemon's state store (tests read it).
func (d *Daemon) Store() stores.Store { return d.store }

// EmbeddedURL is the embedded broker's client URL, "" when none runs.
func (d *Daemon) EmbeddedURL() string {
	if d.embedded == nil {
		return ""
	}
	return d.embedded.URL()
}

// Running is closed once the router consumes commands.
func (d *Daemon) Running() chan struct{} { return d.router.Running() }

// Run serves until ctx is cancelled, then stops cleanly: no new command is
// taken, the batch being committed finishes and its commands are
// acknowledged, the commands queued behind it are left for redelivery, the
// relays flush their outboxes, and everything is closed. It returns nil on a
// clean stop.
func (d *Daemon) Run(ctx context.Context) error {
	relayCtx, stopRelays := context.WithCancel(context.Background())
	relayDone := make(chan error, 3)
	probeCtx, stopProbe := context.WithCancel(context.Background())
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); d.probe.Run(probeCtx) }()
	schedCtx, stopSchedule := context.WithCancel(context.Background())
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		if d.scheduler != nil {
			_ = d.scheduler.Run(schedCtx)
		}
	}()
	for name, r := range map[string]*publisher.Relay{"relay-events": d.relay, "relay-outcomes": d.answers} {
		go func() { relayDone <- r.RunLeased(relayCtx, d.store, name, 10*time.Second) }()
	}
	go func() { relayDone <- d.prune(relayCtx) }()

	routerDone := make(chan error, 1)
	go func() { routerDone <- d.router.Run(context.Background()) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-routerDone:
		if runErr == nil {
			runErr = errors.New("command router stopped unexpectedly")
		}
	}
	d.logger.Info("emitd stopping: finishing the batch in flight", nil)
	stopSchedule() // nothing new goes on the commands topic from here
	<-schedDone
	close(d.stopping)
	if err := d.router.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close router: %w", err))
	}
	stopRelays()
	for range 3 {
		if err := <-relayDone; err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	stopProbe()
	<-probeDone
	d.logStats()
	if err := d.closeAll(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	return runErr
}

// pruneEvery is how often the retention job runs.
const pruneEvery = 10 * time.Minute

// prune removes what store.retention no longer keeps, at start and then
// every pruneEvery, on one instance at a time (the lease "prune").
func (d *Daemon) prune(ctx context.Context) error {
	for ctx.Err() == nil {
		held, release, err := d.store.Lease(ctx, "prune")
		if err != nil {
			return nil // ctx ended
		}
		for held.Err() == nil {
			p, err := d.store.Prune(held, time.Now().Add(-d.cfg.Store.Retention))
			switch {
			case err != nil && held.Err() == nil:
				d.logger.Error("retention: prune failed; trying again later", err, nil)
			case p.Records+p.DeadLetters > 0:
				d.logger.Info("retention: pruned", watermill.LogFields{"records": p.Records, "dead_letters": p.DeadLetters,
					"older_than": d.cfg.Store.Retention.String()})
			}
			select {
			case <-held.Done():
			case <-time.After(pruneEvery):
			}
		}
		release()
	}
	return nil
}

func (d *Daemon) logStats() {
	counts := d.stats.Snapshot()
	counts["events.published"] = d.relay.Published()
	counts["events.dead_lettered"] = d.relay.DeadLettered()
	counts["outcomes.published"] = d.answers.Published()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := watermill.LogFields{}
	for _, k := range keys {
		fields[k] = counts[k]
	}
	d.logger.Info("emitd counters", fields)
}

func (d *Daemon) closeAll() error {
	var errs []error
	if d.http != nil {
		errs = append(errs, d.http.Close())
		d.http = nil
	}
	if d.commands != nil {
		errs = append(errs, d.commands.Close())
		d.commands = nil
	}
	if d.events != nil {
		errs = append(errs, d.events.Close())
		d.events = nil
	}
	if d.embedded != nil {
		d.embedded.Shutdown()
		d.embedded = nil
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
		d.store = nil
	}
	return errors.Join(errs...)
}
