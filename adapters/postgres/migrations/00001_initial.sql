-- emitd's schema on PostgreSQL: the same tables as on SQLite, in the
-- schema the connection's search_path names. Outcomes and metadata are
-- kept as the exact JSON text emitd wrote (jsonb would reorder keys).

-- +goose Up
CREATE TABLE slots (
  slot_id    text PRIMARY KEY,
  host_name  text NOT NULL,
  start_time timestamptz NOT NULL,
  end_time   timestamptz NOT NULL,
  status     text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  version    integer NOT NULL
);
CREATE INDEX slots_status ON slots (status, start_time);

CREATE TABLE processed_commands (
  command_id   text PRIMARY KEY,
  status       text NOT NULL,
  replays      integer NOT NULL,
  outcome      text NOT NULL,
  processed_at timestamptz NOT NULL
);
CREATE INDEX processed_commands_at ON processed_commands (processed_at);

-- seq is taken under the outbox lock (see the store), so it is the commit
-- order: the relay reads in seq order.
CREATE TABLE outbox (
  seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id       text NOT NULL,
  bus            text NOT NULL,
  source         text NOT NULL,
  detail_type    text NOT NULL,
  detail         text NOT NULL,
  slot_id        text NOT NULL,
  correlation_id text NOT NULL,
  event          text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outcome_outbox (
  seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id     text NOT NULL,
  command_id     text NOT NULL,
  correlation_id text NOT NULL,
  payload        text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dead_letters (
  id            text NOT NULL,
  digest        text NOT NULL,
  kind          text NOT NULL,
  origin        text NOT NULL,
  payload       bytea NOT NULL,
  metadata      text NOT NULL,
  reason        text NOT NULL,
  class         text NOT NULL,
  attempts      integer NOT NULL,
  replays       integer NOT NULL,
  first_failure timestamptz NOT NULL,
  last_failure  timestamptz NOT NULL,
  purged_at     timestamptz,
  PRIMARY KEY (id, digest)
);
CREATE INDEX dead_letters_first ON dead_letters (first_failure);
CREATE INDEX dead_letters_purged ON dead_letters (purged_at) WHERE purged_at IS NOT NULL;

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE outcome_outbox;
DROP TABLE outbox;
DROP TABLE processed_commands;
DROP TABLE slots;
