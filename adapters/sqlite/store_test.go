package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/emitd/emitd/adapters/sqlite"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

var now = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func slot(version int, status domain.Status) domain.Slot {
	return domain.Slot{SlotID: uuid.NewString(), Status: status, Version: version, CreatedAt: now, UpdatedAt: now,
		TimeSlot: domain.TimeSlot{StartTime: now, EndTime: now.Add(time.Hour)}}
}

func commit(cmd string, slots []domain.Slot, events ...string) domain.Commit {
	c := domain.Commit{Slots: slots, Outcome: domain.Outcome{CommandID: cmd, Status: domain.OutcomeAccepted, At: now}}
	for _, id := range events {
		c.Envelopes = append(c.Envelopes, domain.Envelope{ID: id, EventBusName: "reservation", Source: "s", DetailType: "Created",
			Detail: `{"metadata":{},"data":{}}`, SlotID: slots[0].SlotID, Event: domain.EventCreated})
	}
	return c
}

// A commit is all or nothing: when one slot moved underneath, neither the
// other slots, nor the envelopes, nor the command id are written.
func TestCommitIsAllOrNothing(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	a, b := slot(1, domain.StatusOpen), slot(1, domain.StatusOpen)
	if err := s.Commit(ctx, commit(uuid.NewString(), []domain.Slot{a, b}, uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	a2, stale := a, b
	a2.Version, a2.Status = 2, domain.StatusReserved
	stale.Version = 3 // claims version 2 is stored; it is 1
	cmd := uuid.NewString()
	err := s.Commit(ctx, commit(cmd, []domain.Slot{a2, stale}, uuid.NewString()))
	if !errors.Is(err, domain.ErrConcurrentUpdate) {
		t.Fatalf("got %v, want ErrConcurrentUpdate", err)
	}
	if got, _, _ := s.GetSlot(ctx, a.SlotID); got.Status != domain.StatusOpen || got.Version != 1 {
		t.Errorf("slot a changed by a failed commit: %+v", got)
	}
	if _, done, _ := s.ProcessedOutcome(ctx, cmd); done {
		t.Error("command recorded as processed by a failed commit")
	}
	if n, _ := s.OutboxLen(ctx); n != 1 {
		t.Errorf("outbox holds %d envelopes, want the first commit's 1", n)
	}
}

func TestDuplicateCommandWritesNothing(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	cmd := uuid.NewString()
	if err := s.Commit(ctx, commit(cmd, []domain.Slot{slot(1, domain.StatusOpen)}, uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, commit(cmd, []domain.Slot{slot(1, domain.StatusOpen)}, uuid.NewString())); !errors.Is(err, domain.ErrDuplicateCommand) {
		t.Fatalf("got %v, want ErrDuplicateCommand", err)
	}
	if n, _ := s.OutboxLen(ctx); n != 1 {
		t.Errorf("outbox holds %d envelopes after a duplicate, want 1", n)
	}
	if open, _ := s.ListSlots(ctx, domain.StatusOpen); len(open) != 1 {
		t.Errorf("%d slots after a duplicate, want 1", len(open))
	}
}

// The outbox keeps commit order, survives a reopen, and a dead-lettered
// envelope leaves it in the same transaction that stores it.
func TestOutboxOrderReopenAndDeadLetter(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	var ids []string
	for range 3 {
		id1, id2 := uuid.NewString(), uuid.NewString()
		ids = append(ids, id1, id2)
		if err := s.Commit(ctx, commit(uuid.NewString(), []domain.Slot{slot(1, domain.StatusOpen)}, id1, id2)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, dir)
	recs, err := s.PendingEnvelopes(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Envelope.ID != ids[i] {
			t.Fatalf("outbox[%d] = %s, want %s (commit order)", i, r.Envelope.ID, ids[i])
		}
	}
	if err := s.DeadLetterEvents(ctx, []publisher.EventDeadLetter{{Seq: recs[2].Seq, Envelope: recs[2].Envelope, Reason: "refused", At: now}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, []int64{recs[0].Seq, recs[1].Seq}); err != nil {
		t.Fatal(err)
	}
	left, _ := s.PendingEnvelopes(ctx, 100)
	if len(left) != 3 || left[0].Envelope.ID != ids[3] {
		t.Fatalf("outbox after send and dead letter: %d left, first %s", len(left), left[0].Envelope.ID)
	}
	dls, _ := s.DeadLetters(ctx, publisher.DeadLetterFilter{Kind: publisher.KindEvent})
	if len(dls) != 1 || dls[0].ID != ids[2] || dls[0].Reason != "refused" {
		t.Fatalf("event dead letters: %+v", dls)
	}
}

func TestSecondExclusiveOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	if _, err := sqlite.Open(dir, true); !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	reader, err := sqlite.Open(dir, false) // emitd dlq beside a running daemon
	if err != nil {
		t.Fatalf("non-exclusive open beside the daemon: %v", err)
	}
	reader.Close()
}
