package schedule_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/schedule"
)

// clock is a clock the test moves; the scheduler's waits end when it passes
// their deadline.
type clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waiting chan struct{} // a signal each time someone starts waiting
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t, waiting: make(chan struct{}, 100)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return ch
}

// set moves the clock to t and ends the waits that are due.
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// soloLease is the lease of a store with one instance (SQLite's).
type soloLease struct{}

func (soloLease) Lease(ctx context.Context, _ string) (context.Context, func(), error) {
	held, cancel := context.WithCancel(ctx)
	return held, cancel, nil
}

type recorder struct {
	ch   chan schedule.Firing
	fail func(schedule.Firing) error
}

func (r *recorder) publish(_ context.Context, f schedule.Firing) error {
	if r.fail != nil {
		if err := r.fail(f); err != nil {
			return err
		}
	}
	r.ch <- f
	return nil
}

func (r *recorder) next(t *testing.T, what string) schedule.Firing {
	t.Helper()
	select {
	case f := <-r.ch:
		return f
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no firing", what)
	}
	return schedule.Firing{}
}

// none asserts that nothing fires while the scheduler waits on the clock.
func (r *recorder) none(t *testing.T, c *clock, what string) {
	t.Helper()
	awaitWaiting(t, c)
	select {
	case f := <-r.ch:
		t.Fatalf("%s: %s fired at %s", what, f.Entry, f.At)
	default:
	}
}

// awaitWaiting waits until the scheduler sleeps on the clock.
func awaitWaiting(t *testing.T, c *clock) {
	t.Helper()
	select {
	case <-c.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduler never waits for the clock")
	}
}

func entry(t *testing.T, name, spec string, typ domain.CommandType) schedule.Entry {
	t.Helper()
	e, err := schedule.NewEntry(name, spec, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func run(t *testing.T, s *schedule.Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// A Tuesday.
var day = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func TestFiresOnTimeWithCatchUpOnce(t *testing.T) {
	c := newClock(at(6, 59).Add(30 * time.Second))
	rec := &recorder{ch: make(chan schedule.Firing, 10)}
	s := &schedule.Scheduler{
		Entries: []schedule.Entry{entry(t, "unattend-slots", "10 6-16 * * *", domain.CmdUnattendSlots),
			entry(t, "close-slots", "0 7-17 * * *", domain.CmdCloseSlots)},
		CatchUp: time.Hour, Clock: c, Leaser: soloLease{}, Publish: rec.publish,
	}
	run(t, s)
	// At start, the unattend of 06:10 (49 minutes ago) is caught up, once;
	// close-slots had no fire time in the last hour.
	f := rec.next(t, "catch-up")
	if f.Entry != "unattend-slots" || !f.At.Equal(at(6, 10)) || !f.CatchUp {
		t.Fatalf("catch-up fired %+v, want unattend-slots at 06:10", f)
	}
	if f.CommandID != schedule.CommandID("unattend-slots", at(6, 10)) {
		t.Errorf("command id %s is not the one derived from the entry and the fire time", f.CommandID)
	}
	rec.none(t, c, "before 07:00")

	c.set(at(7, 0))
	f = rec.next(t, "07:00")
	if f.Entry != "close-slots" || !f.At.Equal(at(7, 0)) || f.CatchUp {
		t.Fatalf("at 07:00: %+v, want close-slots on time", f)
	}
	cmd, err := domain.ParseCommand(f.Payload)
	if err != nil || cmd.Type != domain.CmdCloseSlots || cmd.ID != f.CommandID {
		t.Fatalf("the firing's command %s: %+v %v", f.Payload, cmd, err)
	}
	rec.none(t, c, "between 07:00 and 07:10")
	c.set(at(7, 10))
	if f = rec.next(t, "07:10"); f.Entry != "unattend-slots" || !f.At.Equal(at(7, 10)) {
		t.Fatalf("at 07:10: %+v", f)
	}
	// Late: the clock jumps past several fire times of each entry; the
	// latest of each fires, once. (The jump comes once the scheduler sleeps
	// again: a wait it registers after the jump would be measured from it.)
	awaitWaiting(t, c)
	c.set(at(10, 5))
	if f = rec.next(t, "after the jump"); f.Entry != "unattend-slots" || !f.At.Equal(at(9, 10)) {
		t.Fatalf("after a jump to 10:05: %+v, want unattend-slots at 09:10 only", f)
	}
	if f = rec.next(t, "after the jump"); f.Entry != "close-slots" || !f.At.Equal(at(10, 0)) {
		t.Fatalf("after a jump to 10:05: %+v, want close-slots at 10:00 only", f)
	}
	rec.none(t, c, "after the jump")
}

// A restart within the catch-up window fires the same firing again, with
// the same command id: the pipeline processes it once.
func TestRestartRefiresWithTheSameID(t *testing.T) {
	rec := &recorder{ch: make(chan schedule.Firing, 10)}
	start := func(now time.Time) func() {
		c := newClock(now)
		return run(t, &schedule.Scheduler{Entries: []schedule.Entry{entry(t, "close-slots", "0 7-17 * * *", domain.CmdCloseSlots)},
			CatchUp: time.Hour, Clock: c, Leaser: soloLease{}, Publish: rec.publish})
	}
	stop := start(at(7, 20))
	first := rec.next(t, "first start")
	stop()
	start(at(7, 40))
	again := rec.next(t, "restart")
	if !first.At.Equal(at(7, 0)) || first.CommandID != again.CommandID || string(first.Payload) != string(again.Payload) {
		t.Fatalf("first %+v, after the restart %+v: want the 07:00 firing twice, same id and bytes", first, again)
	}
}

func TestZoneAndEveryAndNoCatchUpForEvery(t *testing.T) {
	stockholm, err := schedule.LoadLocation("Europe/Stockholm")
	if err != nil {
		t.Fatal(err)
	}
	c := newClock(at(3, 30))
	rec := &recorder{ch: make(chan schedule.Firing, 10)}
	run(t, &schedule.Scheduler{
		Entries: []schedule.Entry{entry(t, "create-slots", "0 5 * * MON-FRI", domain.CmdCreateSlots),
			entry(t, "tick", "@every 20m", domain.CmdCloseSlots)},
		Location: stockholm, CatchUp: time.Hour, Clock: c, Leaser: soloLease{}, Publish: rec.publish,
	})
	rec.none(t, c, "@every is never caught up")
	c.set(at(3, 50))
	if f := rec.next(t, "@every"); f.Entry != "tick" || !f.At.Equal(at(3, 50)) {
		t.Fatalf("@every 20m from 03:30: %+v", f)
	}
	awaitWaiting(t, c)
	c.set(at(4, 0)) // 05:00 in Stockholm (UTC+1 in December)
	f := rec.next(t, "05:00 Stockholm")
	if f.Entry != "create-slots" || !f.At.Equal(at(4, 0)) {
		t.Fatalf("create-slots: %+v, want 04:00 UTC", f)
	}
	cmd, _ := domain.ParseCommand(f.Payload)
	if string(cmd.Data) != `{"date":"2026-12-01"}` {
		t.Errorf("CreateSlots data %s, want the fire time's date", cmd.Data)
	}
}

// A commands topic that refuses the firing: tried again, with backoff, and
// it fires once the topic takes it.
func TestFiringRetriedUntilTaken(t *testing.T) {
	c := newClock(at(6, 59))
	refusals := 0
	rec := &recorder{ch: make(chan schedule.Firing, 10), fail: func(schedule.Firing) error {
		if refusals < 3 {
			refusals++
			return errors.New("broker down")
		}
		return nil
	}}
	run(t, &schedule.Scheduler{Entries: []schedule.Entry{entry(t, "close-slots", "0 7-17 * * *", domain.CmdCloseSlots)},
		Clock: c, Leaser: soloLease{}, Publish: rec.publish})
	awaitWaiting(t, c)
	c.set(at(7, 0))
	for i, now := 0, at(7, 0); i < 3; i++ {
		awaitWaiting(t, c)              // the backoff
		now = now.Add(10 * time.Second) // past each backoff (1s, 2s, 4s)
		c.set(now)
	}
	if f := rec.next(t, "after the refusals"); !f.At.Equal(at(7, 0)) || refusals != 3 {
		t.Fatalf("%+v after %d refusals", f, refusals)
	}
}

func TestNext(t *testing.T) {
	e := entry(t, "close-slots", "0 7-17 * * *", domain.CmdCloseSlots)
	got := schedule.Next(e.Schedule, at(16, 30), time.UTC, 3)
	want := []time.Time{at(17, 0), at(24+7, 0), at(24+8, 0)}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Fatalf("next three after 16:30: %v, want %v", got, want)
		}
	}
}
