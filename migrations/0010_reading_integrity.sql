-- A reading's values that arrive after its history row was written complete that row (issue 13):
-- upstream publishes `refresh/lastVehicleState` at once and `drivetrain/soc` seconds later, and a
-- flush in between wrote the row without SoC. A later value wins over none, never over a value with
-- none; the payload is merged. A row that already holds everything a retry carries is left alone.

CREATE OR REPLACE FUNCTION upsert_telemetry(
    vins text[], tss timestamptz[], socs float8[], ranges float8[], latitudes float8[], longitudes float8[],
    speeds float8[], chargings boolean[], odometers float8[], powers float8[], runnings boolean[],
    interiors float8[], exteriors float8[], payloads jsonb[]
)
RETURNS TABLE (vin text, ts timestamptz, inserted boolean)
LANGUAGE sql
SET search_path = public, pg_temp
AS $$
    INSERT INTO vehicle_telemetry AS t (vin, ts, soc, range_km, latitude, longitude, speed_kmh, charging,
                                        odometer_km, power_kw, running, interior_temp_c, exterior_temp_c, payload)
    SELECT * FROM unnest(vins, tss, socs, ranges, latitudes, longitudes, speeds, chargings, odometers, powers,
                         runnings, interiors, exteriors, payloads)
    ON CONFLICT (vin, ts) DO UPDATE SET
        soc = COALESCE(EXCLUDED.soc, t.soc),
        range_km = COALESCE(EXCLUDED.range_km, t.range_km),
        latitude = COALESCE(EXCLUDED.latitude, t.latitude),
        longitude = COALESCE(EXCLUDED.longitude, t.longitude),
        speed_kmh = COALESCE(EXCLUDED.speed_kmh, t.speed_kmh),
        charging = COALESCE(EXCLUDED.charging, t.charging),
        odometer_km = COALESCE(EXCLUDED.odometer_km, t.odometer_km),
        power_kw = COALESCE(EXCLUDED.power_kw, t.power_kw),
        running = COALESCE(EXCLUDED.running, t.running),
        interior_temp_c = COALESCE(EXCLUDED.interior_temp_c, t.interior_temp_c),
        exterior_temp_c = COALESCE(EXCLUDED.exterior_temp_c, t.exterior_temp_c),
        payload = t.payload || EXCLUDED.payload
    WHERE NOT t.payload @> EXCLUDED.payload
    RETURNING t.vin, t.ts, t.xmax = 0
$$;

-- Supabase's REST entry point (the service role sends JSON, not arrays): rows written or completed.
CREATE OR REPLACE FUNCTION ingest_telemetry(telemetry_rows jsonb)
RETURNS integer
LANGUAGE sql
SET search_path = public, pg_temp
AS $$
    SELECT count(*)::integer
    FROM (
        SELECT array_agg(r.vin) AS vins, array_agg(r.ts) AS tss, array_agg(r.soc) AS socs,
               array_agg(r.range_km) AS ranges, array_agg(r.latitude) AS latitudes,
               array_agg(r.longitude) AS longitudes, array_agg(r.speed_kmh) AS speeds,
               array_agg(r.charging) AS chargings, array_agg(r.odometer_km) AS odometers,
               array_agg(r.power_kw) AS powers, array_agg(r.running) AS runnings,
               array_agg(r.interior_temp_c) AS interiors, array_agg(r.exterior_temp_c) AS exteriors,
               array_agg(r.payload) AS payloads
        FROM jsonb_to_recordset(telemetry_rows)
            AS r(vin text, ts timestamptz, soc float8, range_km float8, latitude float8, longitude float8,
                 speed_kmh float8, charging boolean, odometer_km float8, power_kw float8, running boolean,
                 interior_temp_c float8, exterior_temp_c float8, payload jsonb)
    ) AS a,
    LATERAL upsert_telemetry(a.vins, a.tss, a.socs, a.ranges, a.latitudes, a.longitudes, a.speeds, a.chargings,
                             a.odometers, a.powers, a.runnings, a.interiors, a.exteriors, a.payloads)
$$;

-- What the ingest already stored, read when it starts: a retained value the broker re-sends that
-- equals it is no new reading (it would add a phantom history row). One page of vehicles by VIN.
CREATE OR REPLACE FUNCTION stored_vehicle_states(after_vin text, page_size integer)
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = public, pg_temp
AS $$
    SELECT COALESCE(jsonb_agg(jsonb_build_object('vin', p.vin, 'account', p.account, 'ts', p.ts, 'state', p.state)
                              ORDER BY p.vin), '[]'::jsonb)
    FROM (
        SELECT s.vin, v.account, s.ts, s.state
        FROM vehicle_state s JOIN vehicles v USING (vin)
        WHERE s.vin > after_vin
        ORDER BY s.vin
        LIMIT page_size
    ) AS p
$$;

REVOKE EXECUTE ON FUNCTION upsert_telemetry(
    text[], timestamptz[], float8[], float8[], float8[], float8[], float8[], boolean[], float8[], float8[],
    boolean[], float8[], float8[], jsonb[]
) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ingest_telemetry(jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION stored_vehicle_states(text, integer) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION upsert_telemetry(
            text[], timestamptz[], float8[], float8[], float8[], float8[], float8[], boolean[], float8[], float8[],
            boolean[], float8[], float8[], jsonb[]
        ) TO service_role;
        GRANT EXECUTE ON FUNCTION ingest_telemetry(jsonb) TO service_role;
        GRANT EXECUTE ON FUNCTION stored_vehicle_states(text, integer) TO service_role;
    END IF;
END
$$;
