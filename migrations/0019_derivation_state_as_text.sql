-- Each car's derivation state (its open period and last reading, some 400 bytes) is written by
-- every flush that moves the car and read back whole by the next; nothing looks inside it in SQL.
-- As jsonb, PostgreSQL built its binary form on the way in and printed it back as text on the way
-- out; as json the text is kept as given (still checked to be JSON). In a steady 10,000-car flush
-- the write fell from 0.12 to 0.07 s and the read from 0.04 to 0.02 s (docs/benchmarks.md, "The
-- derivation state as text").
ALTER TABLE vehicle_derivation ALTER COLUMN state TYPE json USING state::json;
