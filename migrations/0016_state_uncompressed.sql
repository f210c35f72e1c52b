-- A vehicle's latest state (some 80 keys, about 3 KB as jsonb) is rewritten by every flush that
-- moves it. Past 2 KB PostgreSQL compressed it with pglz on each write and decompressed it on each
-- merge and read: a quarter of a steady 10,000-car flush's state statement, half of a full
-- republish's. Rows up to a page are now kept whole; a larger state is still compressed and moved
-- out of line as before. The other tables keep the default: history rows are written once and
-- compress well. Rows written before this keep their compressed form until their next update.
ALTER TABLE vehicle_state SET (toast_tuple_target = 8160);
