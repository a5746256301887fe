package schedule

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/emitd/emitd/publisher"
)

// Clock is the scheduler's time: the real one in the daemon, one that tests
// move by hand.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Firing is one command a schedule entry fires.
type Firing struct {
	Entry     string
	At        time.Time // the scheduled fire time
	CommandID string
	Payload   []byte // the command JSON
	CatchUp   bool   // fired at start for a time missed while no instance fired
}

// LeaseName is the store lease that the firing instance holds.
const LeaseName = "schedule"

// maxWait bounds one sleep, so that a wall clock that jumps (a suspended
// host, a corrected clock) is noticed within it.
const maxWait = time.Minute

// Scheduler fires the entries on their schedules while this instance holds
// the lease LeaseName.
type Scheduler struct {
	Entries  []Entry
	Location *time.Location
	// CatchUp: at start (and whenever this instance takes the lease over), the
	// last fire time of each cron entry that lies less than CatchUp ago is
	// fired once. It was most likely missed while no instance ran; if it
	// was not, its command id is processed already and the pipeline answers
	// it as a duplicate. 0: no catch-up.
	CatchUp time.Duration
	Clock   Clock
	Leaser  publisher.Leaser
	// Publish puts a firing's command on the commands topic.
	Publish func(ctx context.Context, f Firing) error
	// OnFired is called after each firing the commands topic took.
	OnFired func(f Firing)
	Logger  watermill.LoggerAdapter
}

// Run fires until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.Clock == nil {
		s.Clock = RealClock{}
	}
	if s.Location == nil {
		s.Location = time.UTC
	}
	if s.Logger == nil {
		s.Logger = watermill.NopLogger{}
	}
	if len(s.Entries) == 0 {
		return nil
	}
	for ctx.Err() == nil {
		held, release, err := s.Leaser.Lease(ctx, LeaseName)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.Logger.Error("schedule: cannot take the lease; trying again", err, nil)
			select {
			case <-ctx.Done():
			case <-s.Clock.After(5 * time.Second):
			}
			continue
		}
		s.Logger.Info("schedule: this instance fires the schedule", watermill.LogFields{"lease": LeaseName, "entries": len(s.Entries)})
		s.run(held)
		release()
		if ctx.Err() == nil {
			s.Logger.Error("schedule: lost the lease; another instance fires until this one takes it again", held.Err(), nil)
		}
	}
	return nil
}

// run fires while ctx (the lease) lasts.
func (s *Scheduler) run(ctx context.Context) {
	now := s.Clock.Now().In(s.Location)
	next := make([]time.Time, len(s.Entries))
	for i, e := range s.Entries {
		if s.CatchUp > 0 && !Repeats(e.Schedule) {
			if t, ok := latest(e.Schedule, now.Add(-s.CatchUp), now); ok {
				s.fire(ctx, e, t, true)
			}
		}
		next[i] = e.Schedule.Next(now)
	}
	for ctx.Err() == nil {
		first := time.Time{}
		for _, t := range next {
			if !t.IsZero() && (first.IsZero() || t.Before(first)) {
				first = t
			}
		}
		if first.IsZero() {
			<-ctx.Done() // nothing will ever fire again
			return
		}
		if wait := first.Sub(s.Clock.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.Clock.After(min(wait, maxWait)):
			}
			continue
		}
		now := s.Clock.Now().In(s.Location)
		for i, e := range s.Entries {
			if next[i].IsZero() || next[i].After(now) {
				continue
			}
			// Late (a sleep overran, the host was suspended): the due
			// time fires once, the latest one, not every one missed.
			t := next[i]
			for n := e.Schedule.Next(t); !n.IsZero() && !n.After(now); n = e.Schedule.Next(n) {
				t = n
			}
			s.fire(ctx, e, t, false)
			next[i] = e.Schedule.Next(now)
		}
	}
}

// fire publishes one firing, retrying with backoff while the commands
// broker refuses it. It gives up once the firing is older than the
// catch-up window (at least a minute): by then the next start's catch-up,
// or the next fire time, is the better answer, and with the same command id
// nothing is done twice.
func (s *Scheduler) fire(ctx context.Context, e Entry, at time.Time, catchUp bool) {
	payload, cmd, err := e.Command(at)
	if err != nil { // the configuration was validated: not expected
		s.Logger.Error("schedule: cannot build the command", err, watermill.LogFields{"entry": e.Name})
		return
	}
	f := Firing{Entry: e.Name, At: at, CommandID: cmd.ID, Payload: payload, CatchUp: catchUp}
	giveUp := at.Add(max(s.CatchUp, time.Minute))
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err := s.Publish(ctx, f)
		if err == nil {
			s.Logger.Info("schedule: fired", watermill.LogFields{"entry": e.Name, "at": at.Format(time.RFC3339),
				"type": string(e.Type), "command_id": f.CommandID, "catch_up": catchUp})
			if s.OnFired != nil {
				s.OnFired(f)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt == 1 {
			s.Logger.Error("schedule: the commands topic does not take the firing; trying again", err,
				watermill.LogFields{"entry": e.Name, "at": at.Format(time.RFC3339)})
		}
		if !s.Clock.Now().Before(giveUp) {
			s.Logger.Error("schedule: firing given up; the next start's catch-up or the next fire time takes over", err,
				watermill.LogFields{"entry": e.Name, "at": at.Format(time.RFC3339), "attempts": attempt})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.Clock.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
