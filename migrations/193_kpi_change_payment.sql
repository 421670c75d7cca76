-- A change awaiting its payment (projections/kpis.py): the PaymentIntent that pays it and
-- the item, category and location it moves to, so that payment counts for them.
ALTER TABLE kpi_bookings ADD COLUMN change_reference text, ADD COLUMN change_dims jsonb;
