package daemon_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/postgres/pgtest"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/cmd/emitd/internal/daemon"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/schedule"
)

// withListener turns the operations listener on, on a free port.
func withListener(cfg *configs.Config) *configs.Config {
	l := "127.0.0.1:0"
	cfg.HTTP.Listen = &l
	return cfg
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrape(t testing.TB, r *running) []sample {
	t.Helper()
	code, body := get(t, "http://"+r.d.HTTPAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	var out []sample
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s := sample{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(s.name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(s.name[i+1:], "}"), ",") {
				k, val, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(val, `"`)
			}
			s.name = s.name[:i]
		}
		out = append(out, s)
	}
	return out
}

// value is the sample of name with exactly these labels (-1: none).
func value(samples []sample, name string, labels ...string) float64 {
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && s.labels[labels[i]] == labels[i+1]
		}
		if match {
			return s.value
		}
	}
	return -1
}

// eventuallyMetric waits until name{labels} == want.
func eventuallyMetric(t *testing.T, r *running, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := value(scrape(t, r), name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The metrics of a journey match what happened: commands by type and
// status, events by bus, dead letters by reason, what the store and the
// poison queue hold.
func TestMetricsFollowTheJourney(t *testing.T) {
	r := start(t, withListener(testConfig(t)))
	if code, body := get(t, "http://"+r.d.HTTPAddr()+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	results := r.read(t, r.cfg.Commands.ResultsTopic)
	domainBus := r.read(t, r.cfg.Events.DomainBus)
	r.send(t, create("2026-12-10", 9, 2))
	_, d := envelopes(t, domainBus.waitN(t, "domain events", 2))
	slotID := d[0].Data["slotId"].(string)
	reserveID := r.send(t, reserve(slotID, "Sam Person"))[0]
	r.send(t, onSlot("CheckOut", slotID)) // rejected: not checked in
	again := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"type":"CheckIn","id":%q,"data":{"slotId":%q}}`, reserveID, slotID)))
	r.sendRaw(t, again)                                                                                                  // the reserve's id again: a duplicate
	r.sendRaw(t, message.NewMessage(watermill.NewUUID(), []byte("not a command")))                                       // malformed
	r.sendRaw(t, message.NewMessage(watermill.NewUUID(), []byte(`{"type":"CreateSlots","id":"x1","data":{"count":0}}`))) // invalid
	results.waitN(t, "outcomes", 6)

	for _, c := range []struct {
		typ, status string
		want        float64
	}{
		{"CreateSlots", "accepted", 1}, {"ReserveSlot", "accepted", 1}, {"CheckOut", "rejected", 1},
		{"CheckIn", "duplicate", 1}, {"unknown", "dead_lettered", 1}, {"CreateSlots", "dead_lettered", 1},
		{"CheckIn", "accepted", 0},
	} {
		eventuallyMetric(t, r, c.want, "emitd_commands_total", "status", c.status, "type", c.typ)
	}
	m := scrape(t, r)
	if n := value(m, "emitd_command_duration_seconds_count"); n != 6 {
		t.Errorf("command durations observed: %v, want 6", n)
	}
	for _, c := range []struct {
		reason string
		want   float64
	}{{"malformed", 1}, {"invalid", 1}, {"retries_exhausted", 0}} {
		if got := value(m, "emitd_dead_letters_total", "kind", "command", "reason", c.reason); got != c.want {
			t.Errorf("dead letters %s: %v, want %v", c.reason, got, c.want)
		}
	}
	// 2 Created + 1 Reserved, and the analytics copy of each.
	eventuallyMetric(t, r, 3, "emitd_events_published_total", "bus", "reservation")
	eventuallyMetric(t, r, 3, "emitd_events_published_total", "bus", "analytics")
	eventuallyMetric(t, r, 0, "emitd_outbox_pending")
	eventuallyMetric(t, r, 2, "emitd_poison_queue_depth") // nobody moved them into the store yet
	eventuallyMetric(t, r, 0, "emitd_dead_letters_stored", "kind", "command")
	eventuallyMetric(t, r, 1, "emitd_ready")
	m = scrape(t, r)
	if value(m, "emitd_publish_duration_seconds_count", "bus", "reservation") < 1 {
		t.Errorf("no publish duration observed for reservation")
	}
	found := false
	for _, s := range m {
		found = found || (s.name == "emitd_build_info" && s.labels["version"] != "" && s.value == 1)
	}
	if !found {
		t.Error("emitd_build_info{version} missing")
	}
}

func waitReady(t *testing.T, r *running, want int, says string) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(wait)
	for {
		code, body := get(t, "http://"+r.d.HTTPAddr()+"/readyz")
		if code == want && strings.Contains(body, says) {
			t.Logf("/readyz %d after %s: %s", code, time.Since(began).Round(100*time.Millisecond), strings.TrimSpace(body))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %q, want %d saying %q", code, body, want, says)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The database goes away: /readyz says 503 and why; back, 200 again.
func TestReadyzFollowsTheStore(t *testing.T) {
	proxy := pgtest.NewProxy(t)
	r := start(t, withListener(postgresConfig(t, proxy.URL(pgtest.Schema(t)))))
	waitReady(t, r, 200, "ready")
	proxy.Cut()
	waitReady(t, r, 503, "store: ")
	proxy.Restore()
	waitReady(t, r, 200, "ready")
}

// The broker goes away (a private nats-server, stopped): 503 naming the
// brokers; started again on the same port and store, 200 again.
func TestReadyzFollowsTheBroker(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	startNATS := func() func() {
		srv, _, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Dir: dir, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		stop := func() { once.Do(func() { srv.Shutdown(); srv.WaitForShutdown() }) }
		t.Cleanup(stop)
		return stop
	}
	stop := startNATS()
	cfg := withListener(testConfig(t))
	cfg.Commands.Broker, cfg.Events.Broker = natsjs.NATSName, natsjs.NATSName
	delete(cfg.Brokers, natsjs.EmbeddedName)
	cfg.Brokers.Set(natsjs.NATSName, &natsjs.NATSSection{URL: fmt.Sprintf("nats://127.0.0.1:%d", port)})
	r := start(t, cfg)
	waitReady(t, r, 200, "ready")
	stop()
	waitReady(t, r, 503, "commands broker nats: ")
	startNATS()
	waitReady(t, r, 200, "ready")
}

// clock is a schedule clock the test sets.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time) // never: these tests only start the schedule
	_ = d
	return ch
}

// A firing caught up at start closes the slots whose hour has passed; a
// restart within the catch-up window fires the same firing again, with the
// same command id, and it is processed once: no second Closed event.
func TestScheduledFiringProcessedOnce(t *testing.T) {
	cfg := withListener(testConfig(t))
	cfg.Schedule.Entries = []configs.ScheduleEntry{{Name: "close-slots", Cron: "0 7-17 * * *", Command: configs.ScheduleCommand{Type: "CloseSlots"}}}
	fire := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)

	r := start(t, cfg) // the schedule is off (testConfig)
	results := r.read(t, cfg.Commands.ResultsTopic)
	r.send(t, create("2026-11-30", 9, 2)) // ended yesterday
	results.waitN(t, "outcomes", 1)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	on := true
	cfg.Schedule.Enabled = &on
	for i, now := range []time.Time{fire.Add(30 * time.Minute), fire.Add(50 * time.Minute)} {
		r := start(t, cfg, daemon.WithScheduleClock(&clock{now: now}))
		results := r.read(t, cfg.Commands.ResultsTopic) // from the beginning
		domainBus := r.read(t, cfg.Events.DomainBus)
		got := outcomes(t, results.waitN(t, "outcomes", 2+i))
		o := got[schedule.CommandID("close-slots", fire)]
		if o.Type != domain.CmdCloseSlots || o.Status != domain.OutcomeAccepted || len(o.EventIDs) != 4 {
			t.Fatalf("run %d: the firing's outcome %+v, want accepted with 2 Closed events and their copies", i, o)
		}
		status := "accepted"
		if i == 1 {
			status = "duplicate"
		}
		eventuallyMetric(t, r, 1, "emitd_commands_total", "status", status, "type", "CloseSlots")
		eventuallyMetric(t, r, 1, "emitd_schedule_fired_total", "schedule", "close-slots")
		// The duplicate commits no envelope: what the bus holds now is all.
		envs, _ := envelopes(t, domainBus.waitN(t, "Created and Closed", 4))
		closed := 0
		for _, e := range envs {
			if e.DetailType == "Closed" {
				closed++
			}
		}
		if closed != 2 || len(envs) != 4 {
			t.Errorf("run %d: %d events, %d Closed; want 2 Created and 2 Closed (the repeated firing processed once)", i, len(envs), closed)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// The listener serves the event contract at /catalog: the same documents
// as `emitd catalog` for this configuration, in CloudEvents mode too.
func TestListenerServesTheCatalog(t *testing.T) {
	cfg := withListener(testConfig(t))
	cfg.Events.Format, cfg.Events.CloudEvents.Mode = configs.FormatCloudEvents, configs.ModeBinary
	r := start(t, cfg)
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.d.HTTPAddr() + "/catalog"
	if code, body := get(t, base); code != http.StatusOK || body != string(cat.AsyncAPI()) {
		t.Errorf("GET /catalog: %d, %d bytes; want the AsyncAPI document", code, len(body))
	}
	if code, body := get(t, base+"?format=jsonschema"); code != http.StatusOK || body != string(cat.JSONSchema()) ||
		!strings.Contains(body, "urn:emitd:cloudevent:reservation.slotreservation.reserved:domain:v1") {
		t.Errorf("GET /catalog?format=jsonschema: %d, %d bytes; want the JSON Schema document", code, len(body))
	}
	if code, body := get(t, base+"?format=xml"); code != http.StatusBadRequest || !strings.Contains(body, "unknown catalog format") {
		t.Errorf("GET /catalog?format=xml: %d %q", code, body)
	}
	resp, err := http.Post(base, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /catalog: %d, want 405", resp.StatusCode)
	}
}

// Go's profiles are served only when http.pprof asks for them: a heap
// profile (gzipped protobuf) with it, 404 without.
func TestListenerServesProfilesOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := withListener(testConfig(t))
		cfg.HTTP.PProf = on
		r := start(t, cfg)
		code, body := get(t, "http://"+r.d.HTTPAddr()+"/debug/pprof/heap")
		switch {
		case on && (code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b")):
			t.Errorf("http.pprof on: GET /debug/pprof/heap: %d, %d bytes; want a gzipped profile", code, len(body))
		case !on && code != http.StatusNotFound:
			t.Errorf("http.pprof off: GET /debug/pprof/heap: %d, want 404", code)
		}
	}
}
