-- The latest-state rule of 0004, taking its rows as arrays (one per column): asyncpg sends them in
-- PostgreSQL's binary format, with nothing to parse but each row's `state`. The JSON entry point the
-- Supabase sink calls over RPC stays, and now only turns its documents into these arrays, so the
-- rule itself is still written once.

CREATE OR REPLACE FUNCTION upsert_vehicles(
    vins text[], accounts text[], brands text[], models text[], seen timestamptz[]
)
RETURNS void
LANGUAGE sql
SET search_path = public, pg_temp
AS $$
    INSERT INTO vehicles AS v (vin, account, brand, model, last_seen)
    SELECT DISTINCT ON (r.vin) r.vin, r.account, r.brand, r.model, r.last_seen
    FROM unnest(vins, accounts, brands, models, seen) AS r(vin, account, brand, model, last_seen)
    ORDER BY r.vin, r.last_seen DESC
    ON CONFLICT (vin) DO UPDATE SET
        account = EXCLUDED.account,
        brand = COALESCE(EXCLUDED.brand, v.brand),
        model = COALESCE(EXCLUDED.model, v.model),
        last_seen = GREATEST(v.last_seen, EXCLUDED.last_seen);
$$;

-- A reading dated by its arrival gives way to one dated by the car, even a slightly older one.
-- Returns how many state rows moved.
CREATE OR REPLACE FUNCTION upsert_vehicle_states(
    vins text[], tss timestamptz[], received timestamptz[], socs float8[], ranges float8[],
    latitudes float8[], longitudes float8[], speeds float8[], locks boolean[], chargings boolean[],
    availables boolean[], states jsonb[], from_arrival boolean[]
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    moved integer;
BEGIN
    INSERT INTO vehicle_state AS s
        (vin, ts, received_at, soc, range_km, latitude, longitude, speed_kmh, locked, charging, available,
         state, ts_from_arrival)
    SELECT DISTINCT ON (r.vin)
        r.vin, r.ts, r.received_at, r.soc, r.range_km, r.latitude, r.longitude, r.speed_kmh, r.locked,
        r.charging, r.available, COALESCE(r.state, '{}'::jsonb), COALESCE(r.ts_from_arrival, false)
    FROM unnest(vins, tss, received, socs, ranges, latitudes, longitudes, speeds, locks, chargings, availables,
                states, from_arrival)
        AS r(vin, ts, received_at, soc, range_km, latitude, longitude, speed_kmh, locked, charging, available,
             state, ts_from_arrival)
    ORDER BY r.vin, COALESCE(r.ts_from_arrival, false), r.ts DESC
    ON CONFLICT (vin) DO UPDATE SET
        ts = EXCLUDED.ts,
        ts_from_arrival = EXCLUDED.ts_from_arrival,
        received_at = EXCLUDED.received_at,
        soc = COALESCE(EXCLUDED.soc, s.soc),
        range_km = COALESCE(EXCLUDED.range_km, s.range_km),
        latitude = COALESCE(EXCLUDED.latitude, s.latitude),
        longitude = COALESCE(EXCLUDED.longitude, s.longitude),
        speed_kmh = COALESCE(EXCLUDED.speed_kmh, s.speed_kmh),
        locked = COALESCE(EXCLUDED.locked, s.locked),
        charging = COALESCE(EXCLUDED.charging, s.charging),
        available = COALESCE(EXCLUDED.available, s.available),
        state = s.state || EXCLUDED.state
    WHERE s.ts <= EXCLUDED.ts OR (s.ts_from_arrival AND NOT EXCLUDED.ts_from_arrival);
    GET DIAGNOSTICS moved = ROW_COUNT;
    RETURN moved;
END
$$;

CREATE OR REPLACE FUNCTION ingest_vehicle_states(vehicle_rows jsonb, state_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM upsert_vehicles(array_agg(r.vin), array_agg(r.account), array_agg(r.brand), array_agg(r.model),
                            array_agg(r.last_seen))
    FROM jsonb_to_recordset(vehicle_rows)
        AS r(vin text, account text, brand text, model text, last_seen timestamptz);
    RETURN (
        SELECT upsert_vehicle_states(
            array_agg(r.vin), array_agg(r.ts), array_agg(r.received_at), array_agg(r.soc), array_agg(r.range_km),
            array_agg(r.latitude), array_agg(r.longitude), array_agg(r.speed_kmh), array_agg(r.locked),
            array_agg(r.charging), array_agg(r.available), array_agg(r.state), array_agg(r.ts_from_arrival))
        FROM jsonb_to_recordset(state_rows)
            AS r(vin text, ts timestamptz, received_at timestamptz, soc float8, range_km float8, latitude float8,
                 longitude float8, speed_kmh float8, locked boolean, charging boolean, available boolean,
                 state jsonb, ts_from_arrival boolean)
    );
END
$$;

-- As 0005 for the JSON entry point: only the service role (the ingest) may write through these.
REVOKE EXECUTE ON FUNCTION upsert_vehicles(text[], text[], text[], text[], timestamptz[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION upsert_vehicle_states(
    text[], timestamptz[], timestamptz[], float8[], float8[], float8[], float8[], float8[], boolean[], boolean[],
    boolean[], jsonb[], boolean[]
) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION upsert_vehicles(text[], text[], text[], text[], timestamptz[]) TO service_role;
        GRANT EXECUTE ON FUNCTION upsert_vehicle_states(
            text[], timestamptz[], timestamptz[], float8[], float8[], float8[], float8[], float8[], boolean[],
            boolean[], boolean[], jsonb[], boolean[]
        ) TO service_role;
    END IF;
END
$$;
