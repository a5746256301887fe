// Package sqlite is the embedded state store: slots, the outbox of envelopes
// and of outcomes, processed commands and dead letters in one SQLite file
// (pure Go, no cgo).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// FileName is the database file under the data directory.
const FileName = "emitd.db"

// ErrLocked means another emitd process serves the same data directory.
var ErrLocked = errors.New("data directory is in use by another emitd serve")

// Synchronous modes (store.synchronous).
const (
	// SyncFull syncs the write-ahead log to disk at every commit: a command
	// acknowledged to its broker survives a power loss. The default.
	SyncFull = "full"
	// SyncNormal syncs only at checkpoints: faster, but a power loss (not a
	// crash of emitd) can roll back the last commits, whose commands were
	// acknowledged and are then never processed.
	SyncNormal = "normal"
)

// Options tune Open.
type Options struct {
	// Exclusive takes the data directory's lock, so that a second `emitd
	// serve` on the same directory is refused instead of interleaving its
	// writes with the first's. Operator commands (dlq, replay) open without
	// it, beside a running daemon.
	Exclusive bool
	// Synchronous is SyncFull (default when empty) or SyncNormal.
	Synchronous string
}

// Store implements domain.Store, publisher.Outbox, publisher.OutcomeOutbox
// and publisher.DeadLetterStore.
type Store struct {
	db      *sql.DB // the writer: one connection
	rdb     *sql.DB // readers (the relays, the operator's listings)
	lock    *os.File
	deletes deleteQueue // the relays' deletes, for the next transaction

	ckpt     *sql.DB // checkpoints, beside the writer
	stopCkpt chan struct{}
	ckptDone chan struct{}
}

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens dataDir/emitd.db, creating it if needed, and brings its schema
// up to date.
func Open(dataDir string, opts Options) (*Store, error) {
	sync := opts.Synchronous
	switch sync {
	case "":
		sync = SyncFull
	case SyncFull, SyncNormal:
	default:
		return nil, fmt.Errorf("sqlite: synchronous %q: want %s or %s", sync, SyncFull, SyncNormal)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := &Store{}
	if opts.Exclusive {
		lock, err := lockDir(dataDir)
		if err != nil {
			return nil, err
		}
		s.lock = lock
	}
	path := filepath.Join(dataDir, FileName)
	// WAL lets readers (emitd dlq, tests) look while the daemon writes;
	// busy_timeout turns lock contention with those readers into waiting,
	// not errors; _txlock=immediate takes the write lock at BEGIN, so a
	// batch reads what it decides on under the lock it writes with.
	// cache_size: 16 MiB for the writer, 4 MiB for each reader. The pages
	// beyond stay in the OS page cache, which the process's RSS does not
	// count; larger caches cost ~50 MB of RSS at 5,000 commands/s and
	// bought no throughput (make bench, 2 cores).
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=temp_store(memory)&_pragma=journal_mode(WAL)&_pragma=cache_size(-16384)&_pragma=wal_autocheckpoint(0)&_pragma=synchronous(" +
		strings.ToUpper(sync) + ")&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and this way the daemon
	// never sees SQLITE_BUSY from itself (its relays and its batches queue
	// for the connection instead).
	db.SetMaxOpenConns(1)
	s.db = db
	if err := migrate(db); err != nil {
		s.Close()
		return nil, fmt.Errorf("schema of %s: %w", path, err)
	}
	// Readers see the last commit and never wait for the writer (WAL): the
	// relays read the outbox while the next batch commits.
	if s.rdb, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)&_pragma=cache_size(-4096)"); err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.rdb.SetMaxOpenConns(4)
	if s.ckpt, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)"); err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.ckpt.SetMaxOpenConns(1)
	s.stopCkpt = make(chan struct{})
	s.ckptDone = make(chan struct{})
	go s.checkpoints()
	return s, nil
}

// migrate applies the embedded migrations. One process at a time gets here
// for a data directory (the lock, or SQLite's own write lock for the
// operator commands), so no migration lock is needed beyond SQLite's.
func migrate(db *sql.DB) error {
	sub, err := subFS()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		return err
	}
	_, err = p.Up(context.Background())
	return err
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

// checkpointEvery is how often the write-ahead log is copied back into
// the database file.
const checkpointEvery = time.Second

// checkpoints copies the write-ahead log into the database, now and then,
// from a connection of its own. SQLite would otherwise do it inside the
// commit that fills the log past its limit, and that commit (and the
// commands waiting for it) would take tens of milliseconds longer. A
// passive checkpoint never blocks the writer or the readers; it copies
// what no reader still needs, and the log is reused from its start once
// all of it was copied.
func (s *Store) checkpoints() {
	defer close(s.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
			_, _ = s.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// Close writes the deletes that wait, closes the database and releases
// the lock.
func (s *Store) Close() error {
	if s.db != nil {
		s.flushDeletes()
	}
	if s.stopCkpt != nil {
		close(s.stopCkpt)
		<-s.ckptDone
		s.stopCkpt = nil
		_ = s.ckpt.Close()
	}
	var err error
	if s.rdb != nil {
		err = s.rdb.Close()
	}
	if s.db != nil {
		err = errors.Join(err, s.db.Close())
	}
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
	}
	return err
}

// Ping says whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	// A query, not PingContext: a closed database, a locked or missing
	// file shows only when SQLite is asked something.
	var one int
	return unavailable(s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one))
}

// unavailable marks the errors that say the database cannot be used right
// now (locked by another process, I/O, disk full, closed), as opposed to an
// error about the data: commands wait for the former.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
			return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "database is closed") {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return err
}

// timeFormat is fixed width, so that times stored as text sort in time
// order (RFC3339Nano trims trailing zeros, and "…:05.1Z" sorts after
// "…:05.12Z"). Reading accepts any RFC 3339 time.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func scanSlot(row interface{ Scan(...any) error }) (domain.Slot, error) {
	var s domain.Slot
	var start, end, created, updated, status string
	if err := row.Scan(&s.SlotID, &s.HostName, &start, &end, &status, &created, &updated, &s.Version); err != nil {
		return s, err
	}
	s.Status = domain.Status(status)
	if !s.Status.Valid() {
		return s, fmt.Errorf("slot %s: stored status %q is not one of the four", s.SlotID, status)
	}
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

// chunks calls fn for consecutive pieces of at most size elements; SQLite
// bounds the parameters of one statement.
func chunks[T any](vals []T, size int, fn func([]T) error) error {
	for len(vals) > 0 {
		n := min(size, len(vals))
		if err := fn(vals[:n]); err != nil {
			return err
		}
		vals = vals[n:]
	}
	return nil
}

// maxRows bounds the rows of one multi-row statement (at most 12 columns:
// well under SQLite's 32766 parameters).
const maxRows = 500

const slotColumns = `slot_id, host_name, start_time, end_time, status, created_at, updated_at, version`

// ---- the batch transaction (domain.Store) -------------------------------------

// Batch implements domain.Store. The relays' deletes waiting in the queue
// are written in the same transaction (see MarkSent).
func (s *Store) Batch(ctx context.Context, fn func(context.Context, domain.Tx) error) error {
	jobs := s.deletes.take()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := runDeletes(ctx, tx, jobs); err != nil {
			return err
		}
		return fn(ctx, &batchTx{tx: tx, looked: map[string]bool{}, seen: map[string]domain.Processed{}, stmts: map[string]*sql.Stmt{}})
	})
	if err != nil {
		s.deletes.putBack(jobs) // rolled back with the batch: for the next transaction
	}
	return err
}

// batchTx is one batch. SQLite has a single writer (and the data directory
// lock keeps a second daemon away), so what Processed read inside this
// transaction stays true until it commits: Save inserts the records of new
// ids and updates the ones it saw, instead of asking the database to
// resolve conflicts row by row (which costs a statement journal and a
// RETURNING table per statement).
type batchTx struct {
	tx     *sql.Tx
	looked map[string]bool             // ids Processed was asked about
	seen   map[string]domain.Processed // what it found
	stmts  map[string]*sql.Stmt        // closed with the transaction
}

func (t *batchTx) Processed(ctx context.Context, ids []string) (map[string]domain.Processed, error) {
	out := map[string]domain.Processed{}
	for _, id := range ids {
		t.looked[id] = true
	}
	err := chunks(ids, maxRows, func(ids []string) error {
		set, args := in(ids)
		rows, err := t.tx.QueryContext(ctx, `SELECT command_id, outcome, replays FROM processed_commands WHERE command_id IN `+set, args...)
		if err != nil {
			return unavailable(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, raw string
			var p domain.Processed
			if err := rows.Scan(&id, &raw, &p.Replays); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(raw), &p.Outcome); err != nil {
				return fmt.Errorf("stored outcome of %s: %w", id, err)
			}
			out[id] = p
			t.seen[id] = p
		}
		return unavailable(rows.Err())
	})
	return out, err
}

func (t *batchTx) Slots(ctx context.Context, ids []string) (map[string]domain.Slot, error) {
	out := map[string]domain.Slot{}
	err := chunks(ids, maxRows, func(ids []string) error {
		set, args := in(ids)
		rows, err := t.tx.QueryContext(ctx, `SELECT `+slotColumns+` FROM slots WHERE slot_id IN `+set, args...)
		if err != nil {
			return unavailable(err)
		}
		defer rows.Close()
		for rows.Next() {
			sl, err := scanSlot(rows)
			if err != nil {
				return err
			}
			out[sl.SlotID] = sl
		}
		return unavailable(rows.Err())
	})
	return out, err
}

func (t *batchTx) ListSlots(ctx context.Context, statuses ...domain.Status) ([]domain.Slot, error) {
	return listSlots(ctx, t.tx, statuses)
}

func listSlots(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, statuses []domain.Status) ([]domain.Slot, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	set, args := in(statuses)
	rows, err := q.QueryContext(ctx, `SELECT `+slotColumns+` FROM slots WHERE status IN `+set+` ORDER BY start_time, slot_id`, args...)
	if err != nil {
		return nil, unavailable(err)
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
	return out, unavailable(rows.Err())
}

// Save implements domain.Tx: a few multi-row statements for the whole batch.
func (t *batchTx) Save(ctx context.Context, commits []domain.Commit) error {
	var records, outcomes, inserts [][]any
	var replaced []domain.Commit
	var updates []domain.SlotWrite
	var envs [][]any
	// The pipeline reads the records of a batch before it saves; any it did
	// not read are read now, so that a replay's record replaces the
	// dead-lettered one instead of failing on its key.
	var unread []string
	for _, c := range commits {
		if c.Record && !t.looked[c.Outcome.CommandID] {
			unread = append(unread, c.Outcome.CommandID)
		}
	}
	if len(unread) > 0 {
		if _, err := t.Processed(ctx, unread); err != nil {
			return err
		}
	}
	now := formatTime(time.Now())
	recorded := map[string]bool{}
	for _, c := range commits {
		raw, err := json.Marshal(c.Outcome)
		if err != nil {
			return err
		}
		at := formatTime(c.Outcome.At)
		if c.Record {
			id := c.Outcome.CommandID
			prev, stored := t.seen[id]
			switch {
			case recorded[id]:
				return fmt.Errorf("command %s recorded twice in one batch: %w", id, domain.ErrConflict)
			case stored && !prev.Redo(c.Replays):
				return fmt.Errorf("command %s is recorded already: %w", id, domain.ErrConflict)
			case stored:
				replaced = append(replaced, c)
			default:
				records = append(records, []any{id, c.Outcome.Status, c.Replays, string(raw), at})
			}
			recorded[id] = true
		}
		outcomes = append(outcomes, []any{newMessageID(), c.Outcome.CommandID, c.Outcome.CorrelationID, string(raw), now}) // committed at: the relay lag
		for _, e := range c.Envelopes {
			envs = append(envs, []any{e.ID, e.EventBusName, e.Source, e.DetailType, e.Detail, e.SlotID, e.CorrelationID, string(e.Event), now})
		}
	}
	for _, w := range domain.SlotWrites(commits) {
		sl := w.Slot
		if w.From == 0 {
			inserts = append(inserts, []any{sl.SlotID, sl.HostName, formatTime(sl.TimeSlot.StartTime), formatTime(sl.TimeSlot.EndTime),
				string(sl.Status), formatTime(sl.CreatedAt), formatTime(sl.UpdatedAt), sl.Version})
		} else {
			updates = append(updates, w)
		}
	}
	// A primary key that is taken already (a record, a slot) fails the
	// statement: another writer got there first, a conflict.
	if err := t.insert(ctx, "processed_commands(command_id, status, replays, outcome, processed_at)", records); err != nil {
		return err
	}
	for _, c := range replaced {
		raw, _ := json.Marshal(c.Outcome)
		st, err := t.stmt(ctx, `UPDATE processed_commands SET status = ?, replays = ?, outcome = ?, processed_at = ?
			WHERE command_id = ? AND status = '`+domain.OutcomeDeadLettered+`' AND replays < ?`)
		if err != nil {
			return err
		}
		res, err := st.ExecContext(ctx, c.Outcome.Status, c.Replays, string(raw), formatTime(c.Outcome.At), c.Outcome.CommandID, c.Replays)
		if err != nil {
			return unavailable(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("record of %s changed underneath: %w", c.Outcome.CommandID, domain.ErrConflict)
		}
	}
	if err := t.insert(ctx, "slots("+slotColumns+")", inserts); err != nil {
		return err
	}
	for _, w := range updates {
		st, err := t.stmt(ctx, `UPDATE slots SET host_name = ?, status = ?, updated_at = ?, version = ? WHERE slot_id = ? AND version = ?`)
		if err != nil {
			return err
		}
		sl := w.Slot
		res, err := st.ExecContext(ctx, sl.HostName, string(sl.Status), formatTime(sl.UpdatedAt), sl.Version, sl.SlotID, w.From)
		if err != nil {
			return unavailable(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("slot %s at version %d: %w", sl.SlotID, w.From, domain.ErrConflict)
		}
	}
	if err := t.insert(ctx, "outbox(event_id, bus, source, detail_type, detail, slot_id, correlation_id, event, created_at)", envs); err != nil {
		return err
	}
	return t.insert(ctx, "outcome_outbox(message_id, command_id, correlation_id, payload, created_at)", outcomes)
}

// insertRows is how many rows one prepared INSERT writes: big enough to
// save most of the per-statement cost, small enough that a batch spends
// little on parsing it (a statement of a whole batch's rows, thousands of
// parameters, is parsed anew each time).
const insertRows = 32

// insert writes rows into table (with its column list) in statements of
// insertRows rows, then one statement a row for the rest.
func (t *batchTx) insert(ctx context.Context, table string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	cols := len(rows[0])
	for len(rows) > 0 {
		n := insertRows
		if len(rows) < n {
			n = 1
		}
		args := make([]any, 0, n*cols)
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		st, err := t.stmt(ctx, `INSERT INTO `+table+` VALUES `+values(cols, n))
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			if isConstraint(err) {
				return fmt.Errorf("%s: %w: %w", table, domain.ErrConflict, err)
			}
			return unavailable(err)
		}
		rows = rows[n:]
	}
	return nil
}

// stmt is q prepared in this transaction, once: the batch's statements
// are a handful of shapes, each executed many times.
func (t *batchTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, unavailable(err)
	}
	t.stmts[q] = st
	return st, nil
}

func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// values returns "(?,…),(?,…)…": rows groups of cols placeholders.
func values(cols, rows int) string {
	one := "(?" + strings.Repeat(",?", cols-1) + ")"
	return one + strings.Repeat(","+one, rows-1)
}

// ---- the outbox of envelopes (publisher.Outbox) ---------------------------------

// PendingEnvelopes implements publisher.Outbox.
func (s *Store) PendingEnvelopes(ctx context.Context, after int64, limit int) ([]publisher.OutboxRecord, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, event_id, bus, source, detail_type, detail, slot_id, correlation_id, event
		FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, unavailable(err)
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
	return out, unavailable(rows.Err())
}

// MarkSent implements publisher.Outbox.
func (s *Store) MarkSent(ctx context.Context, seqs []int64) error {
	return s.deleteSeqs(ctx, "outbox", seqs)
}

// deleteSeqs removes sent rows. It hands them to the next batch
// transaction, which deletes them with its own writes, and returns: SQLite
// has one writer and a durable commit costs an fsync, so the relays'
// deletes, each a transaction of its own, would make the batches wait for
// the writer and pay three fsyncs instead of one. Without a batch within
// deleteWait they are written on their own. Until then the rows are still
// listed; the relay reads on after them, and a relay that starts over
// publishes them again (at least once).
func (s *Store) deleteSeqs(_ context.Context, table string, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	s.deletes.add(&deleteJob{table: table, seqs: seqs})
	s.deletes.flushLater(deleteWait, s.flushDeletes)
	return nil
}

// flushDeletes writes the deletes no batch took.
func (s *Store) flushDeletes() {
	jobs := s.deletes.take()
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return runDeletes(ctx, tx, jobs) }); err != nil {
		s.deletes.putBack(jobs) // next time; meanwhile the rows are only listed again
	}
}

// deleteWait is how long a relay's delete waits for a batch to share.
const deleteWait = 10 * time.Millisecond

// deleteJob is one MarkSent waiting to be written.
type deleteJob struct {
	table string
	seqs  []int64
}

// deleteQueue holds the deletes not yet written.
type deleteQueue struct {
	mu    sync.Mutex
	jobs  []*deleteJob
	timer *time.Timer
}

// flushLater makes sure flush runs within d if nothing takes the jobs.
func (q *deleteQueue) flushLater(d time.Duration, flush func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.timer == nil {
		q.timer = time.AfterFunc(d, func() {
			q.mu.Lock()
			q.timer = nil
			q.mu.Unlock()
			flush()
		})
	}
}

func (q *deleteQueue) add(j *deleteJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
}

func (q *deleteQueue) take() []*deleteJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	jobs := q.jobs
	q.jobs = nil
	return jobs
}

func (q *deleteQueue) putBack(jobs []*deleteJob) {
	if len(jobs) == 0 {
		return
	}
	q.mu.Lock()
	q.jobs = append(jobs, q.jobs...)
	q.mu.Unlock()
}

func runDeletes(ctx context.Context, tx *sql.Tx, jobs []*deleteJob) error {
	for _, j := range jobs {
		if err := chunks(j.seqs, maxRows, func(seqs []int64) error {
			set, args := in(seqs)
			_, err := tx.ExecContext(ctx, `DELETE FROM `+j.table+` WHERE seq IN `+set, args...)
			return unavailable(err)
		}); err != nil {
			return err
		}
	}
	return nil
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
		if r.Code != "" {
			dls[i].Code = r.Code
		}
		seqs[i] = r.Seq
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertDeadLetters(ctx, tx, dls); err != nil {
			return err
		}
		return chunks(seqs, maxRows, func(seqs []int64) error {
			set, args := in(seqs)
			_, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq IN `+set, args...)
			return unavailable(err)
		})
	})
}

// OutboxLen is how many envelopes wait for their bus.
func (s *Store) OutboxLen(ctx context.Context) (int, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
	return n, unavailable(err)
}

// ---- what the store tells operations (publisher.Reporter) ------------------------

// Outboxes implements publisher.Reporter. Sent envelopes whose delete waits
// for the next batch (at most deleteWait) are still counted.
func (s *Store) Outboxes(ctx context.Context) (publisher.OutboxReport, error) {
	var r publisher.OutboxReport
	for _, o := range []struct {
		table string
		b     *publisher.Backlog
	}{{"outbox", &r.Envelopes}, {"outcome_outbox", &r.Outcomes}} {
		var oldest sql.NullString
		// Rows migrated from before created_at was kept have ''.
		if err := s.rdb.QueryRowContext(ctx, `SELECT count(*), min(NULLIF(created_at, '')) FROM `+o.table).Scan(&o.b.Pending, &oldest); err != nil {
			return r, unavailable(err)
		}
		if oldest.Valid {
			t, err := time.Parse(time.RFC3339Nano, oldest.String)
			if err != nil {
				return r, fmt.Errorf("%s: stored time %q: %w", o.table, oldest.String, err)
			}
			o.b.Oldest = t
		}
	}
	return r, nil
}

// DeadLetterCounts implements publisher.Reporter.
func (s *Store) DeadLetterCounts(ctx context.Context) ([]publisher.DeadLetterCount, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT kind, code, count(*) FROM dead_letters WHERE purged_at IS NULL GROUP BY kind, code ORDER BY kind, code`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []publisher.DeadLetterCount
	for rows.Next() {
		var c publisher.DeadLetterCount
		if err := rows.Scan(&c.Kind, &c.Code, &c.Count); err != nil {
			return nil, unavailable(err)
		}
		out = append(out, c)
	}
	return out, unavailable(rows.Err())
}

// ProcessedCounts implements publisher.Reporter.
func (s *Store) ProcessedCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT status, count(*) FROM processed_commands GROUP BY status`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, unavailable(err)
		}
		out[st] = n
	}
	return out, unavailable(rows.Err())
}

// ---- the outbox of outcomes (publisher.OutcomeOutbox) ---------------------------

// PendingOutcomes implements publisher.OutcomeOutbox.
func (s *Store) PendingOutcomes(ctx context.Context, after int64, limit int) ([]publisher.OutcomeRecord, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, message_id, command_id, correlation_id, payload FROM outcome_outbox
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []publisher.OutcomeRecord
	for rows.Next() {
		var r publisher.OutcomeRecord
		var payload string
		if err := rows.Scan(&r.Seq, &r.MessageID, &r.CommandID, &r.CorrelationID, &payload); err != nil {
			return nil, err
		}
		r.Payload = []byte(payload)
		out = append(out, r)
	}
	return out, unavailable(rows.Err())
}

// MarkOutcomesSent implements publisher.OutcomeOutbox.
func (s *Store) MarkOutcomesSent(ctx context.Context, seqs []int64) error {
	return s.deleteSeqs(ctx, "outcome_outbox", seqs)
}

// ---- dead letters (publisher.DeadLetterStore) -----------------------------------

// AddDeadLetters implements publisher.DeadLetterStore.
func (s *Store) AddDeadLetters(ctx context.Context, dls []publisher.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertDeadLetters(ctx, tx, dls) })
}

// insertDeadLetters keeps one dead letter per key: the same message again
// is left as it is, unless it was purged (it failed anew: it comes back).
func insertDeadLetters(ctx context.Context, tx *sql.Tx, dls []publisher.DeadLetter) error {
	for _, d := range dls {
		md, err := json.Marshal(d.Metadata)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dead_letters(id, digest, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure, code)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id, digest) DO UPDATE SET kind = excluded.kind, origin = excluded.origin,
				metadata = excluded.metadata, reason = excluded.reason, code = excluded.code, class = excluded.class, attempts = excluded.attempts,
				replays = excluded.replays, first_failure = excluded.first_failure, last_failure = excluded.last_failure, purged_at = NULL
			WHERE dead_letters.purged_at IS NOT NULL`,
			d.ID, d.Digest, d.Kind, d.Origin, d.Payload, string(md), d.Reason, d.Class, d.Attempts, d.Replays,
			formatTime(d.First), formatTime(d.Last), d.Code); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// DeadLetters implements publisher.DeadLetterStore.
func (s *Store) DeadLetters(ctx context.Context, f publisher.DeadLetterFilter) ([]publisher.DeadLetter, error) {
	q := `SELECT id, kind, origin, payload, metadata, reason, code, class, attempts, replays, first_failure, last_failure, digest, purged_at FROM dead_letters`
	if f.Purged {
		q += ` WHERE purged_at IS NOT NULL`
	} else {
		q += ` WHERE purged_at IS NULL`
	}
	var args []any
	if len(f.IDs) > 0 {
		var set string
		set, args = in(f.IDs)
		q += ` AND id IN ` + set
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY first_failure, id, digest`, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []publisher.DeadLetter
	for rows.Next() {
		var d publisher.DeadLetter
		var md, first, last string
		var purged sql.NullString
		if err := rows.Scan(&d.ID, &d.Kind, &d.Origin, &d.Payload, &md, &d.Reason, &d.Code, &d.Class, &d.Attempts, &d.Replays, &first, &last, &d.Digest, &purged); err != nil {
			return nil, err
		}
		if purged.Valid {
			d.Purged, _ = time.Parse(time.RFC3339Nano, purged.String)
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
	return out, unavailable(rows.Err())
}

// DeleteDeadLetters implements publisher.DeadLetterStore: the dead letters
// leave every listing; they are kept, purged, for store.retention.
func (s *Store) DeleteDeadLetters(ctx context.Context, keys []publisher.DeadLetterKey) (int, error) {
	n := 0
	now := formatTime(time.Now())
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			res, err := tx.ExecContext(ctx, `UPDATE dead_letters SET purged_at = ? WHERE id = ? AND digest = ? AND purged_at IS NULL`, now, k.ID, k.Digest)
			if err != nil {
				return unavailable(err)
			}
			m, _ := res.RowsAffected()
			n += int(m)
		}
		return nil
	})
	return n, err
}

// ---- event replays (publisher.EventReplayStore) -------------------------------

// EventReplays implements publisher.EventReplayStore.
func (s *Store) EventReplays(ctx context.Context, ids []string) (map[string]int, error) {
	out := map[string]int{}
	err := chunks(ids, 500, func(part []string) error {
		set, args := in(part)
		rows, err := s.rdb.QueryContext(ctx, `SELECT event_id, replays FROM event_replays WHERE event_id IN `+set, args...)
		if err != nil {
			return unavailable(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			out[id] = n
		}
		return unavailable(rows.Err())
	})
	return out, err
}

// TakeEventReplay implements publisher.EventReplayStore: one statement
// raises the count only while it is below max, under the single writer.
func (s *Store) TakeEventReplay(ctx context.Context, id string, max int) (int, bool, error) {
	n, taken := 0, false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n, taken = 0, false
		if max > 0 {
			err := tx.QueryRowContext(ctx, `INSERT INTO event_replays(event_id, replays, last_replay) VALUES (?, 1, ?)
				ON CONFLICT(event_id) DO UPDATE SET replays = event_replays.replays + 1, last_replay = excluded.last_replay
				WHERE event_replays.replays < ? RETURNING replays`, id, formatTime(time.Now()), max).Scan(&n)
			switch {
			case err == nil:
				taken = true
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return unavailable(err)
			}
		}
		err := tx.QueryRowContext(ctx, `SELECT replays FROM event_replays WHERE event_id = ?`, id).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return unavailable(err)
	})
	return n, taken, err
}

// ReturnEventReplay implements publisher.EventReplayStore.
func (s *Store) ReturnEventReplay(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE event_replays SET replays = replays - 1 WHERE event_id = ? AND replays > 0`, id)
	return unavailable(err)
}

// inTx runs fn in a transaction. It rolls back on any way out but a
// commit, a panic included: with one connection, a transaction left open
// would stop the whole store.
// Prune removes processed-command records and purged dead letters older
// than before, in slices, so that the writer is never held for long.
func (s *Store) Prune(ctx context.Context, before time.Time) (publisher.Pruned, error) {
	var p publisher.Pruned
	at := formatTime(before)
	for _, q := range []struct {
		n   *int
		sql string
	}{
		{&p.Records, `DELETE FROM processed_commands WHERE command_id IN
			(SELECT command_id FROM processed_commands WHERE processed_at < ? LIMIT 5000)`},
		{&p.DeadLetters, `DELETE FROM dead_letters WHERE (id, digest) IN
			(SELECT id, digest FROM dead_letters WHERE purged_at < ? LIMIT 5000)`},
	} {
		for {
			res, err := s.db.ExecContext(ctx, q.sql, at)
			if err != nil {
				return p, unavailable(err)
			}
			n, _ := res.RowsAffected()
			*q.n += int(n)
			if n < 5000 {
				break
			}
		}
	}
	return p, nil
}

// SingleProcess says that one process serves this store (the data
// directory's lock): it holds every lease at once.
func (s *Store) SingleProcess() bool { return true }

// Lease implements publisher.Leaser. One process serves a SQLite store
// (the data directory's lock), so it holds every lease at once.
func (s *Store) Lease(ctx context.Context, _ string) (context.Context, func(), error) {
	held, cancel := context.WithCancel(ctx)
	return held, cancel, nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	return unavailable(tx.Commit())
}

// subFS is the migrations directory as goose wants it: the files at its root.
func subFS() (fs.FS, error) { return fs.Sub(migrations, "migrations") }

// newMessageID gives each committed outcome the message id it keeps on
// every publish attempt.
func newMessageID() string { return uuid.NewString() }
