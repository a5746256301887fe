-- The schema emitd created before it had migrations, kept as it was (IF NOT
-- EXISTS) so that a database made by that version is taken over unchanged.

-- +goose Up
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

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE processed_commands;
DROP TABLE outbox;
DROP TABLE slots;
