-- Supabase's rules, applied wherever they mean something and harmless elsewhere:
-- RLS on every table (the owner the programs connect as is not subject to it), explicit grants to
-- service_role (new Supabase tables are no longer granted automatically), the latest-state table in
-- the Realtime publication, and policies that let a signed-in user read only the vehicles
-- `user_vehicles` gives them. The role, schema and publication checks let the same file run on a
-- plain PostgreSQL (the embedded default), where those objects do not exist.

ALTER TABLE vehicles ENABLE ROW LEVEL SECURITY;
ALTER TABLE vehicle_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE vehicle_telemetry ENABLE ROW LEVEL SECURITY;
ALTER TABLE commands ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_vehicles ENABLE ROW LEVEL SECURITY;
ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;

-- Only the service role (the ingest) may call the ingest function.
REVOKE EXECUTE ON FUNCTION ingest_vehicle_states(jsonb, jsonb) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT USAGE ON SCHEMA public TO service_role;
        GRANT SELECT, INSERT, UPDATE, DELETE
            ON vehicles, vehicle_state, vehicle_telemetry, commands, user_vehicles, dead_letters
            TO service_role;
        GRANT USAGE, SELECT ON SEQUENCE dead_letters_id_seq TO service_role;
        GRANT EXECUTE ON FUNCTION ingest_vehicle_states(jsonb, jsonb) TO service_role;
    END IF;

    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
       AND to_regprocedure('auth.uid()') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO authenticated;
        GRANT SELECT ON vehicles, vehicle_state, vehicle_telemetry, commands, user_vehicles TO authenticated;
        CREATE POLICY user_vehicles_own ON user_vehicles FOR SELECT TO authenticated
            USING (user_id = (SELECT auth.uid()));
        CREATE POLICY vehicles_granted ON vehicles FOR SELECT TO authenticated
            USING (vin IN (SELECT uv.vin FROM user_vehicles uv WHERE uv.user_id = (SELECT auth.uid())));
        CREATE POLICY vehicle_state_granted ON vehicle_state FOR SELECT TO authenticated
            USING (vin IN (SELECT uv.vin FROM user_vehicles uv WHERE uv.user_id = (SELECT auth.uid())));
        CREATE POLICY vehicle_telemetry_granted ON vehicle_telemetry FOR SELECT TO authenticated
            USING (vin IN (SELECT uv.vin FROM user_vehicles uv WHERE uv.user_id = (SELECT auth.uid())));
        CREATE POLICY commands_granted ON commands FOR SELECT TO authenticated
            USING (vin IN (SELECT uv.vin FROM user_vehicles uv WHERE uv.user_id = (SELECT auth.uid())));
    END IF;

    -- Realtime carries the latest state only, never the history (reference/storage.md §4).
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')
       AND NOT EXISTS (SELECT 1 FROM pg_publication_tables
                       WHERE pubname = 'supabase_realtime' AND schemaname = 'public'
                         AND tablename = 'vehicle_state') THEN
        ALTER PUBLICATION supabase_realtime ADD TABLE vehicle_state;
    END IF;
END
$$;
