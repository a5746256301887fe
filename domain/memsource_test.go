package domain

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// memSource is an in-memory SlotSource: a test fixture for the store port.
type memSource struct {
	slots map[string]Slot
	err   error // returned by every call when set, to play a failing store
}

func newMemSource(slots ...Slot) *memSource {
	m := &memSource{slots: map[string]Slot{}}
	for _, s := range slots {
		m.slots[s.SlotID] = s
	}
	return m
}

func (m *memSource) GetSlot(_ context.Context, id string) (Slot, bool, error) {
	if m.err != nil {
		return Slot{}, false, m.err
	}
	s, ok := m.slots[id]
	return s, ok, nil
}

// ListSlots returns in map order on purpose: the aggregate must sort.
func (m *memSource) ListSlots(_ context.Context, statuses ...Status) ([]Slot, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []Slot
	for _, s := range m.slots {
		if hasStatus(s.Status, statuses) {
			out = append(out, s)
		}
	}
	return out, nil
}

// apply commits a decision the way a store would, including the optimistic
// version check, so scenarios can chain commands.
func (m *memSource) apply(t *testing.T, d Decision) {
	t.Helper()
	for _, c := range d.Changes {
		if got, want := m.slots[c.Slot.SlotID].Version, c.Slot.Version-1; got != want {
			t.Fatalf("slot %s: stored version %d, change expects %d", c.Slot.SlotID, got, want)
		}
		m.slots[c.Slot.SlotID] = c.Slot
	}
}

var errStoreDown = errors.New("store down")

// seqIDs mints deterministic UUID-shaped ids: prefix selects the family.
func seqIDs(prefix string) func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, n)
	}
}

// at is a time on the scenarios' day, 2026-11-25 UTC.
func at(hour, min int) time.Time { return time.Date(2026, 11, 25, hour, min, 0, 0, time.UTC) }

// slotAt is a stored slot starting at hour on the scenarios' day.
func slotAt(id string, hour int, st Status, host string) Slot {
	return Slot{
		SlotID:    id,
		HostName:  host,
		TimeSlot:  TimeSlot{StartTime: at(hour, 0), EndTime: at(hour+1, 0)},
		Status:    st,
		CreatedAt: at(5, 0),
		UpdatedAt: at(5, 0),
		Version:   3,
	}
}
