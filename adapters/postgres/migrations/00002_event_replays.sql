-- The loop guard of `emitd replay --from-queue`: how often each event
-- (metadata.id) was re-emitted from a bus's dead-letter queue. In the
-- store, so the count holds across runs, operators and machines; never
-- pruned, since a guard that forgets lets a loop start over (one small row
-- per event ever re-emitted).

-- +goose Up
CREATE TABLE event_replays (
  event_id    text PRIMARY KEY,
  replays     integer NOT NULL,
  last_replay timestamptz NOT NULL
);

-- +goose Down
DROP TABLE event_replays;
