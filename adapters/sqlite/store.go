// Package sqlite is the embedded state store: slots, the outbox, processed
// commands and event dead letters in one SQLite file (pure Go, no cgo).
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// FileName is the database file under the data directory.
const FileName = "emitd.db"

// ErrLocked means another emitd process serves the same data directory.
var ErrLocked = errors.New("data directory is in use by another emitd serve")

// Store implements domain.Store and publisher.Outbox.
type Store struct {
	db   *sql.DB
	lock *os.File
}

const schema = `
CREATE TABLE IF NOT EXISTS slots (
  slot_id    TEXT PRIMARY KEY,
  host_name  TEXT NOT NULL,
  start_time TEXT NOT NULL,
  end_time   TEXT NOT NULL,
  status     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  version    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS slots_status ON slots(status);
CREATE TABLE IF NOT EXISTS outbox (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id       TEXT NOT NULL UNIQUE,
  bus            TEXT NOT NULL,
  source         TEXT NOT NULL,
  detail_type    TEXT NOT NULL,
  detail         TEXT NOT NULL,
  slot_id        TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  event          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS processed_commands (
  command_id   TEXT PRIMARY KEY,
  outcome      TEXT NOT NULL,
  processed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS event_dead_letters (
  event_id       TEXT PRIMARY KEY,
  outbox_seq     INTEGER NOT NULL,
  bus            TEXT NOT NULL,
  source         TEXT NOT NULL,
  detail_type    TEXT NOT NULL,
  detail         TEXT NOT NULL,
  slot_id        TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  event          TEXT NOT NULL,
  reason         TEXT NOT NULL,
  failed_at      TEXT NOT NULL
);
`

// Open opens (creating if needed) dataDir/emitd.db. With exclusive set it
// also takes the data directory's lock, so a second `emitd serve` on the same
// directory is refused instead of interleaving writes with the first.
func Open(dataDir string, exclusive bool) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := &Store{}
	if exclusive {
		lock, err := lockDir(dataDir)
		if err != nil {
			return nil, err
		}
		s.lock = lock
	}
	path := filepath.Join(dataDir, FileName)
	// WAL lets readers (emitd dlq, tests) look while the daemon writes;
	// busy_timeout turns lock contention into waiting, not errors;
	// _txlock=immediate takes the write lock at BEGIN so read-then-write
	// transactions cannot deadlock.
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and this way the daemon
	// never sees SQLITE_BUSY from itself.
	db.SetMaxOpenConns(1)
	s.db = db
	if _, err := db.Exec(schema); err != nil {
		s.Close()
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	return s, nil
}

func lockDir(dataDir string) (*os.File, error) {
	path := filepath.Join(dataDir, "emitd.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("%w: %s (held by pid %s); stop it or use another dataDir",
			ErrLocked, dataDir, strings.TrimSpace(string(holder)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// Close closes the database and releases the lock.
func (s *Store) Close() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
	}
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
	}
	return err
}

const timeFormat = time.RFC3339Nano

func scanSlot(row interface{ Scan(...any) error }) (domain.Slot, error) {
	var s domain.Slot
	var start, end, created, updated, status string
	if err := row.Scan(&s.SlotID, &s.HostName, &start, &end, &status, &created, &updated, &s.Version); err != nil {
		return s, err
	}
	s.Status = domain.Status(status)
	var err error
	parse := func(v string) time.Time {
		t, e := time.Parse(timeFormat, v)
		if e != nil && err == nil {
			err = fmt.Errorf("slot %s: bad time %q: %w", s.SlotID, v, e)
		}
		return t
	}
	s.TimeSlot.StartTime, s.TimeSlot.EndTime = parse(start), parse(end)
	s.CreatedAt, s.UpdatedAt = parse(created), parse(updated)
	return s, err
}

const slotColumns = `slot_id, host_name, start_time, end_time, status, created_at, updated_at, version`

// GetSlot implements domain.SlotSource.
func (s *Store) GetSlot(ctx context.Context, slotID string) (domain.Slot, bool, error) {
	slot, err := scanSlot(s.db.QueryRowContext(ctx, `SELECT `+slotColumns+` FROM slots WHERE slot_id = ?`, slotID))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Slot{}, false, nil
	}
	return slot, err == nil, err
}

// ListSlots implements domain.SlotSource.
func (s *Store) ListSlots(ctx context.Context, statuses ...domain.Status) ([]domain.Slot, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = string(st)
	}
	q := `SELECT ` + slotColumns + ` FROM slots WHERE status IN (?` + strings.Repeat(",?", len(statuses)-1) + `) ORDER BY start_time, slot_id`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Slot
	for rows.Next() {
		slot, err := scanSlot(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, slot)
	}
	return out, rows.Err()
}

// ProcessedOutcome implements domain.Store.
func (s *Store) ProcessedOutcome(ctx context.Context, commandID string) (domain.Outcome, bool, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT outcome FROM processed_commands WHERE command_id = ?`, commandID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Outcome{}, false, nil
	}
	if err != nil {
		return domain.Outcome{}, false, err
	}
	var o domain.Outcome
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return o, false, fmt.Errorf("stored outcome of %s: %w", commandID, err)
	}
	return o, true, nil
}

// Commit implements domain.Store: one transaction for the command id, the
// slot states and the outbox.
func (s *Store) Commit(ctx context.Context, c domain.Commit) (err error) {
	outcome, err := json.Marshal(c.Outcome)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, `INSERT INTO processed_commands(command_id, outcome, processed_at) VALUES (?, ?, ?)
		ON CONFLICT(command_id) DO NOTHING`, c.Outcome.CommandID, string(outcome), c.Outcome.At.UTC().Format(timeFormat))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return domain.ErrDuplicateCommand
	}
	for _, sl := range c.Slots {
		args := []any{sl.HostName, sl.TimeSlot.StartTime.UTC().Format(timeFormat), sl.TimeSlot.EndTime.UTC().Format(timeFormat),
			string(sl.Status), sl.CreatedAt.UTC().Format(timeFormat), sl.UpdatedAt.UTC().Format(timeFormat), sl.Version, sl.SlotID}
		var res sql.Result
		if sl.Version == 1 {
			res, err = tx.ExecContext(ctx, `INSERT INTO slots(host_name, start_time, end_time, status, created_at, updated_at, version, slot_id)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(slot_id) DO NOTHING`, args...)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE slots SET host_name=?, start_time=?, end_time=?, status=?, created_at=?, updated_at=?, version=?
				WHERE slot_id=? AND version=?`, append(args, sl.Version-1)...)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("slot %s at version %d: %w", sl.SlotID, sl.Version-1, domain.ErrConcurrentUpdate)
		}
	}
	if len(c.Envelopes) > 0 {
		if err = insertEnvelopes(ctx, tx, c.Envelopes); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// insertEnvelopes writes all envelopes of a commit with one statement.
func insertEnvelopes(ctx context.Context, tx *sql.Tx, envs []domain.Envelope) error {
	var q strings.Builder
	q.WriteString(`INSERT INTO outbox(event_id, bus, source, detail_type, detail, slot_id, correlation_id, event) VALUES `)
	args := make([]any, 0, 8*len(envs))
	for i, e := range envs {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?,?,?,?,?)")
		args = append(args, e.ID, e.EventBusName, e.Source, e.DetailType, e.Detail, e.SlotID, e.CorrelationID, string(e.Event))
	}
	_, err := tx.ExecContext(ctx, q.String(), args...)
	return err
}

// PendingEnvelopes implements publisher.Outbox.
func (s *Store) PendingEnvelopes(ctx context.Context, limit int) ([]publisher.OutboxRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, event_id, bus, source, detail_type, detail, slot_id, correlation_id, event
		FROM outbox ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []publisher.OutboxRecord
	for rows.Next() {
		var r publisher.OutboxRecord
		e := &r.Envelope
		var ev string
		if err := rows.Scan(&r.Seq, &e.ID, &e.EventBusName, &e.Source, &e.DetailType, &e.Detail, &e.SlotID, &e.CorrelationID, &ev); err != nil {
			return nil, err
		}
		e.Event = domain.EventName(ev)
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkSent implements publisher.Outbox.
func (s *Store) MarkSent(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, len(seqs))
	for i, v := range seqs {
		args[i] = v
	}
	_, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE seq IN (?`+strings.Repeat(",?", len(seqs)-1)+`)`, args...)
	return err
}

// DeadLetterEvents implements publisher.Outbox.
func (s *Store) DeadLetterEvents(ctx context.Context, dls []publisher.EventDeadLetter) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, d := range dls {
		e := d.Envelope
		if _, err = tx.ExecContext(ctx, `INSERT INTO event_dead_letters(event_id, outbox_seq, bus, source, detail_type, detail, slot_id, correlation_id, event, reason, failed_at)
			VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(event_id) DO UPDATE SET reason=excluded.reason, failed_at=excluded.failed_at`,
			e.ID, d.Seq, e.EventBusName, e.Source, e.DetailType, e.Detail, e.SlotID, e.CorrelationID, string(e.Event), d.Reason, d.At.UTC().Format(timeFormat)); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq = ?`, d.Seq); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// EventDeadLetters lists the event dead letters, oldest first.
func (s *Store) EventDeadLetters(ctx context.Context) ([]publisher.EventDeadLetter, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT outbox_seq, event_id, bus, source, detail_type, detail, slot_id, correlation_id, event, reason, failed_at
		FROM event_dead_letters ORDER BY outbox_seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []publisher.EventDeadLetter
	for rows.Next() {
		var d publisher.EventDeadLetter
		e := &d.Envelope
		var ev, at string
		if err := rows.Scan(&d.Seq, &e.ID, &e.EventBusName, &e.Source, &e.DetailType, &e.Detail, &e.SlotID, &e.CorrelationID, &ev, &d.Reason, &at); err != nil {
			return nil, err
		}
		e.Event = domain.EventName(ev)
		d.At, _ = time.Parse(timeFormat, at)
		out = append(out, d)
	}
	return out, rows.Err()
}

// OutboxLen is how many envelopes wait for their bus.
func (s *Store) OutboxLen(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
	return n, err
}
