-- Vehicles, their latest state, telemetry history, the command audit trail and user access.

CREATE TABLE IF NOT EXISTS vehicles (
    vin         text PRIMARY KEY CHECK (length(vin) BETWEEN 1 AND 64),
    account     text NOT NULL,
    brand       text,
    model       text,
    name        text,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);

-- One row per vehicle: the latest merged state. `ts` is the reading's own time (the car's status
-- time); only a newer reading moves the row.
CREATE TABLE IF NOT EXISTS vehicle_state (
    vin          text PRIMARY KEY REFERENCES vehicles (vin) ON DELETE CASCADE,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    soc          double precision,
    range_km     double precision,
    latitude     double precision,
    longitude    double precision,
    speed_kmh    double precision,
    locked       boolean,
    charging     boolean,
    available    boolean,
    state        jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- History, written only when a reading carries SoC or location (the seed's rule). The primary
-- key makes a replayed reading a no-op.
CREATE TABLE IF NOT EXISTS vehicle_telemetry (
    vin        text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
    ts         timestamptz NOT NULL,
    soc        double precision,
    range_km   double precision,
    latitude   double precision,
    longitude  double precision,
    speed_kmh  double precision,
    charging   boolean,
    payload    jsonb NOT NULL,
    PRIMARY KEY (vin, ts)
);

CREATE TABLE IF NOT EXISTS commands (
    id            uuid PRIMARY KEY,
    vin           text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
    command       text NOT NULL,
    args          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL CHECK (status IN ('queued', 'sent', 'succeeded', 'failed', 'rejected', 'expired')),
    error         text,
    requested_by  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX IF NOT EXISTS commands_vin_created_idx ON commands (vin, created_at DESC);

CREATE TABLE IF NOT EXISTS user_vehicles (
    user_id     uuid NOT NULL,
    vin         text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
    role        text NOT NULL DEFAULT 'owner',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, vin)
);
CREATE INDEX IF NOT EXISTS user_vehicles_vin_idx ON user_vehicles (vin);
