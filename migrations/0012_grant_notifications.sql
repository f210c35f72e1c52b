-- A change to a user's grants tells the command API (`user_vehicles_changed`, with the user's id),
-- which ends that user's live streams: authorization is not a snapshot (issue 13). Delivered when
-- the transaction commits; a TRUNCATE concerns everyone (an empty id).

CREATE OR REPLACE FUNCTION notify_user_vehicles_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('user_vehicles_changed', '');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('user_vehicles_changed', OLD.user_id::text);
    ELSE
        PERFORM pg_notify('user_vehicles_changed', NEW.user_id::text);
        IF TG_OP = 'UPDATE' AND OLD.user_id <> NEW.user_id THEN
            PERFORM pg_notify('user_vehicles_changed', OLD.user_id::text);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_vehicles_changed
    AFTER INSERT OR UPDATE OR DELETE ON user_vehicles
    FOR EACH ROW EXECUTE FUNCTION notify_user_vehicles_changed();

CREATE TRIGGER user_vehicles_truncated
    AFTER TRUNCATE ON user_vehicles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_user_vehicles_changed();
