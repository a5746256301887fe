// Package postgres is the shared state store: the same tables as the
// SQLite store, on PostgreSQL (through pgx), so that several emitd
// instances work on one state.
//
// What several instances need of it:
//   - no lost update: a batch reads the slots it decides on with SELECT ...
//     FOR UPDATE, so two instances deciding on one slot take turns, and the
//     second decides against what the first wrote; every write is also
//     checked against the version it was decided on;
//   - a command processed once: its record is inserted with ON CONFLICT, and
//     a record another instance wrote first (even one not yet committed:
//     the insert waits for it) is a conflict, and the batch is decided again;
//   - the outbox in commit order: the rows a batch appends are numbered
//     under a transaction-level advisory lock, held until the commit, so
//     that no later number commits before an earlier one (the relay reads
//     in number order and must not pass one that is still to come);
//   - one relay at a time: Lease hands out session-level advisory locks.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/emitd/emitd/configs/redact"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store implements domain.Store, publisher.Outbox, publisher.OutcomeOutbox,
// publisher.DeadLetterStore and publisher.Leaser on PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // for the leases' own connections
	where   string          // host:port/database, for messages (never the password)
	// scope is the schema of emitd's tables; outboxLock the advisory key
	// that orders the outbox writes in it (see Save).
	scope      string
	outboxLock int64
}

// Redact returns url with its password replaced, for messages: a libpq URL
// (postgres://user:secret@host/db) or key=value string (password=secret).
func Redact(dsn string) string { return redact.URL(dsn) }

// Open connects to the database dsn names, checks that it answers, and
// brings the schema up to date (migrations under a lock, so that instances
// starting together do not race). It never creates the database itself.
// Errors name the host, port, database and user, never the password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx writes the password as xxxxx in what it cannot parse, as best
		// it can; what it wraps (a net/url error) may still quote it.
		return nil, fmt.Errorf("store.url: %w", redact.URLError(err, dsn))
	}
	cc := cfg.ConnConfig
	where := fmt.Sprintf("%s/%s (user %s)", net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port)), cc.Database, cc.User)
	cfg.MaxConns = max(cfg.MaxConns, 8)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", where, explain(err))
	}
	s := &Store{pool: pool, connCfg: cc.Copy(), where: where}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// The schema emitd's tables live in (the first of the search_path)
	// scopes its advisory locks: those are database-wide, and two
	// deployments in one database, each in its own schema, must not wait
	// for each other's relay lease or outbox lock.
	var schema *string
	if err := pool.QueryRow(pctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", where, explain(err))
	}
	if schema == nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: no schema to create tables in: every schema of the search_path is missing or permission denied to this user (%s)", where, permissionHint)
	}
	s.scope = *schema
	s.outboxLock = s.advisoryKey("emitd.outbox")
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: schema: %w", where, explain(err))
	}
	return s, nil
}

const permissionHint = "the user needs USAGE and CREATE on the schema its search_path names, for the migrations, " +
	"and SELECT, INSERT, UPDATE, DELETE on emitd's tables"

// explain turns what the server said into what to do about it.
func explain(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "3D000":
			return fmt.Errorf("%s: create the database first (emitd creates its tables, never the database)", pe.Message)
		case "28P01", "28000":
			return fmt.Errorf("authentication failed: %s", pe.Message)
		case "42501", "3F000":
			return fmt.Errorf("permission denied: %s (%s)", pe.Message, permissionHint)
		}
	}
	return err
}

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(s.advisoryKey("emitd.migrations")))
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// advisoryKey is the advisory lock key of a name in this store's schema.
func (s *Store) advisoryKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s.scope))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Where says which database this is, without the password.
func (s *Store) Where() string { return s.where }

// Ping says whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return unavailable(s.pool.Ping(ctx)) }

// unavailable sorts errors: those that say the database cannot be used now
// (down, unreachable, restarting, out of resources, a timeout) wrap
// domain.ErrUnavailable, and commands wait for it; a lost race (a
// serialization failure, a deadlock, a key taken) wraps domain.ErrConflict,
// and the batch is decided again; anything else is about the data.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "23505":
			return fmt.Errorf("%w: %w", domain.ErrConflict, err)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57"),
			pe.Code == "3D000", pe.Code == "28P01", pe.Code == "28000":
			return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, pgx.ErrTxClosed) || strings.Contains(err.Error(), "closed pool") {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return err
}

// ---- the batch transaction (domain.Store) -------------------------------------

// Batch implements domain.Store.
func (s *Store) Batch(ctx context.Context, fn func(context.Context, domain.Tx) error) error {
	return s.inTx(ctx, func(tx pgx.Tx) error { return fn(ctx, batchTx{tx: tx, outboxLock: s.outboxLock}) })
}

// inTx runs fn in a transaction, rolled back on any way out but a commit.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return unavailable(err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(tx); err != nil {
		return unavailable(err)
	}
	committed = true
	return unavailable(tx.Commit(ctx))
}

type batchTx struct {
	tx         pgx.Tx
	outboxLock int64
}

func (t batchTx) Processed(ctx context.Context, ids []string) (map[string]domain.Processed, error) {
	out := map[string]domain.Processed{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := t.tx.Query(ctx, `SELECT command_id, outcome, replays FROM processed_commands WHERE command_id = ANY($1)`, ids)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, raw string
		var p domain.Processed
		if err := rows.Scan(&id, &raw, &p.Replays); err != nil {
			return nil, unavailable(err)
		}
		if err := json.Unmarshal([]byte(raw), &p.Outcome); err != nil {
			return nil, fmt.Errorf("stored outcome of %s: %w", id, err)
		}
		out[id] = p
	}
	return out, unavailable(rows.Err())
}

const slotColumns = `slot_id, host_name, start_time, end_time, status, created_at, updated_at, version`

func scanSlots(rows pgx.Rows) ([]domain.Slot, error) {
	defer rows.Close()
	var out []domain.Slot
	for rows.Next() {
		var s domain.Slot
		var status string
		if err := rows.Scan(&s.SlotID, &s.HostName, &s.TimeSlot.StartTime, &s.TimeSlot.EndTime, &status,
			&s.CreatedAt, &s.UpdatedAt, &s.Version); err != nil {
			return nil, unavailable(err)
		}
		s.Status = domain.Status(status)
		if !s.Status.Valid() {
			return nil, fmt.Errorf("slot %s: stored status %q is not one of the four", s.SlotID, status)
		}
		s.TimeSlot.StartTime, s.TimeSlot.EndTime = s.TimeSlot.StartTime.UTC(), s.TimeSlot.EndTime.UTC()
		s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
		out = append(out, s)
	}
	return out, unavailable(rows.Err())
}

// Slots reads and locks the slots, in key order (instances that lock the
// same slots wait for each other instead of deadlocking).
func (t batchTx) Slots(ctx context.Context, ids []string) (map[string]domain.Slot, error) {
	out := map[string]domain.Slot{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := t.tx.Query(ctx, `SELECT `+slotColumns+` FROM slots WHERE slot_id = ANY($1) ORDER BY slot_id FOR UPDATE`, ids)
	if err != nil {
		return nil, unavailable(err)
	}
	slots, err := scanSlots(rows)
	for _, s := range slots {
		out[s.SlotID] = s
	}
	return out, err
}

func (t batchTx) ListSlots(ctx context.Context, statuses ...domain.Status) ([]domain.Slot, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	names := make([]string, len(statuses))
	for i, s := range statuses {
		names[i] = string(s)
	}
	rows, err := t.tx.Query(ctx, `SELECT `+slotColumns+` FROM slots WHERE status = ANY($1) ORDER BY slot_id FOR UPDATE`, names)
	if err != nil {
		return nil, unavailable(err)
	}
	return scanSlots(rows)
}

// Save implements domain.Tx: one statement per table, rows as arrays.
func (t batchTx) Save(ctx context.Context, commits []domain.Commit) error {
	// Serializes the end of the batches that write the outboxes, across
	// instances, so that the rows they number commit in number order.
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, t.outboxLock); err != nil {
		return unavailable(err)
	}
	var rIDs, rStatus, rOutcome []string
	var rReplays []int32
	var rAt []time.Time
	var oMsg, oCmd, oCorr, oPayload []string
	var e [9][]string
	seen := map[string]bool{}
	for _, c := range commits {
		raw, err := json.Marshal(c.Outcome)
		if err != nil {
			return err
		}
		if c.Record {
			if seen[c.Outcome.CommandID] {
				return fmt.Errorf("command %s recorded twice in one batch: %w", c.Outcome.CommandID, domain.ErrConflict)
			}
			seen[c.Outcome.CommandID] = true
			rIDs, rStatus, rOutcome = append(rIDs, c.Outcome.CommandID), append(rStatus, c.Outcome.Status), append(rOutcome, string(raw))
			rReplays, rAt = append(rReplays, int32(c.Replays)), append(rAt, c.Outcome.At.UTC())
		}
		oMsg, oCmd = append(oMsg, uuid.NewString()), append(oCmd, c.Outcome.CommandID)
		oCorr, oPayload = append(oCorr, c.Outcome.CorrelationID), append(oPayload, string(raw))
		for _, env := range c.Envelopes {
			for i, v := range []string{env.ID, env.EventBusName, env.Source, env.DetailType, env.Detail, env.SlotID,
				env.CorrelationID, string(env.Event)} {
				e[i] = append(e[i], v)
			}
		}
	}
	if len(rIDs) > 0 {
		// New ids, and dead-lettered records a delivery replayed more often
		// replaces: a row not written is a record another instance wrote.
		if err := t.expect(ctx, len(rIDs), `INSERT INTO processed_commands (command_id, status, replays, outcome, processed_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[])
			ON CONFLICT (command_id) DO UPDATE SET status = excluded.status, replays = excluded.replays,
				outcome = excluded.outcome, processed_at = excluded.processed_at
			WHERE processed_commands.status = '`+domain.OutcomeDeadLettered+`' AND processed_commands.replays < excluded.replays
			RETURNING 1`, rIDs, rStatus, rReplays, rOutcome, rAt); err != nil {
			return err
		}
	}
	var nIDs, nHost, nStatus []string
	var nStart, nEnd, nCreated, nUpdated []time.Time
	var nVersion []int32
	var uIDs, uHost, uStatus []string
	var uUpdated []time.Time
	var uVersion, uFrom []int32
	for _, w := range domain.SlotWrites(commits) {
		sl := w.Slot
		if w.From == 0 {
			nIDs, nHost, nStatus = append(nIDs, sl.SlotID), append(nHost, sl.HostName), append(nStatus, string(sl.Status))
			nStart, nEnd = append(nStart, sl.TimeSlot.StartTime.UTC()), append(nEnd, sl.TimeSlot.EndTime.UTC())
			nCreated, nUpdated, nVersion = append(nCreated, sl.CreatedAt.UTC()), append(nUpdated, sl.UpdatedAt.UTC()), append(nVersion, int32(sl.Version))
		} else {
			uIDs, uHost, uStatus = append(uIDs, sl.SlotID), append(uHost, sl.HostName), append(uStatus, string(sl.Status))
			uUpdated, uVersion, uFrom = append(uUpdated, sl.UpdatedAt.UTC()), append(uVersion, int32(sl.Version)), append(uFrom, int32(w.From))
		}
	}
	if len(nIDs) > 0 {
		if err := t.expect(ctx, len(nIDs), `INSERT INTO slots (`+slotColumns+`)
			SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::int[])
			ON CONFLICT (slot_id) DO NOTHING RETURNING 1`, nIDs, nHost, nStart, nEnd, nStatus, nCreated, nUpdated, nVersion); err != nil {
			return err
		}
	}
	if len(uIDs) > 0 {
		tag, err := t.tx.Exec(ctx, `UPDATE slots s SET host_name = v.host, status = v.status, updated_at = v.updated, version = v.version
			FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::int[]) AS v(id, host, status, updated, version, from_version)
			WHERE s.slot_id = v.id AND s.version = v.from_version`, uIDs, uHost, uStatus, uUpdated, uVersion, uFrom)
		if err != nil {
			return unavailable(err)
		}
		if int(tag.RowsAffected()) != len(uIDs) {
			return fmt.Errorf("%d of %d slots at the version decided on: %w", tag.RowsAffected(), len(uIDs), domain.ErrConflict)
		}
	}
	if len(e[0]) > 0 {
		if _, err := t.tx.Exec(ctx, `INSERT INTO outbox (event_id, bus, source, detail_type, detail, slot_id, correlation_id, event)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`,
			e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]); err != nil {
			return unavailable(err)
		}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO outcome_outbox (message_id, command_id, correlation_id, payload)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`, oMsg, oCmd, oCorr, oPayload)
	return unavailable(err)
}

// expect runs a statement with RETURNING and fails with domain.ErrConflict
// unless it returned want rows.
func (t batchTx) expect(ctx context.Context, want int, q string, args ...any) error {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return unavailable(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return unavailable(err)
	}
	if n != want {
		return fmt.Errorf("%d of %d rows written: %w", n, want, domain.ErrConflict)
	}
	return nil
}

// ---- the outboxes ---------------------------------------------------------------

// PendingEnvelopes implements publisher.Outbox.
func (s *Store) PendingEnvelopes(ctx context.Context, after int64, limit int) ([]publisher.OutboxRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, event_id, bus, source, detail_type, detail, slot_id, correlation_id, event
		FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
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
			return nil, unavailable(err)
		}
		e.Event = domain.EventName(ev)
		out = append(out, r)
	}
	return out, unavailable(rows.Err())
}

// MarkSent implements publisher.Outbox.
func (s *Store) MarkSent(ctx context.Context, seqs []int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE seq = ANY($1)`, seqs)
	return unavailable(err)
}

// DeadLetterEvents implements publisher.Outbox: in one transaction the
// envelopes leave the outbox and become event dead letters.
func (s *Store) DeadLetterEvents(ctx context.Context, refused []publisher.EventDeadLetter) error {
	dls := make([]publisher.DeadLetter, len(refused))
	seqs := make([]int64, len(refused))
	for i, r := range refused {
		var err error
		if dls[i], err = publisher.EventDeadLetterOf(r.Envelope, r.Reason, r.At); err != nil {
			return err
		}
		if r.Code != "" {
			dls[i].Code = r.Code
		}
		seqs[i] = r.Seq
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := addDeadLetters(ctx, tx, dls); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM outbox WHERE seq = ANY($1)`, seqs)
		return err
	})
}

// OutboxLen is how many envelopes wait for their bus.
func (s *Store) OutboxLen(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
	return n, unavailable(err)
}

// Outboxes implements publisher.Reporter.
func (s *Store) Outboxes(ctx context.Context) (publisher.OutboxReport, error) {
	var r publisher.OutboxReport
	for _, o := range []struct {
		table string
		b     *publisher.Backlog
	}{{"outbox", &r.Envelopes}, {"outcome_outbox", &r.Outcomes}} {
		var oldest *time.Time
		if err := s.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM `+o.table).Scan(&o.b.Pending, &oldest); err != nil {
			return r, unavailable(err)
		}
		if oldest != nil {
			o.b.Oldest = oldest.UTC()
		}
	}
	return r, nil
}

// DeadLetterCounts implements publisher.Reporter.
func (s *Store) DeadLetterCounts(ctx context.Context) ([]publisher.DeadLetterCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, code, count(*) FROM dead_letters WHERE purged_at IS NULL GROUP BY kind, code ORDER BY kind, code`)
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
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM processed_commands GROUP BY status`)
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

// PendingOutcomes implements publisher.OutcomeOutbox.
func (s *Store) PendingOutcomes(ctx context.Context, after int64, limit int) ([]publisher.OutcomeRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, message_id, command_id, correlation_id, payload FROM outcome_outbox
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []publisher.OutcomeRecord
	for rows.Next() {
		var r publisher.OutcomeRecord
		var payload string
		if err := rows.Scan(&r.Seq, &r.MessageID, &r.CommandID, &r.CorrelationID, &payload); err != nil {
			return nil, unavailable(err)
		}
		r.Payload = []byte(payload)
		out = append(out, r)
	}
	return out, unavailable(rows.Err())
}

// MarkOutcomesSent implements publisher.OutcomeOutbox.
func (s *Store) MarkOutcomesSent(ctx context.Context, seqs []int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM outcome_outbox WHERE seq = ANY($1)`, seqs)
	return unavailable(err)
}

// ---- dead letters ---------------------------------------------------------------

// AddDeadLetters implements publisher.DeadLetterStore.
func (s *Store) AddDeadLetters(ctx context.Context, dls []publisher.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx pgx.Tx) error { return addDeadLetters(ctx, tx, dls) })
}

// addDeadLetters keeps one dead letter per key: the same message again is
// left as it is, unless it was purged (it failed anew: it comes back).
func addDeadLetters(ctx context.Context, tx pgx.Tx, dls []publisher.DeadLetter) error {
	for _, d := range dls {
		md, err := json.Marshal(d.Metadata)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dead_letters (id, digest, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure, code)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (id, digest) DO UPDATE SET kind = excluded.kind, origin = excluded.origin, metadata = excluded.metadata,
				reason = excluded.reason, code = excluded.code, class = excluded.class, attempts = excluded.attempts, replays = excluded.replays,
				first_failure = excluded.first_failure, last_failure = excluded.last_failure, purged_at = NULL
			WHERE dead_letters.purged_at IS NOT NULL`,
			d.ID, d.Digest, d.Kind, d.Origin, d.Payload, string(md), d.Reason, d.Class, d.Attempts, d.Replays, d.First.UTC(), d.Last.UTC(), d.Code); err != nil {
			return err
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
		q += ` AND id = ANY($1)`
		args = append(args, f.IDs)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY first_failure, id, digest`, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []publisher.DeadLetter
	for rows.Next() {
		var d publisher.DeadLetter
		var md string
		var purged *time.Time
		if err := rows.Scan(&d.ID, &d.Kind, &d.Origin, &d.Payload, &md, &d.Reason, &d.Code, &d.Class, &d.Attempts, &d.Replays,
			&d.First, &d.Last, &d.Digest, &purged); err != nil {
			return nil, unavailable(err)
		}
		if err := json.Unmarshal([]byte(md), &d.Metadata); err != nil {
			return nil, fmt.Errorf("dead letter %s: metadata: %w", d.ID, err)
		}
		d.First, d.Last = d.First.UTC(), d.Last.UTC()
		if purged != nil {
			d.Purged = purged.UTC()
		}
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
	ids, digests := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ids[i], digests[i] = k.ID, k.Digest
	}
	tag, err := s.pool.Exec(ctx, `UPDATE dead_letters d SET purged_at = now() FROM unnest($1::text[], $2::text[]) AS k(id, digest)
		WHERE d.id = k.id AND d.digest = k.digest AND d.purged_at IS NULL`, ids, digests)
	if err != nil {
		return 0, unavailable(err)
	}
	return int(tag.RowsAffected()), nil
}

// ---- event replays (publisher.EventReplayStore) -------------------------------

// EventReplays implements publisher.EventReplayStore.
func (s *Store) EventReplays(ctx context.Context, ids []string) (map[string]int, error) {
	out := map[string]int{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT event_id, replays FROM event_replays WHERE event_id = ANY($1)`, ids)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, unavailable(err)
		}
		out[id] = n
	}
	return out, unavailable(rows.Err())
}

// TakeEventReplay implements publisher.EventReplayStore: the insert or
// update takes the row's lock, so two instances taking the last replay of
// one event at the same time take turns, and the second sees the count the
// first wrote.
func (s *Store) TakeEventReplay(ctx context.Context, id string, max int) (int, bool, error) {
	if max > 0 {
		var n int
		err := s.pool.QueryRow(ctx, `INSERT INTO event_replays (event_id, replays, last_replay) VALUES ($1, 1, now())
			ON CONFLICT (event_id) DO UPDATE SET replays = event_replays.replays + 1, last_replay = excluded.last_replay
			WHERE event_replays.replays < $2 RETURNING replays`, id, max).Scan(&n)
		switch {
		case err == nil:
			return n, true, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return 0, false, unavailable(err)
		}
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT replays FROM event_replays WHERE event_id = $1`, id).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return n, false, unavailable(err)
}

// ReturnEventReplay implements publisher.EventReplayStore.
func (s *Store) ReturnEventReplay(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE event_replays SET replays = replays - 1 WHERE event_id = $1 AND replays > 0`, id)
	return unavailable(err)
}

// Prune removes processed-command records and purged dead letters older
// than before, in slices, so that no transaction holds many rows for long.
func (s *Store) Prune(ctx context.Context, before time.Time) (publisher.Pruned, error) {
	var p publisher.Pruned
	for _, q := range []struct {
		n   *int
		sql string
	}{
		{&p.Records, `DELETE FROM processed_commands WHERE command_id IN
			(SELECT command_id FROM processed_commands WHERE processed_at < $1 LIMIT 5000)`},
		{&p.DeadLetters, `DELETE FROM dead_letters WHERE (id, digest) IN
			(SELECT id, digest FROM dead_letters WHERE purged_at < $1 LIMIT 5000)`},
	} {
		for {
			tag, err := s.pool.Exec(ctx, q.sql, before.UTC())
			if err != nil {
				return p, unavailable(err)
			}
			*q.n += int(tag.RowsAffected())
			if tag.RowsAffected() < 5000 {
				break
			}
		}
	}
	return p, nil
}

// ---- leases (publisher.Leaser) ---------------------------------------------------

// Lease waits until this instance holds the lease name: a session-level
// advisory lock on a connection of its own. held ends when the lease is
// lost (the connection broke: the server let the lock go, and another
// instance may hold it now), release lets it go. An instance that dies
// loses its connection, so another takes the lease within a poll.
func (s *Store) Lease(ctx context.Context, name string) (held context.Context, release func(), err error) {
	key := s.advisoryKey("emitd.lease." + name)
	for {
		conn, err := pgx.ConnectConfig(ctx, s.connCfg)
		if err == nil {
			var got bool
			if err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err == nil && got {
				return s.hold(ctx, conn, key)
			}
			conn.Close(context.Background())
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(leasePoll):
		}
	}
}

// leasePoll is how often an instance without the lease tries to take it,
// and how often the holder checks that it still has it.
const leasePoll = time.Second

func (s *Store) hold(ctx context.Context, conn *pgx.Conn, key int64) (context.Context, func(), error) {
	held, lost := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(leasePoll)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(context.Background(), leasePoll)
				err := conn.Ping(pctx)
				cancel()
				if err != nil {
					lost()
					return
				}
			}
		}
	}()
	release := func() {
		lost()
		<-done
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(rctx, `SELECT pg_advisory_unlock($1)`, key)
		_ = conn.Close(rctx)
	}
	return held, release, nil
}
