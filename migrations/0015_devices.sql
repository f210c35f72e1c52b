-- Directly connected devices (sensors that speak MQTT themselves), each owned by an organization.
-- A device authenticates at the API's MQTT edge (`/mqtt`) with an HMAC of its secret; the secret is
-- a Fernet token under DEVICES_ENCRYPTION_KEY, which the database never sees. The broker then holds
-- the device to its own topics (mosquitto/acl).

CREATE TABLE IF NOT EXISTS devices (
    device_id text PRIMARY KEY CHECK (device_id ~ '^[0-9a-f]{32}$'),
    mac text NOT NULL UNIQUE CHECK (mac ~ '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$'),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text CHECK (length(name) BETWEEN 1 AND 200),
    secret_encrypted text NOT NULL,
    firmware_version text CHECK (length(firmware_version) <= 64),
    online boolean NOT NULL DEFAULT false,
    last_seen timestamptz,
    config_version integer NOT NULL DEFAULT 0,
    -- The newest timestamp a device signed its password with: an older or equal one is a replay.
    last_auth_ts bigint NOT NULL DEFAULT 0,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS devices_organization_idx ON devices (organization_id);

-- Versioned configuration: the newest 10 versions per device are kept. `status` follows the
-- device's acknowledgement on `config/status`.
CREATE TABLE IF NOT EXISTS device_configs (
    device_id text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    version integer NOT NULL CHECK (version >= 1),
    config jsonb NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'failed')),
    status_reason text,
    status_at timestamptz,
    PRIMARY KEY (device_id, version)
);

-- What devices report, one row per message (the ingest writes it through its write-ahead log).
CREATE TABLE IF NOT EXISTS device_telemetry (
    device_id text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    ts timestamptz NOT NULL,
    payload jsonb NOT NULL,
    PRIMARY KEY (device_id, ts)
);

-- Firmware images, by reference: the platform keeps the URL, the image's SHA-256 and the vendor's
-- ECDSA P-256 signature of it, verified on upload against FIRMWARE_SIGNING_PUBLIC_KEY.
CREATE TABLE IF NOT EXISTS firmware (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version text NOT NULL UNIQUE CHECK (length(version) BETWEEN 1 AND 64),
    url text NOT NULL CHECK (url ~ '^https?://'),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    signature text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A staged rollout of one firmware to an organization's devices: `stages` are cumulative percentages
-- of its devices; the rollout widens to the next stage once every device triggered so far has
-- answered, and pauses itself when the share that failed passes `failure_threshold`.
CREATE TABLE IF NOT EXISTS rollouts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    firmware_id bigint NOT NULL REFERENCES firmware (id),
    stages integer[] NOT NULL CHECK (cardinality(stages) BETWEEN 1 AND 20),
    stage integer NOT NULL DEFAULT 0,
    failure_threshold float8 NOT NULL DEFAULT 0.02 CHECK (failure_threshold BETWEEN 0 AND 1),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'aborted', 'completed')),
    status_reason text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rollout_devices (
    rollout_id bigint NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    device_id text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    stage integer NOT NULL,
    status text NOT NULL DEFAULT 'triggered'
        CHECK (status IN ('triggered', 'downloading', 'installing', 'succeeded', 'failed')),
    reason text,
    triggered_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rollout_id, device_id)
);

-- What the ingest writes at each flush (both sinks call it: asyncpg, and Supabase over RPC). Reports
-- of a device no longer enrolled are left out; a reading stored before (a write-ahead log replay)
-- is not doubled. Returns the telemetry rows added.
CREATE OR REPLACE FUNCTION ingest_device_reports(telemetry jsonb, statuses jsonb, configs jsonb, ota jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    added integer;
BEGIN
    INSERT INTO device_telemetry (device_id, ts, payload)
    SELECT r.device_id, r.ts, r.payload
    FROM jsonb_to_recordset(telemetry) AS r(device_id text, ts timestamptz, payload jsonb)
    WHERE EXISTS (SELECT 1 FROM devices d WHERE d.device_id = r.device_id)
    ON CONFLICT (device_id, ts) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;

    UPDATE devices d SET last_seen = GREATEST(d.last_seen, seen.at)
    FROM (
        SELECT r.device_id, max(r.ts) AS at
        FROM jsonb_to_recordset(telemetry) AS r(device_id text, ts timestamptz)
        GROUP BY r.device_id
    ) seen
    WHERE d.device_id = seen.device_id;

    -- The newest status of each device in the batch (batches are written in the order they arrived).
    UPDATE devices d SET online = s.online AND d.revoked_at IS NULL, last_seen = GREATEST(d.last_seen, s.at)
    FROM (
        SELECT DISTINCT ON (r.device_id) r.device_id, r.online, r.at
        FROM jsonb_to_recordset(statuses) AS r(device_id text, online boolean, at timestamptz)
        ORDER BY r.device_id, r.at DESC
    ) s
    WHERE d.device_id = s.device_id;

    UPDATE device_configs c SET status = r.status, status_reason = r.reason, status_at = r.at
    FROM jsonb_to_recordset(configs) AS r(device_id text, version integer, status text, reason text, at timestamptz)
    WHERE c.device_id = r.device_id AND c.version = r.version AND (c.status_at IS NULL OR c.status_at <= r.at);

    -- A rollout's progress on a device; an outcome (succeeded, failed) is final.
    UPDATE rollout_devices rd SET status = r.status, reason = r.reason, updated_at = r.at
    FROM jsonb_to_recordset(ota) AS r(device_id text, rollout_id bigint, status text, reason text, at timestamptz)
    WHERE rd.device_id = r.device_id AND rd.rollout_id = r.rollout_id
      AND rd.status NOT IN ('succeeded', 'failed') AND rd.updated_at <= r.at;
    UPDATE devices d SET firmware_version = f.version
    FROM jsonb_to_recordset(ota) AS r(device_id text, rollout_id bigint, status text)
    JOIN rollouts ro ON ro.id = r.rollout_id
    JOIN firmware f ON f.id = ro.firmware_id
    WHERE d.device_id = r.device_id AND r.status = 'succeeded';
    RETURN added;
END
$$;

REVOKE EXECUTE ON FUNCTION ingest_device_reports(jsonb, jsonb, jsonb, jsonb) FROM PUBLIC;

-- Only the programs (the tables' owner) and the service role: no policies.
ALTER TABLE devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_telemetry ENABLE ROW LEVEL SECURITY;
ALTER TABLE firmware ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollout_devices ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON devices, device_configs, device_telemetry, firmware, rollouts, rollout_devices TO service_role;
        GRANT EXECUTE ON FUNCTION ingest_device_reports(jsonb, jsonb, jsonb, jsonb) TO service_role;
    END IF;
END
$$;

-- A revoked or deleted device is cut off at once by whichever API replica holds its connection.
CREATE OR REPLACE FUNCTION notify_device_revoked() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('device_revoked', OLD.device_id);
    ELSIF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        PERFORM pg_notify('device_revoked', NEW.device_id);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS devices_revoked ON devices;
CREATE TRIGGER devices_revoked
    AFTER UPDATE OF revoked_at OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION notify_device_revoked();
