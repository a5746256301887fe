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
CREATE TABLE IF NOT EXISTS dead_letters (
  id            TEXT PRIMARY KEY,
  kind          TEXT NOT NULL,
  origin        TEXT NOT NULL,
  payload       BLOB NOT NULL,
  metadata      TEXT NOT NULL,
  reason        TEXT NOT NULL,
  class         TEXT NOT NULL,
  attempts      INTEGER NOT NULL,
  replays       INTEGER NOT NULL,
  first_failure TEXT NOT NULL,
  last_failure  TEXT NOT NULL,
  digest        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_first ON dead_letters(first_failure);
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

// timeFormat is fixed width, so that times stored as text sort in time
// order (RFC3339Nano trims trailing zeros, and "…:05.1Z" sorts after
// "…:05.12Z"). Reading accepts any RFC 3339 time.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func scanSlot(row interface{ Scan(...any) error }) (domain.Slot, error) {
	var s domain.Slot
	var start, end, created, updated, status string
	if err := row.Scan(&s.SlotID, &s.HostName, &start, &end, &status, &created, &updated, &s.Version); err != nil {
		return s, err
	}
	s.Status = domain.Status(status)
	var err error
	parse := func(v string) time.Time {
		t, e := time.Parse(time.RFC3339Nano, v)
		if e != nil && err == nil {
			err = fmt.Errorf("slot %s: bad time %q: %w", s.SlotID, v, e)
		}
		return t
	}
	s.TimeSlot.StartTime, s.TimeSlot.EndTime = parse(start), parse(end)
	s.CreatedAt, s.UpdatedAt = parse(created), parse(updated)
	return s, err
}

// in returns "(?,?,…)" for n placeholders and the values as arguments.
func in[T any](vals []T) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return "(?" + strings.Repeat(",?", len(vals)-1) + ")", args
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
	set, args := in(statuses)
	rows, err := s.db.QueryContext(ctx, `SELECT `+slotColumns+` FROM slots WHERE status IN `+set+` ORDER BY start_time, slot_id`, args...)
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
	set, args := in(seqs)
	_, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE seq IN `+set, args...)
	return err
}

// DeadLetterEvents implements publisher.Outbox: in one transaction the
// envelopes leave the outbox and become event dead letters.
func (s *Store) DeadLetterEvents(ctx context.Context, refused []publisher.EventDeadLetter) (err error) {
	dls := make([]publisher.DeadLetter, len(refused))
	seqs := make([]int64, len(refused))
	for i, r := range refused {
		if dls[i], err = publisher.EventDeadLetterOf(r.Envelope, r.Reason, r.At); err != nil {
			return err
		}
		seqs[i] = r.Seq
	}
	set, args := in(seqs)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertDeadLetters(ctx, tx, dls); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq IN `+set, args...)
		return err
	})
}

// AddDeadLetters implements publisher.DeadLetterStore.
func (s *Store) AddDeadLetters(ctx context.Context, dls []publisher.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertDeadLetters(ctx, tx, dls) })
}

func insertDeadLetters(ctx context.Context, tx *sql.Tx, dls []publisher.DeadLetter) error {
	for _, d := range dls {
		md, err := json.Marshal(d.Metadata)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dead_letters(id, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure, digest)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`,
			d.ID, d.Kind, d.Origin, d.Payload, string(md), d.Reason, d.Class, d.Attempts, d.Replays,
			d.First.UTC().Format(timeFormat), d.Last.UTC().Format(timeFormat), d.Digest); err != nil {
			return err
		}
	}
	return nil
}

// DeadLetters implements publisher.DeadLetterStore.
func (s *Store) DeadLetters(ctx context.Context, f publisher.DeadLetterFilter) ([]publisher.DeadLetter, error) {
	q := `SELECT id, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure, digest FROM dead_letters`
	var args []any
	if len(f.IDs) > 0 {
		var set string
		set, args = in(f.IDs)
		q += ` WHERE id IN ` + set
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY first_failure, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []publisher.DeadLetter
	for rows.Next() {
		var d publisher.DeadLetter
		var md, first, last string
		if err := rows.Scan(&d.ID, &d.Kind, &d.Origin, &d.Payload, &md, &d.Reason, &d.Class, &d.Attempts, &d.Replays, &first, &last, &d.Digest); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(md), &d.Metadata); err != nil {
			return nil, fmt.Errorf("dead letter %s: metadata: %w", d.ID, err)
		}
		d.First, _ = time.Parse(time.RFC3339Nano, first)
		d.Last, _ = time.Parse(time.RFC3339Nano, last)
		if !f.Matches(d) {
			continue
		}
		out = append(out, d)
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	return out, rows.Err()
}

// DeleteDeadLetters implements publisher.DeadLetterStore.
func (s *Store) DeleteDeadLetters(ctx context.Context, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	set, args := in(ids)
	res, err := s.db.ExecContext(ctx, `DELETE FROM dead_letters WHERE id IN `+set, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// OutboxLen is how many envelopes wait for their bus.
func (s *Store) OutboxLen(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
	return n, err
}
