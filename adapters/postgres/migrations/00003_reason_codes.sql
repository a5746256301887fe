-- The bounded reason code of each dead letter (malformed, invalid,
-- retries_exhausted, refused, policy, ...), beside the reason text: what
-- `emitd status` groups dead letters by. Dead letters stored before codes
-- were kept get the code their reason text still tells, else ''.

-- +goose Up
ALTER TABLE dead_letters ADD COLUMN code text NOT NULL DEFAULT '';
UPDATE dead_letters SET code = CASE
  WHEN kind IN ('event', 'outcome') THEN 'refused'
  WHEN reason LIKE 'retries exhausted%' THEN 'retries_exhausted'
  WHEN reason LIKE 'handler panic%' THEN 'panic'
  ELSE '' END;

-- +goose Down
ALTER TABLE dead_letters DROP COLUMN code;
