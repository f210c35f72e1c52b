-- SAIC accounts managed at run time (gateway/accounts.py). The password is a Fernet token
-- (common/account_secrets.py) under ACCOUNTS_ENCRYPTION_KEY, which the database never sees. Which
-- gateway replica polls an account is decided by a session advisory lock, not by a column: it is
-- released the moment that replica's connection ends.

CREATE TABLE IF NOT EXISTS accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 320),
    region text NOT NULL DEFAULT 'eu' CHECK (region IN ('eu', 'au', 'tr', 'maxus-eu')),
    base_uri text CHECK (base_uri ~ '^https?://.+/$'),
    password_encrypted text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'rejected', 'failing')),
    -- pending: its login not tried yet; rejected: SAIC refused the first login (status_reason says
    -- why); failing: SAIC refuses a login that worked before (a password changed in the app).
    status_reason text,
    linked_by uuid,  -- the frontend user who linked it ("link my MG account"); NULL: an operator's
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The account's cars, as its first login listed them (the gateway writes them, with their
-- `vehicles` rows, before it marks the account active): what linking grants the user.
CREATE TABLE IF NOT EXISTS account_vehicles (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    vin text NOT NULL REFERENCES vehicles (vin) ON DELETE CASCADE,
    since timestamptz NOT NULL DEFAULT now(),
    until timestamptz,
    -- When the car was this account's (`until` NULL: it still is): its organization sees the car's
    -- history in that window only, and its current state and commands only while it lasts, so a
    -- car sold and linked again never shows one owner's readings to the other.
    PRIMARY KEY (account_id, vin)
);

-- Nobody but the programs (the tables' owner) and the service role reads them: no policies.
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE account_vehicles ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, account_vehicles TO service_role;
    END IF;
END
$$;
