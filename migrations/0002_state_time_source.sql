-- A state row dated by when its telemetry arrived (the publisher sent no refresh/lastVehicleState)
-- must give way to the first reading dated by the car itself, even one a little older than the
-- arrival time; otherwise that reading would be refused as stale.
ALTER TABLE vehicle_state ADD COLUMN IF NOT EXISTS ts_from_arrival boolean NOT NULL DEFAULT false;
