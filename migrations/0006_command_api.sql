-- The command API's audit trail: an Idempotency-Key per caller, and when an unanswered command
-- expires (the API marks it `expired` after that).
ALTER TABLE commands ADD COLUMN IF NOT EXISTS idempotency_key text;
ALTER TABLE commands ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS commands_idempotency_idx
    ON commands (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS commands_pending_idx ON commands (expires_at) WHERE status IN ('queued', 'sent');
