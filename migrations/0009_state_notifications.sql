-- Every statement that changes a vehicle or its latest state tells the listeners on
-- `vehicle_state_changed` (the command API's in-memory reads, command_api/state_cache.py).
-- PostgreSQL delivers a notification only when its transaction commits, and folds identical ones
-- of one transaction into one: a flush sends one, however many vehicles it moved.

CREATE OR REPLACE FUNCTION notify_vehicle_state_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('vehicle_state_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER vehicles_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vehicles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_vehicle_state_changed();

CREATE TRIGGER vehicle_state_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vehicle_state
    FOR EACH STATEMENT EXECUTE FUNCTION notify_vehicle_state_changed();
