package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/emitd/emitd/adapters/postgres/pgtest"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog"
	"github.com/emitd/emitd/cmd/emitd/internal/catalog/catalogtest"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/domain"
)

// postgresConfig is the embedded default with the state in PostgreSQL (a
// fresh schema of the machine's database).
func postgresConfig(t *testing.T, url string) *configs.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Store = configs.StoreConfig{Driver: configs.StorePostgres, URL: url, Retention: configs.DefaultRetention}
	return cfg
}

// The journey, with the state in PostgreSQL.
func TestJourneyOnPostgres(t *testing.T) {
	cfg := postgresConfig(t, pgtest.Schema(t))
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := catalogtest.New(t, cat, nil)
	r := start(t, cfg)
	r.commands = v.Command
	results := r.read(t, r.cfg.Commands.ResultsTopic)
	domainBus := r.read(t, r.cfg.Events.DomainBus)

	r.send(t, create("2026-12-01", 9, 1))
	_, d := envelopes(t, domainBus.waitN(t, "domain events", 1))
	slotID := d[0].Data["slotId"].(string)
	ids := r.send(t, reserve(slotID, "Sam Person"), onSlot("CheckIn", slotID), onSlot("CheckOut", slotID),
		reserve(slotID, "Alex Other"), onSlot("CancelSlot", slotID), onSlot("CancelSlot", slotID))
	outcomeMsgs := results.waitN(t, "outcomes", 7)
	for _, m := range outcomeMsgs {
		v.Outcome(t, m.Payload)
	}
	got := outcomes(t, outcomeMsgs)
	for i, id := range ids {
		want := domain.OutcomeAccepted
		if i == 5 {
			want = domain.OutcomeRejected // cancelled already
		}
		if got[id].Status != want {
			t.Errorf("step %d: %+v, want %s", i, got[id], want)
		}
	}
	domMsgs := domainBus.waitN(t, "domain events", 6)
	for _, m := range domMsgs {
		v.Event(t, cfg.Events.DomainBus, m)
	}
	_, details := envelopes(t, domMsgs)
	var events []any
	for _, d := range details {
		events = append(events, d.Data["event"])
	}
	want := []any{"CREATED", "RESERVED", "CHECKED_IN", "CHECKED_OUT", "RESERVED", "CANCELLED"}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("events %v, want %v", events, want)
		}
	}
}

// The database goes away while the daemon runs: commands wait (none is
// dead-lettered for it), and are processed, in order, when it is back.
func TestPostgresOutageDeadLettersNothing(t *testing.T) {
	proxy := pgtest.NewProxy(t)
	cfg := postgresConfig(t, proxy.URL(pgtest.Schema(t)))
	r := start(t, cfg)
	results := r.read(t, cfg.Commands.ResultsTopic)
	dlq := r.read(t, cfg.Commands.DLQTopic)
	domainBus := r.read(t, cfg.Events.DomainBus)
	r.send(t, create("2026-12-02", 9, 1))
	_, d := envelopes(t, domainBus.waitN(t, "domain events", 1))
	slotID := d[0].Data["slotId"].(string)
	results.waitN(t, "outcomes", 1)

	proxy.Cut()
	ids := r.send(t, reserve(slotID, "Sam Person"), onSlot("CheckIn", slotID), create("2026-12-03", 9, 2))
	time.Sleep(3 * time.Second) // well past the retry budget's first attempts
	if n := len(results.all()); n != 1 {
		t.Fatalf("%d outcomes while the database is away, want only the first", n)
	}
	proxy.Restore()
	got := outcomes(t, results.waitN(t, "outcomes", 4))
	for _, id := range ids {
		if got[id].Status != domain.OutcomeAccepted {
			t.Errorf("command %s after the outage: %+v", id, got[id])
		}
	}
	if n := len(dlq.all()); n != 0 {
		t.Errorf("%d dead letters: an outage must dead-letter nothing", n)
	}
	_, details := envelopes(t, domainBus.waitN(t, "domain events", 5))
	if details[1].Data["event"] != "RESERVED" || details[2].Data["event"] != "CHECKED_IN" {
		t.Errorf("after the outage: %v then %v, want RESERVED then CHECKED_IN", details[1].Data["event"], details[2].Data["event"])
	}
	// The relay removes what it published (after the events arrive).
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		n, err := r.d.Store().OutboxLen(context.Background())
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox holds %d (%v) after the outage", n, err)
		}
	}
}
