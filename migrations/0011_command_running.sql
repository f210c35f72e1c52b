-- One clock for a command (issue 13): the gateway says when it starts one (`running`, with the time
-- its outcome comes by); from then on the command is not expired but waits for that outcome, and a
-- final status never changes.
ALTER TABLE commands ADD COLUMN IF NOT EXISTS answer_by timestamptz;
ALTER TABLE commands DROP CONSTRAINT IF EXISTS commands_status_check;
ALTER TABLE commands ADD CONSTRAINT commands_status_check
    CHECK (status IN ('queued', 'sent', 'running', 'succeeded', 'failed', 'rejected', 'expired'));

CREATE INDEX IF NOT EXISTS commands_running_idx ON commands (answer_by) WHERE status = 'running';
