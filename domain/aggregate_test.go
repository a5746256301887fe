package domain

import (
	"context"
	"fmt"
	"testing"
	"time"
)

const (
	idA = "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e01"
	idB = "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e02"
	idC = "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e03"
	idD = "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e04"
	idE = "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e05"
	idF = "0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e06"
)

// cmd builds a command the way it arrives: as bytes, through ParseCommand.
func cmd(t *testing.T, typ CommandType, data string) Command {
	t.Helper()
	b := fmt.Sprintf(`{"type":%q,"id":"c-1","correlationId":"corr-1"}`, typ)
	if data != "" {
		b = fmt.Sprintf(`{"type":%q,"id":"c-1","correlationId":"corr-1","data":%s}`, typ, data)
	}
	c, err := ParseCommand([]byte(b))
	if err != nil {
		t.Fatalf("ParseCommand(%s): %v", b, err)
	}
	return c
}

func ref(id string) string { return fmt.Sprintf(`{"slotId":%q}`, id) }

func decide(t *testing.T, c Command, now time.Time, src SlotSource) (Decision, error) {
	t.Helper()
	return Aggregate{NewID: seqIDs("aaaaaaaa")}.Decide(context.Background(), c, now, src)
}

// decideOne decides and expects exactly one change.
func decideOne(t *testing.T, c Command, now time.Time, src SlotSource) Change {
	t.Helper()
	d, err := decide(t, c, now, src)
	return one(t, d, err)
}

// one expects exactly one change and returns it.
func one(t *testing.T, d Decision, err error) Change {
	t.Helper()
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if len(d.Changes) != 1 {
		t.Fatalf("got %d changes, want 1: %+v", len(d.Changes), d.Changes)
	}
	return d.Changes[0]
}

func wantRejected(t *testing.T, err error, msg string) {
	t.Helper()
	if !IsRejected(err) {
		t.Fatalf("got %v, want a rejection", err)
	}
	if err.Error() != msg {
		t.Fatalf("rejection message\n got: %s\nwant: %s", err.Error(), msg)
	}
	if IsInvalidCommand(err) {
		t.Fatalf("a rejection must not also be an invalid command")
	}
}

func wantSlot(t *testing.T, c Change, ev EventName, st Status, host string, version int, now time.Time) {
	t.Helper()
	if c.Event != ev || c.Slot.Status != st || c.Slot.HostName != host || c.Slot.Version != version || !c.Slot.UpdatedAt.Equal(now) {
		t.Fatalf("got event %s slot %+v; want event %s, status %s, host %q, version %d, updatedAt %s",
			c.Event, c.Slot, ev, st, host, version, now)
	}
}

// docs/DOMAIN.md scenario 1.
func TestCreateSlotsDefaults(t *testing.T) {
	now := at(5, 0)
	d, err := decide(t, cmd(t, CmdCreateSlots, ""), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changes) != 10 {
		t.Fatalf("got %d slots, want 10", len(d.Changes))
	}
	seen := map[string]bool{}
	for i, c := range d.Changes {
		s := c.Slot
		wantStart := at(6+i, 0)
		if c.Event != EventCreated || s.Status != StatusOpen || s.HostName != "" || s.Version != 1 {
			t.Errorf("slot %d: event %s %+v", i, c.Event, s)
		}
		if !s.TimeSlot.StartTime.Equal(wantStart) || !s.TimeSlot.EndTime.Equal(wantStart.Add(time.Hour)) {
			t.Errorf("slot %d: %v-%v, want start %v, one hour", i, s.TimeSlot.StartTime, s.TimeSlot.EndTime, wantStart)
		}
		if !s.CreatedAt.Equal(now) || !s.UpdatedAt.Equal(now) {
			t.Errorf("slot %d: createdAt %v updatedAt %v, want %v", i, s.CreatedAt, s.UpdatedAt, now)
		}
		if seen[s.SlotID] || s.SlotID == "" {
			t.Errorf("slot %d: id %q empty or repeated", i, s.SlotID)
		}
		seen[s.SlotID] = true
	}
	if last := d.Changes[9].Slot.TimeSlot.EndTime; !last.Equal(at(16, 0)) {
		t.Errorf("last slot ends %v, want 16:00", last)
	}
}

func TestCreateSlotsDateIsUTCDateOfNow(t *testing.T) {
	// 23:30 in New York is already the next day in UTC.
	ny := time.FixedZone("EST", -5*3600)
	d, err := decide(t, cmd(t, CmdCreateSlots, `{"startHour":8,"count":1}`), time.Date(2026, 11, 25, 23, 30, 0, 0, ny), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Changes[0].Slot.TimeSlot.StartTime, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("start %v, want %v in UTC", got, want)
	}
	d, err = decide(t, cmd(t, CmdCreateSlots, `{"date":"2027-01-04","startHour":14,"count":10}`), at(5, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, first := len(d.Changes), d.Changes[0].Slot.TimeSlot.StartTime; n != 10 || !first.Equal(time.Date(2027, 1, 4, 14, 0, 0, 0, time.UTC)) {
		t.Fatalf("got %d slots from %v", n, first)
	}
}

func TestCreateSlotsUsesDefaultUUIDs(t *testing.T) {
	d, err := Aggregate{}.Decide(context.Background(), cmd(t, CmdCreateSlots, `{"count":2}`), at(5, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Changes {
		if checkSlotID(c.Slot.SlotID) != nil {
			t.Errorf("minted id %q is not a canonical UUID", c.Slot.SlotID)
		}
	}
}

// docs/DOMAIN.md scenario 2.
func TestReserveSlot(t *testing.T) {
	now := at(9, 0)
	src := newMemSource(slotAt(idA, 10, StatusOpen, ""), slotAt(idB, 11, StatusCheckedIn, "Kim"))
	c := decideOne(t, cmd(t, CmdReserveSlot, `{"slotId":"`+idA+`","hostName":"Sam Person"}`), now, src)
	wantSlot(t, c, EventReserved, StatusReserved, "Sam Person", 4, now)

	_, err := decide(t, cmd(t, CmdReserveSlot, `{"slotId":"`+idB+`","hostName":"Sam"}`), now, src)
	wantRejected(t, err, "Slot is not in the correct status to be updated to 'RESERVED' status, it was in 'CHECKED_IN' state!")

	_, err = decide(t, cmd(t, CmdReserveSlot, `{"slotId":"`+idF+`","hostName":"Sam"}`), now, src)
	wantRejected(t, err, "A slot was not found with the provided ID.")
}

// docs/DOMAIN.md scenario 3.
func TestCancelSlot(t *testing.T) {
	now := at(9, 0)
	src := newMemSource(slotAt(idA, 10, StatusReserved, "Sam"), slotAt(idB, 11, StatusOpen, ""))
	wantSlot(t, decideOne(t, cmd(t, CmdCancelSlot, ref(idA)), now, src), EventCancelled, StatusOpen, "", 4, now)
	_, err := decide(t, cmd(t, CmdCancelSlot, ref(idB)), now, src)
	wantRejected(t, err, "Slot is not in the correct status to be updated to 'CANCELLED' status, it was in 'OPEN' state!")
}

// docs/DOMAIN.md scenario 4.
func TestCheckIn(t *testing.T) {
	now := at(10, 2)
	src := newMemSource(slotAt(idA, 10, StatusReserved, "Sam"), slotAt(idB, 10, StatusOpen, ""))
	wantSlot(t, decideOne(t, cmd(t, CmdCheckIn, ref(idA)), now, src), EventCheckedIn, StatusCheckedIn, "Sam", 4, now)
	_, err := decide(t, cmd(t, CmdCheckIn, ref(idB)), now, src)
	wantRejected(t, err, "Slot is not in the correct status to be updated to 'CHECKED_IN' status, it was in 'OPEN' state!")
}

// docs/DOMAIN.md scenario 5.
func TestCheckOut(t *testing.T) {
	now := at(10, 50)
	src := newMemSource(slotAt(idA, 10, StatusCheckedIn, "Sam"), slotAt(idB, 10, StatusOpen, ""))
	wantSlot(t, decideOne(t, cmd(t, CmdCheckOut, ref(idA)), now, src), EventCheckedOut, StatusOpen, "", 4, now)
	_, err := decide(t, cmd(t, CmdCheckOut, ref(idB)), now, src)
	wantRejected(t, err, "Slot is not in the correct status to be updated to 'CHECKED_OUT' status, it was in 'OPEN' state!")
}

// docs/DOMAIN.md scenario 6, with the fix: a CLOSED slot is not reopened.
func TestOpenSlot(t *testing.T) {
	now := at(10, 20)
	src := newMemSource(slotAt(idA, 10, StatusCheckedIn, "Sam"), slotAt(idB, 8, StatusClosed, "Kim"), slotAt(idC, 12, StatusOpen, ""))
	wantSlot(t, decideOne(t, cmd(t, CmdOpenSlot, ref(idA)), now, src), EventOpened, StatusOpen, "", 4, now)
	wantSlot(t, decideOne(t, cmd(t, CmdOpenSlot, ref(idC)), now, src), EventOpened, StatusOpen, "", 4, now)
	_, err := decide(t, cmd(t, CmdOpenSlot, ref(idB)), now, src)
	wantRejected(t, err, "Slot is not in the correct status to be updated to 'OPENED' status, it was in 'CLOSED' state!")
}

// docs/DOMAIN.md scenario 7, with the fix: closed slots are not closed again.
func TestCloseSlots(t *testing.T) {
	now := at(12, 0)
	src := newMemSource(
		slotAt(idE, 9, StatusOpen, ""),         // ended 10:00
		slotAt(idB, 10, StatusReserved, "Sam"), // ended 11:00
		slotAt(idA, 10, StatusCheckedIn, "Kim"),
		slotAt(idC, 11, StatusOpen, ""), // ends exactly now: ended
		slotAt(idD, 8, StatusClosed, ""),
		slotAt(idF, 12, StatusReserved, "Lee"), // still running
	)
	before := map[string]Slot{idD: src.slots[idD], idF: src.slots[idF]}
	d, err := decide(t, cmd(t, CmdCloseSlots, ""), now, src)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range d.Changes {
		got = append(got, c.Slot.SlotID)
		wantSlot(t, c, EventClosed, StatusClosed, c.Slot.HostName, 4, now)
	}
	// By start time, then slot id.
	if want := []string{idE, idA, idB, idC}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("closed %v, want %v", got, want)
	}
	src.apply(t, d)
	for id, s := range before {
		if src.slots[id] != s {
			t.Errorf("slot %s changed: %+v", id, src.slots[id])
		}
	}
	d, err = decide(t, cmd(t, CmdCloseSlots, `{}`), now, src)
	if err != nil || len(d.Changes) != 0 {
		t.Fatalf("second run: %v, %d changes; want none, no error", err, len(d.Changes))
	}
}

// docs/DOMAIN.md scenario 8.
func TestUnattendSlots(t *testing.T) {
	now := at(10, 10)
	src := newMemSource(
		slotAt(idA, 10, StatusReserved, "Sam"), // grace ends exactly now
		slotAt(idB, 9, StatusReserved, "Kim"),
		slotAt(idC, 11, StatusReserved, "Lee"), // not started
		slotAt(idD, 9, StatusCheckedIn, "Ann"),
		slotAt(idE, 9, StatusOpen, ""),
		slotAt(idF, 8, StatusClosed, "Bo"),
	)
	src.slots[idC] = func(s Slot) Slot { // starts 10:01: grace ends 10:11
		s.TimeSlot.StartTime = at(10, 1)
		return s
	}(src.slots[idC])
	before := map[string]Slot{}
	for _, id := range []string{idC, idD, idE, idF} {
		before[id] = src.slots[id]
	}
	d, err := decide(t, cmd(t, CmdUnattendSlots, ""), now, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changes) != 2 || d.Changes[0].Slot.SlotID != idB || d.Changes[1].Slot.SlotID != idA {
		t.Fatalf("changes %+v, want %s then %s", d.Changes, idB, idA)
	}
	for _, c := range d.Changes {
		wantSlot(t, c, EventUnattended, StatusOpen, "", 4, now)
	}
	src.apply(t, d)
	for id, s := range before {
		if src.slots[id] != s {
			t.Errorf("slot %s changed: %+v", id, src.slots[id])
		}
	}
	d, err = decide(t, cmd(t, CmdUnattendSlots, ""), now, src)
	if err != nil || len(d.Changes) != 0 {
		t.Fatalf("second run: %v, %d changes; want none, no error", err, len(d.Changes))
	}
}

// docs/DOMAIN.md scenario 9, also for commands built in code that skip ParseCommand.
func TestCreateSlotsOutOfDay(t *testing.T) {
	for _, data := range []string{`{"startHour":25}`, `{"startHour":20,"count":5}`, `{"startHour":20}`, `{"startHour":-1}`} {
		c := Command{Type: CmdCreateSlots, ID: "c-1", Data: []byte(data)}
		_, err := Aggregate{}.Decide(context.Background(), c, at(5, 0), nil)
		if e, ok := err.(*InvalidCommandError); !ok || e.Kind != Invalid {
			t.Errorf("%s: got %v, want an Invalid command", data, err)
		}
	}
}

func TestDecideReportsStoreFailureAsNeitherRejectionNorInvalid(t *testing.T) {
	src := newMemSource()
	src.err = errStoreDown
	for _, c := range []Command{cmd(t, CmdCheckIn, ref(idA)), cmd(t, CmdCloseSlots, "")} {
		_, err := decide(t, c, at(9, 0), src)
		if err == nil || IsRejected(err) || IsInvalidCommand(err) {
			t.Errorf("%s: got %v, want a plain store error", c.Type, err)
		}
	}
}

// docs/DOMAIN.md scenario 11: Create, Reserve, CheckIn, CheckOut, Reserve, Cancel.
func TestFullJourney(t *testing.T) {
	src := newMemSource()
	step := func(c Command, now time.Time) Decision {
		t.Helper()
		d, err := decide(t, c, now, src)
		if err != nil {
			t.Fatalf("%s: %v", c.Type, err)
		}
		src.apply(t, d)
		return d
	}
	created := step(cmd(t, CmdCreateSlots, `{"date":"2026-11-25","startHour":10,"count":1}`), at(5, 0))
	id := created.Changes[0].Slot.SlotID
	type want struct {
		ev   EventName
		st   Status
		host string
	}
	for i, s := range []struct {
		c    Command
		now  time.Time
		want want
	}{
		{cmd(t, CmdReserveSlot, `{"slotId":"`+id+`","hostName":"Sam Person"}`), at(8, 0), want{EventReserved, StatusReserved, "Sam Person"}},
		{cmd(t, CmdCheckIn, ref(id)), at(10, 5), want{EventCheckedIn, StatusCheckedIn, "Sam Person"}},
		{cmd(t, CmdCheckOut, ref(id)), at(10, 30), want{EventCheckedOut, StatusOpen, ""}},
		{cmd(t, CmdReserveSlot, `{"slotId":"`+id+`","hostName":"Kim"}`), at(10, 31), want{EventReserved, StatusReserved, "Kim"}},
		{cmd(t, CmdCancelSlot, ref(id)), at(10, 40), want{EventCancelled, StatusOpen, ""}},
	} {
		c := one(t, step(s.c, s.now), nil)
		wantSlot(t, c, s.want.ev, s.want.st, s.want.host, i+2, s.now)
		if !c.Slot.CreatedAt.Equal(at(5, 0)) {
			t.Errorf("step %d: createdAt changed to %v", i, c.Slot.CreatedAt)
		}
	}
}

func TestSlotWritesFoldOneBatchPerSlot(t *testing.T) {
	a1 := Slot{SlotID: "a", Version: 1, Status: StatusOpen}
	a2 := Slot{SlotID: "a", Version: 2, Status: StatusReserved}
	b5 := Slot{SlotID: "b", Version: 5, Status: StatusCheckedIn}
	a3 := Slot{SlotID: "a", Version: 3, Status: StatusCheckedIn}
	got := SlotWrites([]Commit{{Slots: []Slot{a1}}, {Slots: []Slot{a2, b5}}, {Slots: []Slot{a3}}})
	if len(got) != 2 || got[0].Slot != a3 || got[0].From != 0 || got[1].Slot != b5 || got[1].From != 4 {
		t.Fatalf("SlotWrites = %+v; want a new at version 3, then b from 4 to 5", got)
	}
}
