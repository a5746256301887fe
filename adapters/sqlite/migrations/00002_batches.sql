-- Group commit and outcomes through the outbox.

-- +goose Up
-- The status and replay count of a command's record: a command recorded as
-- dead-lettered is processed anew by a delivery replayed more often.
ALTER TABLE processed_commands ADD COLUMN status TEXT NOT NULL DEFAULT '';
ALTER TABLE processed_commands ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
UPDATE processed_commands SET status = coalesce(json_extract(outcome, '$.status'), '');
CREATE INDEX processed_commands_at ON processed_commands(processed_at);

-- Outcomes wait here for the results topic, as envelopes wait in the outbox
-- for their bus: written in the command's transaction, published after.
CREATE TABLE outcome_outbox (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id     TEXT NOT NULL UNIQUE,
  command_id     TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  payload        TEXT NOT NULL,
  created_at     TEXT NOT NULL
);

-- When an envelope was committed: the relay's lag is the age of the oldest.
ALTER TABLE outbox ADD COLUMN created_at TEXT NOT NULL DEFAULT '';

-- Dead letters are keyed by message id AND payload digest: two different
-- messages that carry the same id are two dead letters, not one.
CREATE TABLE dead_letters_by_digest (
  id            TEXT NOT NULL,
  digest        TEXT NOT NULL,
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
  PRIMARY KEY (id, digest)
);
INSERT INTO dead_letters_by_digest(id, digest, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure)
  SELECT id, digest, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_by_digest RENAME TO dead_letters;
CREATE INDEX dead_letters_first ON dead_letters(first_failure);

-- +goose Down
DROP INDEX dead_letters_first;
CREATE TABLE dead_letters_by_id AS SELECT * FROM dead_letters GROUP BY id;
DROP TABLE dead_letters;
CREATE TABLE dead_letters (
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
INSERT INTO dead_letters SELECT id, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure, digest FROM dead_letters_by_id;
DROP TABLE dead_letters_by_id;
CREATE INDEX dead_letters_first ON dead_letters(first_failure);
DROP TABLE outcome_outbox;
ALTER TABLE outbox DROP COLUMN created_at;
DROP INDEX processed_commands_at;
ALTER TABLE processed_commands DROP COLUMN replays;
ALTER TABLE processed_commands DROP COLUMN status;
