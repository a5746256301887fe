package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/emitd/emitd/adapters/sqlite"
	"github.com/emitd/emitd/adapters/storetest"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

func open(t *testing.T, dir string, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, t.TempDir(), sqlite.Options{Exclusive: true}) })
}

func TestStoreContractSynchronousNormal(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, t.TempDir(), sqlite.Options{Exclusive: true, Synchronous: sqlite.SyncNormal})
	})
}

// Durable by default: every commit is synced to disk (synchronous=FULL, 2),
// so a command acknowledged to its broker survives a power loss.
func TestDurableByDefault(t *testing.T) {
	for _, c := range []struct {
		sync string
		want int
	}{{"", 2}, {sqlite.SyncFull, 2}, {sqlite.SyncNormal, 1}} {
		s := open(t, t.TempDir(), sqlite.Options{Synchronous: c.sync})
		var got int
		if err := s.DB().QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("synchronous %q: PRAGMA synchronous = %d, want %d", c.sync, got, c.want)
		}
		var mode string
		if err := s.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode %q (%v), want wal", mode, err)
		}
	}
	if _, err := sqlite.Open(t.TempDir(), sqlite.Options{Synchronous: "off"}); err == nil {
		t.Error("synchronous off was accepted")
	}
}

func TestSecondExclusiveOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, sqlite.Options{Exclusive: true})
	if _, err := sqlite.Open(dir, sqlite.Options{Exclusive: true}); !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	reader, err := sqlite.Open(dir, sqlite.Options{}) // emitd dlq beside a running daemon
	if err != nil {
		t.Fatalf("non-exclusive open beside the daemon: %v", err)
	}
	reader.Close()
}

// A database made before emitd had migrations (the schema created with
// CREATE TABLE IF NOT EXISTS) is taken over: its slots, records, outbox and
// dead letters are all still there, in the new schema.
func TestMigratesADatabaseFromBeforeMigrations(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE slots (slot_id TEXT PRIMARY KEY, host_name TEXT NOT NULL, start_time TEXT NOT NULL, end_time TEXT NOT NULL,
			status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL)`,
		`CREATE INDEX slots_status ON slots(status)`,
		`CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, bus TEXT NOT NULL, source TEXT NOT NULL,
			detail_type TEXT NOT NULL, detail TEXT NOT NULL, slot_id TEXT NOT NULL, correlation_id TEXT NOT NULL, event TEXT NOT NULL)`,
		`CREATE TABLE processed_commands (command_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, processed_at TEXT NOT NULL)`,
		`CREATE TABLE dead_letters (id TEXT PRIMARY KEY, kind TEXT NOT NULL, origin TEXT NOT NULL, payload BLOB NOT NULL, metadata TEXT NOT NULL,
			reason TEXT NOT NULL, class TEXT NOT NULL, attempts INTEGER NOT NULL, replays INTEGER NOT NULL, first_failure TEXT NOT NULL,
			last_failure TEXT NOT NULL, digest TEXT NOT NULL)`,
		`INSERT INTO slots VALUES ('s1', '', '2026-12-01T06:00:00.000000000Z', '2026-12-01T07:00:00.000000000Z', 'OPEN',
			'2026-11-30T05:00:00.000000000Z', '2026-11-30T05:00:00.000000000Z', 1)`,
		`INSERT INTO outbox(event_id, bus, source, detail_type, detail, slot_id, correlation_id, event)
			VALUES ('e1', 'reservation', 'reservation.slotreservation.created', 'Created', '{"metadata":{},"data":{}}', 's1', 'c1', 'CREATED')`,
		`INSERT INTO processed_commands VALUES ('cmd-1', '{"commandId":"cmd-1","status":"dead-lettered","at":"2026-11-30T05:00:00Z"}', '2026-11-30T05:00:00.000000000Z')`,
		`INSERT INTO dead_letters VALUES ('m1', 'command', 'slot-commands', x'6e6f74206a736f6e', '{}', 'not JSON', 'permanent', 1, 0,
			'2026-11-30T05:00:00.000000000Z', '2026-11-30T05:00:00.000000000Z', 'd1')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := open(t, dir, sqlite.Options{})
	ctx := context.Background()
	var got map[string]domain.Slot
	var rec map[string]domain.Processed
	if err := s.Batch(ctx, func(ctx context.Context, tx domain.Tx) error {
		if got, err = tx.Slots(ctx, []string{"s1"}); err != nil {
			return err
		}
		rec, err = tx.Processed(ctx, []string{"cmd-1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got["s1"].Status != domain.StatusOpen || got["s1"].Version != 1 {
		t.Errorf("slot after migration: %+v", got)
	}
	// The record's status moved into its own column: a replay may replace it.
	if p := rec["cmd-1"]; p.Outcome.Status != domain.OutcomeDeadLettered || !p.Redo(1) {
		t.Errorf("record after migration: %+v", p)
	}
	if recs, err := s.PendingEnvelopes(ctx, 0, 10); err != nil || len(recs) != 1 || recs[0].Envelope.ID != "e1" {
		t.Errorf("outbox after migration: %v, %v", recs, err)
	}
	dls, err := s.DeadLetters(ctx, publisher.DeadLetterFilter{})
	if err != nil || len(dls) != 1 || string(dls[0].Payload) != "not json" || dls[0].Digest != "d1" {
		t.Errorf("dead letters after migration: %+v, %v", dls, err)
	}
	var version int64
	if err := s.DB().QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&version); err != nil || version < 2 {
		t.Errorf("schema version %d (%v), want the latest migration", version, err)
	}
}
