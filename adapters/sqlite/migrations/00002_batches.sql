-- Group commit and outcomes through the outbox.
--
-- A batch writes hundreds of rows in one transaction, so what it costs is
-- the pages it dirties: every index on a random key (a UUID) dirties a
-- page of its own for each row. The tables keyed by an id are therefore
-- WITHOUT ROWID (the row lives in its primary key, one b-tree instead of
-- two), and the outboxes, which are only appended to and read in order,
-- keep no index on their ids.

-- +goose Up
-- The status and replay count of a command's record: a command recorded as
-- dead-lettered is processed anew by a delivery replayed more often.
CREATE TABLE processed_commands_v2 (
  command_id   TEXT PRIMARY KEY,
  status       TEXT NOT NULL,
  replays      INTEGER NOT NULL,
  outcome      TEXT NOT NULL,
  processed_at TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO processed_commands_v2(command_id, status, replays, outcome, processed_at)
  SELECT command_id, coalesce(json_extract(outcome, '$.status'), ''), 0, outcome, processed_at FROM processed_commands;
DROP TABLE processed_commands;
ALTER TABLE processed_commands_v2 RENAME TO processed_commands;
CREATE INDEX processed_commands_at ON processed_commands(processed_at);

CREATE TABLE slots_v2 (
  slot_id    TEXT PRIMARY KEY,
  host_name  TEXT NOT NULL,
  start_time TEXT NOT NULL,
  end_time   TEXT NOT NULL,
  status     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  version    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO slots_v2 SELECT slot_id, host_name, start_time, end_time, status, created_at, updated_at, version FROM slots;
DROP TABLE slots;
ALTER TABLE slots_v2 RENAME TO slots;
CREATE INDEX slots_status ON slots(status);

-- created_at: when an envelope was committed (the relay's lag is the age
-- of the oldest). event_id keeps no unique index: the relay reads by seq.
CREATE TABLE outbox_v2 (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id       TEXT NOT NULL,
  bus            TEXT NOT NULL,
  source         TEXT NOT NULL,
  detail_type    TEXT NOT NULL,
  detail         TEXT NOT NULL,
  slot_id        TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  event          TEXT NOT NULL,
  created_at     TEXT NOT NULL
);
INSERT INTO outbox_v2(seq, event_id, bus, source, detail_type, detail, slot_id, correlation_id, event, created_at)
  SELECT seq, event_id, bus, source, detail_type, detail, slot_id, correlation_id, event, '' FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;

-- Outcomes wait here for the results topic, as envelopes wait in the outbox
-- for their bus: written in the command's transaction, published after.
CREATE TABLE outcome_outbox (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id     TEXT NOT NULL,
  command_id     TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  payload        TEXT NOT NULL,
  created_at     TEXT NOT NULL
);

-- Dead letters are keyed by message id AND payload digest: two different
-- messages that carry the same id are two dead letters, not one.
CREATE TABLE dead_letters_v2 (
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
INSERT INTO dead_letters_v2(id, digest, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure)
  SELECT id, digest, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_v2 RENAME TO dead_letters;
CREATE INDEX dead_letters_first ON dead_letters(first_failure);

-- +goose Down
CREATE TABLE dead_letters_v1 (
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
INSERT OR IGNORE INTO dead_letters_v1 SELECT id, kind, origin, payload, metadata, reason, class, attempts, replays, first_failure, last_failure, digest FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_v1 RENAME TO dead_letters;
CREATE INDEX dead_letters_first ON dead_letters(first_failure);
DROP TABLE outcome_outbox;
CREATE TABLE outbox_v1 (
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
INSERT OR IGNORE INTO outbox_v1 SELECT seq, event_id, bus, source, detail_type, detail, slot_id, correlation_id, event FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v1 RENAME TO outbox;
CREATE TABLE slots_v1 (
  slot_id    TEXT PRIMARY KEY,
  host_name  TEXT NOT NULL,
  start_time TEXT NOT NULL,
  end_time   TEXT NOT NULL,
  status     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  version    INTEGER NOT NULL
);
INSERT INTO slots_v1 SELECT * FROM slots;
DROP TABLE slots;
ALTER TABLE slots_v1 RENAME TO slots;
CREATE INDEX slots_status ON slots(status);
CREATE TABLE processed_commands_v1 (
  command_id   TEXT PRIMARY KEY,
  outcome      TEXT NOT NULL,
  processed_at TEXT NOT NULL
);
INSERT INTO processed_commands_v1 SELECT command_id, outcome, processed_at FROM processed_commands;
DROP TABLE processed_commands;
ALTER TABLE processed_commands_v1 RENAME TO processed_commands;
