-- The latest-state rule in one place, for both sinks: asyncpg calls it inside its flush
-- transaction, the Supabase sink over PostgREST RPC (`POST /rest/v1/rpc/ingest_vehicle_states`),
-- because a PostgREST upsert cannot say "only a newer reading moves the row".
--
-- vehicle_rows: [{vin, account, brand, model, last_seen}], state_rows: [{vin, ts, received_at, soc,
-- range_km, latitude, longitude, speed_kmh, locked, charging, available, state, ts_from_arrival}].
-- Returns how many state rows moved.
CREATE OR REPLACE FUNCTION ingest_vehicle_states(vehicle_rows jsonb, state_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    moved integer;
BEGIN
    INSERT INTO vehicles AS v (vin, account, brand, model, last_seen)
    SELECT DISTINCT ON (r.vin) r.vin, r.account, r.brand, r.model, r.last_seen
    FROM jsonb_to_recordset(vehicle_rows)
        AS r(vin text, account text, brand text, model text, last_seen timestamptz)
    ORDER BY r.vin, r.last_seen DESC
    ON CONFLICT (vin) DO UPDATE SET
        account = EXCLUDED.account,
        brand = COALESCE(EXCLUDED.brand, v.brand),
        model = COALESCE(EXCLUDED.model, v.model),
        last_seen = GREATEST(v.last_seen, EXCLUDED.last_seen);

    -- A reading dated by its arrival gives way to one dated by the car, even a slightly older one.
    INSERT INTO vehicle_state AS s
        (vin, ts, received_at, soc, range_km, latitude, longitude, speed_kmh, locked, charging, available,
         state, ts_from_arrival)
    SELECT DISTINCT ON (r.vin)
        r.vin, r.ts, r.received_at, r.soc, r.range_km, r.latitude, r.longitude, r.speed_kmh, r.locked,
        r.charging, r.available, COALESCE(r.state, '{}'::jsonb), COALESCE(r.ts_from_arrival, false)
    FROM jsonb_to_recordset(state_rows)
        AS r(vin text, ts timestamptz, received_at timestamptz, soc float8, range_km float8, latitude float8,
             longitude float8, speed_kmh float8, locked boolean, charging boolean, available boolean,
             state jsonb, ts_from_arrival boolean)
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
