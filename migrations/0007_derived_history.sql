-- Drives, charging sessions and parked periods, derived by the ingest from vehicle_telemetry as it
-- stores it (ingest/periods.py has the rules, docs/derived-history.md explains them). Each period is
-- keyed by (vin, start_ts): a re-derivation updates the same row, so replays never double one.

-- What the rules need from every reading, carried forward like SoC and position.
ALTER TABLE vehicle_telemetry ADD COLUMN IF NOT EXISTS odometer_km double precision;
ALTER TABLE vehicle_telemetry ADD COLUMN IF NOT EXISTS power_kw double precision;
ALTER TABLE vehicle_telemetry ADD COLUMN IF NOT EXISTS running boolean;
ALTER TABLE vehicle_telemetry ADD COLUMN IF NOT EXISTS interior_temp_c double precision;
ALTER TABLE vehicle_telemetry ADD COLUMN IF NOT EXISTS exterior_temp_c double precision;

CREATE TABLE IF NOT EXISTS drives (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vin                  text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
    start_ts             timestamptz NOT NULL,
    end_ts               timestamptz NOT NULL,
    in_progress          boolean NOT NULL DEFAULT false,
    start_latitude       double precision,
    start_longitude      double precision,
    end_latitude         double precision,
    end_longitude        double precision,
    start_odometer_km    double precision,
    end_odometer_km      double precision,
    distance_km          double precision,
    duration_s           double precision NOT NULL,
    start_soc            double precision,
    end_soc              double precision,
    energy_used_kwh      double precision,
    efficiency_wh_per_km double precision,
    avg_speed_kmh        double precision,
    max_speed_kmh        double precision,
    readings             integer NOT NULL,
    UNIQUE (vin, start_ts)
);

CREATE TABLE IF NOT EXISTS charges (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vin               text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
    start_ts          timestamptz NOT NULL,
    end_ts            timestamptz NOT NULL,
    in_progress       boolean NOT NULL DEFAULT false,
    duration_s        double precision NOT NULL,
    start_soc         double precision,
    end_soc           double precision,
    energy_added_kwh  double precision,
    energy_source     text CHECK (energy_source IN ('power', 'soc', 'power+soc')),
    avg_power_kw      double precision,
    peak_power_kw     double precision,
    charger_type      text CHECK (charger_type IN ('AC', 'DC')),
    latitude          double precision,
    longitude         double precision,
    cost              double precision,
    currency          text,
    readings          integer NOT NULL,
    UNIQUE (vin, start_ts)
);

CREATE TABLE IF NOT EXISTS parks (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vin                text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
    start_ts           timestamptz NOT NULL,
    end_ts             timestamptz NOT NULL,
    in_progress        boolean NOT NULL DEFAULT false,
    duration_s         double precision NOT NULL,
    start_soc          double precision,
    end_soc            double precision,
    soc_lost           double precision,
    drain_per_hour     double precision,
    latitude           double precision,
    longitude          double precision,
    readings           integer NOT NULL,
    UNIQUE (vin, start_ts)
);

-- Where the ingest's derivation stands for each vehicle: the open period and the last reading,
-- so that a restart goes on with a drive or a charge instead of splitting it.
CREATE TABLE IF NOT EXISTS vehicle_derivation (
    vin         text PRIMARY KEY REFERENCES vehicles (vin) ON DELETE CASCADE,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE drives ENABLE ROW LEVEL SECURITY;
ALTER TABLE charges ENABLE ROW LEVEL SECURITY;
ALTER TABLE parks ENABLE ROW LEVEL SECURITY;
ALTER TABLE vehicle_derivation ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON drives, charges, parks, vehicle_derivation TO service_role;
    END IF;

    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
       AND to_regprocedure('auth.uid()') IS NOT NULL THEN
        GRANT SELECT ON drives, charges, parks TO authenticated;
        CREATE POLICY drives_granted ON drives FOR SELECT TO authenticated
            USING (vin IN (SELECT uv.vin FROM user_vehicles uv WHERE uv.user_id = (SELECT auth.uid())));
        CREATE POLICY charges_granted ON charges FOR SELECT TO authenticated
            USING (vin IN (SELECT uv.vin FROM user_vehicles uv WHERE uv.user_id = (SELECT auth.uid())));
        CREATE POLICY parks_granted ON parks FOR SELECT TO authenticated
            USING (vin IN (SELECT uv.vin FROM user_vehicles uv WHERE uv.user_id = (SELECT auth.uid())));
    END IF;
END
$$;
