-- A booking's APA statement once settled (projections/bookings.py): collected, spent,
-- refund, top_up owed and top_up_paid.
ALTER TABLE bk_bookings ADD COLUMN apa jsonb;
