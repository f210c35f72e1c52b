-- Every flush rewrites each moved car's latest state, its `last_seen`, its derivation state and its
-- period in progress: in a packed page the new version lands on another page, and every index of
-- the table takes a new entry. Room left in each page lets PostgreSQL write the new version beside
-- the old one (a HOT update: no index entry, the old version pruned in place). A steady 10,000-car
-- flush's state statement fell by a third with it (docs/benchmarks.md, "Room for updates").
-- A state of about 3 KB then takes a page to itself: 80 MB instead of 32 MB at 10,000 cars.
-- Tables written before this keep their packed pages until they are rewritten (VACUUM FULL).
ALTER TABLE vehicle_state SET (fillfactor = 50);
ALTER TABLE vehicles SET (fillfactor = 50);
ALTER TABLE vehicle_derivation SET (fillfactor = 50);
-- Finished periods are written once; only a car's current one is rewritten, so less room will do.
ALTER TABLE parks SET (fillfactor = 70);
ALTER TABLE drives SET (fillfactor = 70);
ALTER TABLE charges SET (fillfactor = 70);
