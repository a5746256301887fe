-- Retention: a purged (or replayed) dead letter is kept, out of every
-- listing, until store.retention has passed: what was removed, when, stays
-- visible to an audit (emitd dlq list --purged), and the prune job removes
-- it after. The same message dead-lettered again is a new failure: it
-- comes back.

-- +goose Up
ALTER TABLE dead_letters ADD COLUMN purged_at TEXT;
CREATE INDEX dead_letters_purged ON dead_letters(purged_at) WHERE purged_at IS NOT NULL;

-- +goose Down
DROP INDEX dead_letters_purged;
ALTER TABLE dead_letters DROP COLUMN purged_at;
