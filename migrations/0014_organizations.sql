-- Organizations (tenants) own SAIC accounts and, through them, cars. A user belongs to any number
-- of them as `owner` (manages its accounts and members), `operator` (sends commands) or `viewer`
-- (reads). What a user may do with a car is `vehicle_access`: their own grants (`user_vehicles`),
-- the cars of the accounts they linked and their organizations' cars, the strongest role winning. The API and the RLS policies below
-- both read it, so a frontend that reads Supabase directly sees exactly what the API allows.

CREATE TABLE IF NOT EXISTS organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS memberships (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    role text NOT NULL CHECK (role IN ('owner', 'operator', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user_idx ON memberships (user_id);

ALTER TABLE accounts ADD COLUMN IF NOT EXISTS organization_id uuid REFERENCES organizations (id) ON DELETE SET NULL;

-- `since` and `until`: the readings the user may see (NULL: unbounded, for a car granted to them
-- directly); through an organization, while the car was its account's. `current`: the car is the
-- user's now (its latest state, live stream and commands); a sold car stays readable for its past,
-- as a viewer.
CREATE OR REPLACE VIEW vehicle_access AS
SELECT user_id, vin,
       max(rank) AS rank, (ARRAY['viewer', 'operator', 'owner'])[max(rank)] AS role,
       CASE WHEN bool_or(since IS NULL) THEN NULL ELSE min(since) END AS since,
       CASE WHEN bool_or(until IS NULL) THEN NULL ELSE max(until) END AS until,
       bool_or(until IS NULL) AS current
FROM (
    SELECT uv.user_id, uv.vin, CASE uv.role WHEN 'viewer' THEN 1 WHEN 'operator' THEN 2 ELSE 3 END AS rank,
           NULL::timestamptz AS since, NULL::timestamptz AS until
    FROM user_vehicles uv
    UNION ALL
    SELECT m.user_id, av.vin,
           CASE WHEN av.until IS NOT NULL THEN 1 WHEN m.role = 'viewer' THEN 1 WHEN m.role = 'operator' THEN 2 ELSE 3 END,
           av.since, av.until
    FROM memberships m
    JOIN accounts a ON a.organization_id = m.organization_id
    JOIN account_vehicles av ON av.account_id = a.id
    UNION ALL
    -- The user who linked an account owns its cars, in the same window as an organization would.
    SELECT a.linked_by, av.vin, CASE WHEN av.until IS NOT NULL THEN 1 ELSE 3 END, av.since, av.until
    FROM accounts a
    JOIN account_vehicles av ON av.account_id = a.id
    WHERE a.linked_by IS NOT NULL AND a.status <> 'rejected'
) grants
GROUP BY user_id, vin;

-- A change of membership, or of which cars an account has and who holds it, ends the live streams it
-- concerns, on migration 0012's channel: a member's changes through 0012's own function (their id),
-- an account's for everyone ('').
CREATE TRIGGER memberships_changed
    AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION notify_user_vehicles_changed();

CREATE OR REPLACE FUNCTION notify_everyones_access_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('user_vehicles_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER account_vehicles_changed
    AFTER INSERT OR UPDATE OR DELETE ON account_vehicles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_everyones_access_changed();
CREATE TRIGGER accounts_holder_changed
    AFTER UPDATE OF organization_id, linked_by, status OR DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_everyones_access_changed();

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    history record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, memberships TO service_role;
        GRANT SELECT ON vehicle_access TO service_role;
    END IF;

    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
       AND to_regprocedure('auth.uid()') IS NOT NULL THEN
        -- The caller's own cars only, each with the earliest time they may read of it: a definer's
        -- function, since the view itself would show everyone's grants to whoever may read it.
        EXECUTE $fn$
            CREATE OR REPLACE FUNCTION my_access()
            RETURNS TABLE (vin text, since timestamptz, until timestamptz, current boolean)
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
            AS 'SELECT vin, since, until, current FROM vehicle_access WHERE user_id = auth.uid()'
        $fn$;
        REVOKE EXECUTE ON FUNCTION my_access() FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION my_access() TO authenticated;
        GRANT SELECT ON organizations, memberships TO authenticated;
        CREATE POLICY memberships_own ON memberships FOR SELECT TO authenticated
            USING (user_id = (SELECT auth.uid()));
        CREATE POLICY organizations_member ON organizations FOR SELECT TO authenticated
            USING (id IN (SELECT m.organization_id FROM memberships m WHERE m.user_id = (SELECT auth.uid())));
        -- The cars' policies: a user's own grants and their organizations' cars, the history while
        -- the car was the organization's.
        DROP POLICY IF EXISTS vehicles_granted ON vehicles;
        CREATE POLICY vehicles_granted ON vehicles FOR SELECT TO authenticated
            USING (vin IN (SELECT a.vin FROM my_access() a));
        DROP POLICY IF EXISTS vehicle_state_granted ON vehicle_state;  -- the latest state: current cars only
        CREATE POLICY vehicle_state_granted ON vehicle_state FOR SELECT TO authenticated
            USING (vin IN (SELECT a.vin FROM my_access() a WHERE a.current));
        FOR history IN SELECT * FROM (VALUES
            ('vehicle_telemetry', 'ts'), ('commands', 'created_at'),
            ('drives', 'start_ts'), ('charges', 'start_ts'), ('parks', 'start_ts')
        ) AS tables (name, time_column) LOOP
            EXECUTE format('DROP POLICY IF EXISTS %I ON %I', history.name || '_granted', history.name);
            EXECUTE format(
                'CREATE POLICY %3$I ON %1$I FOR SELECT TO authenticated USING (EXISTS (SELECT 1 FROM my_access() a'
                ' WHERE a.vin = %1$I.vin AND (a.since IS NULL OR %1$I.%2$I >= a.since)'
                ' AND (a.until IS NULL OR %1$I.%2$I < a.until)))',
                history.name, history.time_column, history.name || '_granted'
            );
        END LOOP;
    END IF;
END
$$;
