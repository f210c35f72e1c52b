-- A command's row is written four times: inserted `queued`, then `sent`, `running` and its outcome.
-- The sweeps found the unfinished ones by two indexes whose conditions read `status`, so every
-- status change was a new row version with a new entry in each of the table's five indexes. They
-- now find them by one index on the unfinished rows (`finished_at` is set with every outcome), and
-- `sent` and `running` change no indexed column: with room left in the page PostgreSQL writes them
-- beside the old version (a HOT update, no index entry). Only the outcome takes new entries.
-- docs/benchmarks.md, "The commands' rows updated in place".
CREATE INDEX IF NOT EXISTS commands_unfinished_idx ON commands (expires_at) WHERE finished_at IS NULL;
DROP INDEX IF EXISTS commands_pending_idx;
DROP INDEX IF EXISTS commands_running_idx;
-- Rows written before this keep their packed pages until they are rewritten.
ALTER TABLE commands SET (fillfactor = 70);
