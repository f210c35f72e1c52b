-- The operations console asks for the newest commands of the whole fleet every 5 s
-- (`GET /api/ops/commands`). Without an index on `created_at` each ask read all of `commands` and
-- sorted it: a table that only grows, a year of a fleet's commands read every 5 s per open console.
-- With it, the newest rows are read from the index's end. A command's inserts and status updates
-- pay one more index entry each (docs/benchmarks.md, "A database in service, the console's newest
-- commands").
CREATE INDEX IF NOT EXISTS commands_created_idx ON commands (created_at);
