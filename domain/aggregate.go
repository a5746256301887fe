package domain

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
)

// SlotSource is the store port the aggregate reads through (implemented by
// the SQLite and Postgres adapters, and by an in-memory fake in tests).
type SlotSource interface {
	GetSlot(ctx context.Context, slotID string) (Slot, bool, error)
	// ListSlots returns all slots having one of these statuses.
	ListSlots(ctx context.Context, statuses ...Status) ([]Slot, error)
}

// Change is the new state of one slot and the event its change emits.
type Change struct {
	Slot  Slot
	Event EventName
}

// Decision is everything one command changes, in event order.
type Decision struct {
	Changes []Change
}

// Aggregate applies the slot rules. It holds no state: the slots come from a
// SlotSource and the decision goes back to the caller to commit.
type Aggregate struct {
	NewID func() string // mints slot ids; nil => uuid.NewString
}

// unattendGrace is how long a reservation waits for its host to check in.
const unattendGrace = 10 * time.Minute

// Decide checks cmd against the current slots and returns the changes it
// makes. It never reads the wall clock: now is an input, so tests can move
// time. Errors: *InvalidCommandError (cmd cannot be processed),
// *RejectedError (a rule refused it), anything else is the source failing.
func (a Aggregate) Decide(ctx context.Context, cmd Command, now time.Time, src SlotSource) (Decision, error) {
	// The type and version here; the data as each case decodes it (the
	// decoders validate, as Validate does, and each runs once).
	if err := cmd.checkTypeAndVersion(); err != nil {
		return Decision{}, err
	}
	now = now.UTC()
	switch cmd.Type {
	case CmdCreateSlots:
		p, err := decodeCreateSlots(cmd.Data)
		if err != nil {
			return Decision{}, err
		}
		return a.createSlots(p, now), nil
	case CmdReserveSlot:
		d, err := decodeReserve(cmd.Data)
		if err != nil {
			return Decision{}, err
		}
		return transition(ctx, src, d.SlotID, now, EventReserved, is(StatusOpen), func(s *Slot) {
			s.Status, s.HostName = StatusReserved, d.HostName
		})
	case CmdCloseSlots, CmdUnattendSlots:
		if _, err := dataObject(cmd.Data, nil); err != nil {
			return Decision{}, err
		}
	}
	switch cmd.Type {
	case CmdCloseSlots:
		// Fix: the original re-closed closed slots; only open-ish ones qualify.
		return sweep(ctx, src, now, EventClosed, []Status{StatusOpen, StatusReserved, StatusCheckedIn},
			func(s Slot) bool { return !s.TimeSlot.EndTime.After(now) },
			func(s *Slot) { s.Status = StatusClosed })
	case CmdUnattendSlots:
		return sweep(ctx, src, now, EventUnattended, []Status{StatusReserved},
			func(s Slot) bool { return !s.TimeSlot.StartTime.Add(unattendGrace).After(now) },
			reopen)
	}
	ref, err := decodeSlotRef(cmd.Data)
	if err != nil {
		return Decision{}, err
	}
	switch cmd.Type {
	case CmdCancelSlot:
		return transition(ctx, src, ref.SlotID, now, EventCancelled, is(StatusReserved), reopen)
	case CmdCheckIn:
		return transition(ctx, src, ref.SlotID, now, EventCheckedIn, is(StatusReserved), func(s *Slot) {
			s.Status = StatusCheckedIn
		})
	case CmdCheckOut:
		return transition(ctx, src, ref.SlotID, now, EventCheckedOut, is(StatusCheckedIn), reopen)
	case CmdOpenSlot:
		// Fix: the original reopened anything, closed slots included, and
		// kept the host.
		return transition(ctx, src, ref.SlotID, now, EventOpened,
			func(s Status) bool { return s != StatusClosed }, reopen)
	}
	// Unreachable while Validate and this switch agree on the command list.
	return Decision{}, fmt.Errorf("domain: no rule for command type %q", cmd.Type)
}

func (a Aggregate) createSlots(p createSlotsPlan, now time.Time) Decision {
	day := p.day
	if day.IsZero() {
		day = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	}
	newID := a.NewID
	if newID == nil {
		newID = uuid.NewString
	}
	d := Decision{Changes: make([]Change, 0, p.count)}
	for h := p.startHour; h < p.startHour+p.count; h++ {
		start := day.Add(time.Duration(h) * time.Hour)
		d.Changes = append(d.Changes, Change{Event: EventCreated, Slot: Slot{
			SlotID:    newID(),
			TimeSlot:  TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)},
			Status:    StatusOpen,
			CreatedAt: now,
			UpdatedAt: now,
			Version:   1,
		}})
	}
	return d
}

var errNoSource = errors.New("domain: no slot source")

// transition is the single-slot rule: load, check the precondition, apply.
func transition(ctx context.Context, src SlotSource, slotID string, now time.Time,
	event EventName, allowed func(Status) bool, apply func(*Slot)) (Decision, error) {
	if src == nil {
		return Decision{}, errNoSource
	}
	s, ok, err := src.GetSlot(ctx, slotID)
	if err != nil {
		return Decision{}, fmt.Errorf("load slot %s: %w", slotID, err)
	}
	if !ok {
		return Decision{}, errSlotNotFound()
	}
	if !allowed(s.Status) {
		return Decision{}, errWrongStatus(event, s.Status)
	}
	return Decision{Changes: []Change{{Slot: touch(s, now, apply), Event: event}}}, nil
}

// sweep is the scheduled, many-slot rule. Nothing due is an empty decision,
// not an error: the scheduler fires whether or not there is work.
func sweep(ctx context.Context, src SlotSource, now time.Time, event EventName,
	statuses []Status, due func(Slot) bool, apply func(*Slot)) (Decision, error) {
	if src == nil {
		return Decision{}, errNoSource
	}
	slots, err := src.ListSlots(ctx, statuses...)
	if err != nil {
		return Decision{}, fmt.Errorf("list slots: %w", err)
	}
	// Sorted so the events (and the outbox) come out the same on every run.
	sort.Slice(slots, func(i, j int) bool {
		a, b := slots[i].TimeSlot.StartTime, slots[j].TimeSlot.StartTime
		if !a.Equal(b) {
			return a.Before(b)
		}
		return slots[i].SlotID < slots[j].SlotID
	})
	var d Decision
	for _, s := range slots {
		// Re-checked here rather than trusting the source's filter.
		if !hasStatus(s.Status, statuses) || !due(s) {
			continue
		}
		d.Changes = append(d.Changes, Change{Slot: touch(s, now, apply), Event: event})
	}
	return d, nil
}

func touch(s Slot, now time.Time, apply func(*Slot)) Slot {
	apply(&s)
	s.UpdatedAt = now
	s.Version++
	return s
}

func reopen(s *Slot) { s.Status, s.HostName = StatusOpen, "" }

func is(want Status) func(Status) bool { return func(s Status) bool { return s == want } }

func hasStatus(s Status, in []Status) bool {
	for _, x := range in {
		if s == x {
			return true
		}
	}
	return false
}
