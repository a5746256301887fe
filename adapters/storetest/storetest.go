// Package storetest is the contract suite every state store of emitd passes
// (SQLite, PostgreSQL): everything the daemon, `emitd dlq` and `emitd replay`
// need of a store, asserted through the ports they use. It is imported only
// from _test files.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// Store is what a store offers the daemon and the operator commands.
type Store interface {
	domain.Store
	publisher.Outbox
	publisher.OutcomeOutbox
	publisher.DeadLetterStore
	publisher.EventReplayStore
	publisher.Leaser
	publisher.Reporter
	Prune(ctx context.Context, before time.Time) (publisher.Pruned, error)
	Ping(ctx context.Context) error
	Close() error
}

// Factory makes a new, empty store for one test; it owns cleanup (the suite
// closes the store too: Close must be idempotent).
type Factory func(t *testing.T) Store

// Run runs the suite against the stores f makes.
func Run(t *testing.T, f Factory) {
	t.Run("BatchIsAllOrNothing", func(t *testing.T) { batchIsAllOrNothing(t, f(t)) })
	t.Run("RecordsAndDuplicates", func(t *testing.T) { recordsAndDuplicates(t, f(t)) })
	t.Run("DeadLetteredRecordIsReplaced", func(t *testing.T) { deadLetteredRecordIsReplaced(t, f(t)) })
	t.Run("SlotVersions", func(t *testing.T) { slotVersions(t, f(t)) })
	t.Run("OutboxInCommitOrder", func(t *testing.T) { outboxInCommitOrder(t, f(t)) })
	t.Run("RefusedEnvelopesMoveAtomically", func(t *testing.T) { refusedEnvelopesMove(t, f(t)) })
	t.Run("OutcomeOutbox", func(t *testing.T) { outcomeOutbox(t, f(t)) })
	t.Run("DeadLetters", func(t *testing.T) { deadLetters(t, f(t)) })
	t.Run("PurgedDeadLettersAreKeptOutOfSight", func(t *testing.T) { purgedDeadLetters(t, f(t)) })
	t.Run("RetentionPrunes", func(t *testing.T) { retentionPrunes(t, f(t)) })
	t.Run("EventReplaysAreCountedUpToTheLimit", func(t *testing.T) { eventReplays(t, f(t)) })
	t.Run("ConcurrentEventReplaysStopAtTheLimit", func(t *testing.T) { concurrentEventReplays(t, f(t)) })
	t.Run("LeaseIsExclusive", func(t *testing.T) { leaseIsExclusive(t, f) })
	t.Run("ConcurrentBatchesOnOneSlot", func(t *testing.T) { concurrentBatches(t, f(t)) })
	t.Run("ClosedStoreIsUnavailable", func(t *testing.T) { closedIsUnavailable(t, f(t)) })
	t.Run("Reports", func(t *testing.T) { reports(t, f(t)) })
}

// reports: what the store tells operations (metrics, readiness, `emitd
// status`) follows what was committed, sent and dead-lettered.
func reports(t *testing.T, s Store) {
	r, err := s.Outboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Envelopes.Pending != 0 || !r.Envelopes.Oldest.IsZero() || r.Outcomes.Pending != 0 || !r.Outcomes.Oldest.IsZero() {
		t.Fatalf("empty store reports %+v", r)
	}
	if c, err := s.DeadLetterCounts(ctx); err != nil || len(c) != 0 {
		t.Fatalf("dead letter counts of an empty store: %v, %v", c, err)
	}
	before := time.Now().Add(-time.Second) // the database's clock may be another process's
	rejected := domain.Commit{Outcome: domain.Outcome{CommandID: "r1", Type: domain.CmdCheckOut, Status: domain.OutcomeRejected, Reason: "no", At: base}, Record: true}
	mustSave(t, s, accepted("a1", envelope("reservation", "s1", 1), envelope("analytics", "s1", 1)), rejected)
	mustSave(t, s, accepted("a2", envelope("reservation", "s2", 2), envelope("analytics", "s2", 2)))
	after := time.Now().Add(time.Second)
	r, err = s.Outboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Envelopes.Pending != 4 || r.Outcomes.Pending != 3 {
		t.Errorf("pending %d envelopes and %d outcomes, want 4 and 3", r.Envelopes.Pending, r.Outcomes.Pending)
	}
	for what, b := range map[string]publisher.Backlog{"envelope": r.Envelopes, "outcome": r.Outcomes} {
		if b.Oldest.Before(before) || b.Oldest.After(after) {
			t.Errorf("oldest %s committed at %s, want between %s and %s", what, b.Oldest, before, after)
		}
		if b.Age(after.Add(time.Minute)) < time.Minute {
			t.Errorf("%s age a minute later: %s", what, b.Age(after.Add(time.Minute)))
		}
	}
	got, err := s.ProcessedCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[domain.OutcomeAccepted] != 2 || got[domain.OutcomeRejected] != 1 {
		t.Errorf("processed counts %v, want accepted 2, rejected 1", got)
	}

	recs := pending(t, s, 10)
	var seqs []int64
	for _, rec := range recs[1:] {
		seqs = append(seqs, rec.Seq)
	}
	if err := s.DeadLetterEvents(ctx, []publisher.EventDeadLetter{{Seq: recs[0].Seq, Envelope: recs[0].Envelope, Reason: "forbidden", Code: publisher.CodePolicy, At: base}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the outbox reports empty once everything left it", func() bool {
		r, err := s.Outboxes(ctx)
		return err == nil && r.Envelopes.Pending == 0 && r.Envelopes.Oldest.IsZero() && r.Outcomes.Pending == 3
	})

	dl := func(id, code string) publisher.DeadLetter {
		d := deadLetter(id, publisher.KindCommand, "reason of "+id, base, id)
		d.Code = code
		return d
	}
	if err := s.AddDeadLetters(ctx, []publisher.DeadLetter{dl("c1", "invalid"), dl("c2", "invalid"), dl("c3", "retries_exhausted"), dl("c4", "malformed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteDeadLetters(ctx, []publisher.DeadLetterKey{dl("c4", "malformed").Key()}); err != nil {
		t.Fatal(err)
	}
	counts, err := s.DeadLetterCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []publisher.DeadLetterCount{{Kind: "command", Code: "invalid", Count: 2}, {Kind: "command", Code: "retries_exhausted", Count: 1},
		{Kind: "event", Code: publisher.CodePolicy, Count: 1}}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("dead letter counts %v, want %v (purged ones aside)", counts, want)
	}
	listed, err := s.DeadLetters(ctx, publisher.DeadLetterFilter{IDs: []string{"c3"}})
	if err != nil || len(listed) != 1 || listed[0].Code != "retries_exhausted" {
		t.Errorf("dead letter c3 listed as %+v (%v): the code must round trip", listed, err)
	}
}

var ctx = context.Background()

// base is a fixed instant with microseconds, so that time round trips
// show (a store keeps at least microseconds: PostgreSQL keeps no more).
var base = time.Date(2031, 3, 4, 5, 6, 7, 123456000, time.UTC)

func slot(id string, status domain.Status, version int, start time.Time) domain.Slot {
	return domain.Slot{SlotID: id, Status: status, Version: version,
		TimeSlot: domain.TimeSlot{StartTime: start, EndTime: start.Add(time.Hour)}, CreatedAt: base, UpdatedAt: base.Add(time.Duration(version) * time.Second)}
}

// sameSlot compares slots, times as instants (a store may keep another
// location or monotonic reading).
func sameSlot(a, b domain.Slot) bool {
	return a.SlotID == b.SlotID && a.HostName == b.HostName && a.Status == b.Status && a.Version == b.Version &&
		a.TimeSlot.StartTime.Equal(b.TimeSlot.StartTime) && a.TimeSlot.EndTime.Equal(b.TimeSlot.EndTime) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func envelope(bus, slotID string, n int) domain.Envelope {
	return domain.Envelope{EventBusName: bus, Source: "reservation.slotreservation.created", DetailType: "Created",
		Detail: fmt.Sprintf(`{"metadata":{"id":"e%d"},"data":{"n":%d,"text":"ünïcode & <tags>"}}`, n, n), ID: uuid.NewString(),
		CorrelationID: "corr-" + slotID, SlotID: slotID, Event: domain.EventCreated}
}

func accepted(cmdID string, envs ...domain.Envelope) domain.Commit {
	o := domain.Outcome{CommandID: cmdID, CorrelationID: "corr-" + cmdID, Type: domain.CmdCreateSlots, Status: domain.OutcomeAccepted, At: base}
	for _, e := range envs {
		o.EventIDs = append(o.EventIDs, e.ID)
	}
	return domain.Commit{Outcome: o, Record: true, Envelopes: envs}
}

// save commits commits in one batch.
func save(t *testing.T, s Store, commits ...domain.Commit) error {
	t.Helper()
	return s.Batch(ctx, func(ctx context.Context, tx domain.Tx) error { return tx.Save(ctx, commits) })
}

func mustSave(t *testing.T, s Store, commits ...domain.Commit) {
	t.Helper()
	if err := save(t, s, commits...); err != nil {
		t.Fatalf("save: %v", err)
	}
}

func processed(t *testing.T, s Store, ids ...string) map[string]domain.Processed {
	t.Helper()
	var out map[string]domain.Processed
	if err := s.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		var err error
		out, err = tx.Processed(ctx, ids)
		return err
	}); err != nil {
		t.Fatalf("processed: %v", err)
	}
	return out
}

func slots(t *testing.T, s Store, ids ...string) map[string]domain.Slot {
	t.Helper()
	var out map[string]domain.Slot
	if err := s.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		var err error
		out, err = tx.Slots(ctx, ids)
		return err
	}); err != nil {
		t.Fatalf("slots: %v", err)
	}
	return out
}

func pending(t *testing.T, s Store, limit int) []publisher.OutboxRecord {
	t.Helper()
	recs, err := s.PendingEnvelopes(ctx, 0, limit)
	if err != nil {
		t.Fatalf("pending envelopes: %v", err)
	}
	return recs
}

func batchIsAllOrNothing(t *testing.T, s Store) {
	boom := errors.New("boom")
	sl := slot(uuid.NewString(), domain.StatusOpen, 1, base)
	c := accepted("cmd-1", envelope("reservation", sl.SlotID, 1))
	c.Slots = []domain.Slot{sl}
	err := s.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		if err := tx.Save(ctx, []domain.Commit{c}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Batch returned %v, want fn's error", err)
	}
	if got := processed(t, s, "cmd-1"); len(got) != 0 {
		t.Errorf("rolled-back batch left a record: %v", got)
	}
	if got := slots(t, s, sl.SlotID); len(got) != 0 {
		t.Errorf("rolled-back batch left a slot: %v", got)
	}
	if got := pending(t, s, 10); len(got) != 0 {
		t.Errorf("rolled-back batch left %d envelopes", len(got))
	}
	if got, _ := s.PendingOutcomes(ctx, 0, 10); len(got) != 0 {
		t.Errorf("rolled-back batch left %d outcomes", len(got))
	}
	mustSave(t, s, c)
	if got := processed(t, s, "cmd-1"); len(got) != 1 {
		t.Errorf("committed batch: records %v", got)
	}
}

func recordsAndDuplicates(t *testing.T, s Store) {
	a := accepted("cmd-a")
	a.Outcome.EventIDs = []string{"e1", "e2"}
	rejected := domain.Commit{Record: true, Outcome: domain.Outcome{CommandID: "cmd-r", CorrelationID: "c", Type: domain.CmdCheckIn,
		Status: domain.OutcomeRejected, Reason: "Slot is not in the correct status …", At: base}}
	answerAgain := domain.Commit{Outcome: a.Outcome} // Record false: a re-sent answer
	noID := domain.Commit{Outcome: domain.Outcome{CommandID: "message-7", Status: domain.OutcomeDeadLettered, Reason: "not JSON", At: base}}
	mustSave(t, s, a, rejected, noID)
	mustSave(t, s, answerAgain)

	got := processed(t, s, "cmd-a", "cmd-r", "message-7", "unknown")
	if len(got) != 2 {
		t.Fatalf("records %v, want cmd-a and cmd-r only (a commit with Record false records nothing)", got)
	}
	if o := got["cmd-a"].Outcome; o.Status != domain.OutcomeAccepted || len(o.EventIDs) != 2 || !o.At.Equal(base) || o.CorrelationID != "corr-cmd-a" {
		t.Errorf("cmd-a record %+v", o)
	}
	if o := got["cmd-r"].Outcome; o.Status != domain.OutcomeRejected || o.Reason != rejected.Outcome.Reason {
		t.Errorf("cmd-r record %+v", o)
	}
	// Every commit's outcome is in the outcome outbox, recorded or not.
	outs, err := s.PendingOutcomes(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range outs {
		ids = append(ids, o.CommandID)
	}
	if strings.Join(ids, ",") != "cmd-a,cmd-r,message-7,cmd-a" {
		t.Errorf("outcome outbox holds %v, want cmd-a,cmd-r,message-7,cmd-a in commit order", ids)
	}
	// Recording an id recorded already is a conflict, and writes nothing.
	again := accepted("cmd-a")
	again.Envelopes = []domain.Envelope{envelope("reservation", "s", 1)}
	if err := save(t, s, again); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("recording cmd-a twice: %v, want domain.ErrConflict", err)
	}
	if n := len(pending(t, s, 10)); n != 0 {
		t.Errorf("the conflicting batch left %d envelopes", n)
	}
}

func deadLetteredRecordIsReplaced(t *testing.T, s Store) {
	dl := domain.Commit{Record: true, Replays: 0, Outcome: domain.Outcome{CommandID: "cmd-d", Status: domain.OutcomeDeadLettered,
		Reason: "retries exhausted after 6 attempts: store down", At: base}}
	mustSave(t, s, dl)
	got := processed(t, s, "cmd-d")["cmd-d"]
	if got.Outcome.Status != domain.OutcomeDeadLettered || got.Replays != 0 {
		t.Fatalf("record %+v", got)
	}
	if got.Redo(0) || !got.Redo(1) {
		t.Errorf("Redo(0)=%v Redo(1)=%v: only a delivery replayed more often is a new attempt", got.Redo(0), got.Redo(1))
	}
	// A redelivery with the same replay count may not record it again.
	if err := save(t, s, dl); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("re-recording the dead letter: %v, want ErrConflict", err)
	}
	// The operator's replay is processed anew, and its record replaces it.
	replayed := accepted("cmd-d")
	replayed.Replays = 1
	mustSave(t, s, replayed)
	got = processed(t, s, "cmd-d")["cmd-d"]
	if got.Outcome.Status != domain.OutcomeAccepted || got.Replays != 1 {
		t.Errorf("after replay: record %+v, want accepted with 1 replay", got)
	}
	// An accepted record is never replaced, however often replayed.
	again := accepted("cmd-d")
	again.Replays = 5
	if err := save(t, s, again); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("replacing an accepted record: %v, want ErrConflict", err)
	}
}

func slotVersions(t *testing.T, s Store) {
	a := slot(uuid.NewString(), domain.StatusOpen, 1, base.Add(2*time.Hour))
	b := slot(uuid.NewString(), domain.StatusOpen, 1, base.Add(time.Hour))
	c := accepted("create")
	c.Slots = []domain.Slot{a, b}
	mustSave(t, s, c)
	got := slots(t, s, a.SlotID, b.SlotID, "no-such-slot")
	if len(got) != 2 {
		t.Fatalf("Slots: %v", got)
	}
	if g := got[a.SlotID]; !sameSlot(g, a) {
		t.Errorf("slot round trip: got %+v, want %+v", g, a)
	}

	// Two changes of one slot in one batch, in order: reserve, then check in.
	r := a
	r.Status, r.HostName, r.Version, r.UpdatedAt = domain.StatusReserved, "Sam Person", 2, base.Add(time.Minute)
	ci := r
	ci.Status, ci.Version = domain.StatusCheckedIn, 3
	c1, c2 := accepted("reserve"), accepted("checkin")
	c1.Slots, c2.Slots = []domain.Slot{r}, []domain.Slot{ci}
	mustSave(t, s, c1, c2)
	if g := slots(t, s, a.SlotID)[a.SlotID]; g.Status != domain.StatusCheckedIn || g.Version != 3 || g.HostName != "Sam Person" {
		t.Errorf("after two changes in one batch: %+v", g)
	}
	// A stale version is a conflict.
	stale := accepted("stale")
	stale.Slots = []domain.Slot{r} // version 2 again: the store has 3
	if err := save(t, s, stale); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("stale version: %v, want ErrConflict", err)
	}
	// A slot created twice is a conflict too.
	dup := accepted("dup")
	dup.Slots = []domain.Slot{b}
	if err := save(t, s, dup); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("slot created twice: %v, want ErrConflict", err)
	}

	var listed []domain.Slot
	if err := s.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		var err error
		listed, err = tx.ListSlots(ctx, domain.StatusOpen, domain.StatusCheckedIn)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// In any order: the aggregate orders what it decides on itself.
	sort.Slice(listed, func(i, j int) bool { return listed[i].TimeSlot.StartTime.Before(listed[j].TimeSlot.StartTime) })
	if len(listed) != 2 || listed[0].SlotID != b.SlotID || listed[1].SlotID != a.SlotID || listed[1].Status != domain.StatusCheckedIn {
		t.Errorf("ListSlots(OPEN, CHECKED_IN) = %v, want b and a", listed)
	}
}

func outboxInCommitOrder(t *testing.T, s Store) {
	var want []string
	for batch := range 3 {
		var commits []domain.Commit
		for i := range 4 {
			d := envelope("reservation", fmt.Sprintf("slot-%d", i), batch*10+i)
			a := envelope("analytics", d.SlotID, batch*10+i)
			commits = append(commits, accepted(fmt.Sprintf("c-%d-%d", batch, i), d, a))
			want = append(want, d.ID, a.ID)
		}
		mustSave(t, s, commits...)
	}
	recs := pending(t, s, 100)
	var got []string
	for i, r := range recs {
		got = append(got, r.Envelope.ID)
		if i > 0 && r.Seq <= recs[i-1].Seq {
			t.Errorf("seq %d after %d: not increasing", r.Seq, recs[i-1].Seq)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outbox order differs from commit order")
	}
	first := pending(t, s, 5)
	if len(first) != 5 {
		t.Fatalf("limit 5: %d records", len(first))
	}
	e := first[0].Envelope
	orig := envelope("reservation", "slot-0", 0)
	if e.Detail != orig.Detail || e.Source != orig.Source || e.DetailType != "Created" || e.CorrelationID != "corr-slot-0" ||
		e.SlotID != "slot-0" || e.Event != domain.EventCreated || e.EventBusName != "reservation" {
		t.Errorf("envelope round trip: %+v", e)
	}
	// Reading on after a number skips what came before it.
	if rest, err := s.PendingEnvelopes(ctx, first[4].Seq, 100); err != nil || len(rest) != len(recs)-5 || rest[0].Seq != recs[5].Seq {
		t.Errorf("after seq %d: %d records (%v), want the %d after it", first[4].Seq, len(rest), err, len(recs)-5)
	}
	if err := s.MarkSent(ctx, []int64{first[0].Seq, first[2].Seq}); err != nil {
		t.Fatal(err)
	}
	// A store may write MarkSent with its next batch: soon, not at once.
	eventually(t, "the sent envelopes leave the outbox", func() bool {
		after := pending(t, s, 100)
		return len(after) == len(recs)-2 && after[0].Seq == first[1].Seq && after[1].Seq == first[3].Seq
	})
}

// eventually waits, a few seconds at most, until ok holds.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func refusedEnvelopesMove(t *testing.T, s Store) {
	d := envelope("reservation", "s1", 1)
	mustSave(t, s, accepted("c1", d, envelope("analytics", "s1", 1)))
	recs := pending(t, s, 10)
	at := base.Add(time.Hour)
	if err := s.DeadLetterEvents(ctx, []publisher.EventDeadLetter{{Seq: recs[0].Seq, Envelope: recs[0].Envelope, Reason: "refused: too large", At: at}}); err != nil {
		t.Fatal(err)
	}
	left := pending(t, s, 10)
	if len(left) != 1 || left[0].Seq != recs[1].Seq {
		t.Fatalf("outbox after dead-lettering the first: %v", left)
	}
	dls, err := s.DeadLetters(ctx, publisher.DeadLetterFilter{Kind: publisher.KindEvent})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := publisher.EventDeadLetterOf(d, "refused: too large", at)
	if len(dls) != 1 || dls[0].ID != d.ID || string(dls[0].Payload) != string(want.Payload) || dls[0].Origin != "reservation" ||
		dls[0].Digest != want.Digest || !dls[0].First.Equal(at) || dls[0].Metadata[publisher.MetaEventID] != d.ID {
		t.Fatalf("event dead letter %+v", dls)
	}
}

func outcomeOutbox(t *testing.T, s Store) {
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("cmd-%d", i)
		mustSave(t, s, accepted(id))
		want = append(want, id)
	}
	one, err := s.PendingOutcomes(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	two, _ := s.PendingOutcomes(ctx, 0, 100)
	var got []string
	for i, r := range one {
		got = append(got, r.CommandID)
		if r.MessageID == "" || r.MessageID != two[i].MessageID {
			t.Errorf("outcome %d: message id %q, then %q: it must be fixed at commit", i, r.MessageID, two[i].MessageID)
		}
		if !strings.Contains(string(r.Payload), `"commandId":"`+r.CommandID+`"`) || r.CorrelationID != "corr-"+r.CommandID {
			t.Errorf("outcome %d payload %s", i, r.Payload)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if rest, _ := s.PendingOutcomes(ctx, one[3].Seq, 100); len(rest) != 1 || rest[0].CommandID != "cmd-4" {
		t.Errorf("after the 4th: %v, want the 5th", rest)
	}
	if err := s.MarkOutcomesSent(ctx, []int64{one[0].Seq, one[1].Seq}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the sent outcomes leave the outbox", func() bool {
		left, _ := s.PendingOutcomes(ctx, 0, 100)
		return len(left) == 3 && left[0].CommandID == "cmd-2"
	})
}

func deadLetter(id, kind, reason string, first time.Time, payload string) publisher.DeadLetter {
	return publisher.DeadLetter{ID: id, Kind: kind, Origin: "slot-commands", Reason: reason, Class: "permanent", Attempts: 1,
		First: first, Last: first.Add(time.Second), Digest: publisher.Digest([]byte(payload)), Payload: []byte(payload),
		Metadata: map[string]string{"correlation_id": "c-" + id, publisher.DLQReplays: "0"}}
}

func deadLetters(t *testing.T, s Store) {
	binary := string([]byte{0xff, 0x00, 0xfe, 'x'})
	all := []publisher.DeadLetter{
		deadLetter("m1", publisher.KindCommand, "invalid command: data.startHour: must be between 0 and 23", base, `{"type":"CreateSlots"}`),
		deadLetter("m2", publisher.KindCommand, "Retries exhausted after 6 attempts", base.Add(time.Minute), binary),
		deadLetter("m3", publisher.KindEvent, "refused", base.Add(2*time.Minute), `{"EventBusName":"reservation"}`),
		// Same id as m1, other bytes: a different dead letter.
		deadLetter("m1", publisher.KindCommand, "not JSON", base.Add(3*time.Minute), `garbage`),
	}
	if err := s.AddDeadLetters(ctx, all); err != nil {
		t.Fatal(err)
	}
	// The same message again is kept once.
	if err := s.AddDeadLetters(ctx, all[:1]); err != nil {
		t.Fatal(err)
	}
	list := func(f publisher.DeadLetterFilter) []publisher.DeadLetter {
		t.Helper()
		dls, err := s.DeadLetters(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return dls
	}
	got := list(publisher.DeadLetterFilter{})
	if len(got) != 4 {
		t.Fatalf("%d dead letters, want 4 (two with id m1 and different payloads)", len(got))
	}
	for i, d := range got {
		if d.ID != all[i].ID || d.Digest != all[i].Digest || string(d.Payload) != string(all[i].Payload) || d.Reason != all[i].Reason ||
			!d.First.Equal(all[i].First) || !d.Last.Equal(all[i].Last) || d.Metadata["correlation_id"] != "c-"+d.ID || d.Kind != all[i].Kind {
			t.Errorf("dead letter %d: got %+v\nwant %+v", i, d, all[i])
		}
	}
	if g := list(publisher.DeadLetterFilter{Kind: publisher.KindEvent}); len(g) != 1 || g[0].ID != "m3" {
		t.Errorf("kind event: %v", g)
	}
	if g := list(publisher.DeadLetterFilter{Reason: "retries EXHAUSTED"}); len(g) != 1 || g[0].ID != "m2" {
		t.Errorf("reason filter (any case): %v", g)
	}
	if g := list(publisher.DeadLetterFilter{Since: base.Add(90 * time.Second)}); len(g) != 2 {
		t.Errorf("since: %d, want 2", len(g))
	}
	if g := list(publisher.DeadLetterFilter{IDs: []string{"m1"}}); len(g) != 2 {
		t.Errorf("id m1: %d dead letters, want both", len(g))
	}
	if g := list(publisher.DeadLetterFilter{Limit: 2}); len(g) != 2 || g[0].ID != "m1" || g[1].ID != "m2" {
		t.Errorf("limit 2: %v", g)
	}
	n, err := s.DeleteDeadLetters(ctx, []publisher.DeadLetterKey{all[0].Key(), {ID: "m3", Digest: "not-its-digest"}})
	if err != nil || n != 1 {
		t.Fatalf("delete: %d, %v; want 1 (a key is id and digest)", n, err)
	}
	if g := list(publisher.DeadLetterFilter{IDs: []string{"m1"}}); len(g) != 1 || g[0].Reason != "not JSON" {
		t.Errorf("after deleting the first m1: %v", g)
	}
}

// purgedDeadLetters: a purge takes dead letters out of every listing but
// keeps them (the purged listing shows them); the same message
// dead-lettered again is a new failure and comes back, as given.
func purgedDeadLetters(t *testing.T, s Store) {
	a := deadLetter("m1", publisher.KindCommand, "not JSON", base, "garbage")
	b := deadLetter("m2", publisher.KindCommand, "invalid", base.Add(time.Second), "other")
	if err := s.AddDeadLetters(ctx, []publisher.DeadLetter{a, b}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteDeadLetters(ctx, []publisher.DeadLetterKey{a.Key()}); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if n, _ := s.DeleteDeadLetters(ctx, []publisher.DeadLetterKey{a.Key()}); n != 0 {
		t.Errorf("purging again purged %d", n)
	}
	live, _ := s.DeadLetters(ctx, publisher.DeadLetterFilter{})
	if len(live) != 1 || live[0].ID != "m2" {
		t.Fatalf("listed after the purge: %v", live)
	}
	gone, _ := s.DeadLetters(ctx, publisher.DeadLetterFilter{Purged: true})
	if len(gone) != 1 || gone[0].ID != "m1" || gone[0].Purged.IsZero() {
		t.Fatalf("purged listing: %+v", gone)
	}
	again := a
	again.Replays, again.Reason = 1, "not JSON, again"
	if err := s.AddDeadLetters(ctx, []publisher.DeadLetter{again}); err != nil {
		t.Fatal(err)
	}
	live, _ = s.DeadLetters(ctx, publisher.DeadLetterFilter{IDs: []string{"m1"}})
	if len(live) != 1 || live[0].Replays != 1 || live[0].Reason != "not JSON, again" || !live[0].Purged.IsZero() {
		t.Fatalf("dead-lettered again after a purge: %+v, want it back, as given", live)
	}
}

// retentionPrunes: records and purged dead letters older than the cut are
// removed; newer ones, and dead letters not purged, stay.
func retentionPrunes(t *testing.T, s Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	old, recent := accepted("old"), accepted("recent")
	old.Outcome.At, recent.Outcome.At = now.Add(-48*time.Hour), now
	mustSave(t, s, old, recent)
	kept := deadLetter("kept", publisher.KindCommand, "r", base, "a")
	purged := deadLetter("purged", publisher.KindCommand, "r", base, "b")
	if err := s.AddDeadLetters(ctx, []publisher.DeadLetter{kept, purged}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteDeadLetters(ctx, []publisher.DeadLetterKey{purged.Key()}); err != nil {
		t.Fatal(err)
	}
	// Records by their processing time; a purge is "now".
	p, err := s.Prune(ctx, now.Add(-24*time.Hour))
	if err != nil || p.Records != 1 || p.DeadLetters != 0 {
		t.Fatalf("prune at now-24h: %+v, %v; want the old record only", p, err)
	}
	if got := processed(t, s, "old", "recent"); len(got) != 1 || got["recent"].Outcome.CommandID != "recent" {
		t.Errorf("records after pruning: %v", got)
	}
	p, err = s.Prune(ctx, time.Now().Add(time.Hour))
	if err != nil || p.DeadLetters != 1 {
		t.Fatalf("prune after the purge: %+v, %v; want the purged dead letter", p, err)
	}
	if gone, _ := s.DeadLetters(ctx, publisher.DeadLetterFilter{Purged: true}); len(gone) != 0 {
		t.Errorf("purged dead letters left: %v", gone)
	}
	if live, _ := s.DeadLetters(ctx, publisher.DeadLetterFilter{}); len(live) != 1 || live[0].ID != "kept" {
		t.Errorf("a dead letter not purged was pruned: %v", live)
	}
}

// eventReplays: the loop guard of `emitd replay --from-queue`. A replay is
// taken while the count is below the limit, each event counts on its own, a
// replay given back (its re-emit failed) can be taken again, and nothing
// goes below zero. The counts outlive retention: a guard that forgets lets
// a loop start over.
func eventReplays(t *testing.T, s Store) {
	take := func(id string, max, wantN int, wantTaken bool) {
		t.Helper()
		n, taken, err := s.TakeEventReplay(ctx, id, max)
		if err != nil || n != wantN || taken != wantTaken {
			t.Fatalf("take %s (max %d): %d, %v, %v; want %d, %v", id, max, n, taken, err, wantN, wantTaken)
		}
	}
	counts := func(want map[string]int, ids ...string) {
		t.Helper()
		got, err := s.EventReplays(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("counts %v, want %v", got, want)
		}
		for id, n := range want {
			if got[id] != n {
				t.Fatalf("counts %v, want %v", got, want)
			}
		}
	}
	counts(map[string]int{}, "ev-a", "ev-b")
	take("ev-a", 2, 1, true)
	take("ev-a", 2, 2, true)
	take("ev-a", 2, 2, false) // at the limit: refused, and the count stays
	take("ev-a", 3, 3, true)  // a higher limit lets it go once more
	take("ev-b", 2, 1, true)
	take("ev-c", 0, 0, false) // --max-replays 0: nothing goes, nothing is counted
	counts(map[string]int{"ev-a": 3, "ev-b": 1}, "ev-a", "ev-b", "ev-c")

	if err := s.ReturnEventReplay(ctx, "ev-a"); err != nil {
		t.Fatal(err)
	}
	take("ev-a", 3, 3, true) // given back, taken again
	for range 3 {
		if err := s.ReturnEventReplay(ctx, "ev-b"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReturnEventReplay(ctx, "never-taken"); err != nil {
		t.Fatal(err)
	}
	counts(map[string]int{"ev-a": 3, "ev-b": 0}, "ev-a", "ev-b", "never-taken")

	if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	counts(map[string]int{"ev-a": 3, "ev-b": 0}, "ev-a", "ev-b")
	many := make([]string, 1200) // more than one statement's parameters on SQLite
	for i := range many {
		many[i] = fmt.Sprintf("ev-%d", i)
	}
	many[1100] = "ev-a"
	if got, err := s.EventReplays(ctx, many); err != nil || got["ev-a"] != 3 {
		t.Fatalf("counts of 1200 ids: %v, %v", got, err)
	}
}

// concurrentEventReplays: operators replaying the same queue at once never
// take more replays of one event than the limit.
func concurrentEventReplays(t *testing.T, s Store) {
	const takers, max = 12, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.TakeEventReplay(ctx, "ev-race", max)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				taken++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got, err := s.EventReplays(ctx, []string{"ev-race"})
	if err != nil {
		t.Fatal(err)
	}
	if taken != max || got["ev-race"] != max {
		t.Fatalf("%d takers at once: %d replays taken, count %d; want exactly %d", takers, taken, got["ev-race"], max)
	}
}

// leaseIsExclusive: while one holder has a lease, a second waits; when the
// first releases it, the second gets it. (A store with a single process,
// SQLite, hands every lease at once: it skips the waiting part.)
func leaseIsExclusive(t *testing.T, f Factory) {
	s := f(t)
	held, release, err := s.Lease(ctx, "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	if held.Err() != nil {
		t.Fatal("a lease just taken is lost already")
	}
	if single, ok := s.(interface{ SingleProcess() bool }); ok && single.SingleProcess() {
		release()
		if held.Err() == nil {
			t.Error("a released lease is still held")
		}
		return
	}
	second := make(chan func(), 1)
	go func() {
		_, rel, err := s.Lease(ctx, "relay-test")
		if err == nil {
			second <- rel
		}
	}()
	select {
	case rel := <-second:
		rel()
		t.Fatal("a second holder got the lease while the first held it")
	case <-time.After(2500 * time.Millisecond):
	}
	release()
	if held.Err() == nil {
		t.Error("a released lease is still held")
	}
	select {
	case rel := <-second:
		rel()
	case <-time.After(10 * time.Second):
		t.Fatal("the second holder never got the lease after the first let it go")
	}
}

// concurrentBatches: many batches at once, each reading a slot, deciding on
// what it read, and writing it back one version higher. A store must
// serialize them (a single writer, or row locks) or refuse the loser with
// ErrConflict: never may two win on the same version (a lost update).
func concurrentBatches(t *testing.T, s Store) {
	id := uuid.NewString()
	c := accepted("create")
	c.Slots = []domain.Slot{slot(id, domain.StatusOpen, 1, base)}
	mustSave(t, s, c)

	const workers, each = 4, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[int]string{} // version -> command that wrote it
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				cmd := fmt.Sprintf("w%d-%d", w, i)
				for {
					var wrote int
					err := s.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
						got, err := tx.Slots(ctx, []string{id})
						if err != nil {
							return err
						}
						next := got[id]
						next.Version++
						next.UpdatedAt = base.Add(time.Duration(next.Version) * time.Second)
						wrote = next.Version
						ch := accepted(cmd)
						ch.Slots = []domain.Slot{next}
						return tx.Save(ctx, []domain.Commit{ch})
					})
					if errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrUnavailable) {
						continue // lost the race: decide again on what is stored now
					}
					if err != nil {
						errs <- fmt.Errorf("%s: %w", cmd, err)
						return
					}
					mu.Lock()
					if other, ok := wins[wrote]; ok {
						errs <- fmt.Errorf("version %d written by both %s and %s: a lost update", wrote, other, cmd)
					}
					wins[wrote] = cmd
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	final := slots(t, s, id)[id]
	if final.Version != 1+workers*each {
		t.Errorf("final version %d, want %d: every one of the %d changes on top of the one before", final.Version, 1+workers*each, workers*each)
	}
	var versions []int
	for v := range wins {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	if len(versions) != workers*each || versions[0] != 2 {
		t.Errorf("versions written: %v", versions)
	}
}

func closedIsUnavailable(t *testing.T, s Store) {
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping an open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := save(t, s, accepted("after-close"))
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("batch on a closed store: %v, want domain.ErrUnavailable (commands wait for it, they are not dead-lettered)", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("ping a closed store: %v, want domain.ErrUnavailable", err)
	}
}
