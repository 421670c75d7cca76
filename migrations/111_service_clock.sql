-- The service's clock outside production: real time plus this offset, which admins move
-- forward (POST /api/v1/admin/clock) so that holds expire, reminders go out and deposits
-- are re-authorised without waiting. One row; every process reads it at start-up and
-- again when a change is announced on the `clock` channel.
CREATE TABLE service_clock (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    offset_us bigint NOT NULL DEFAULT 0 CHECK (offset_us >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO service_clock DEFAULT VALUES;
