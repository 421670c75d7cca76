-- The KPI facts split net money into rental, extras and pass-through money (the APA):
-- the shares of extras and pass-through, net of refunds (projections/kpis.py).
ALTER TABLE kpi_daily
    ADD COLUMN extras       bigint NOT NULL DEFAULT 0,
    ADD COLUMN pass_through bigint NOT NULL DEFAULT 0;
ALTER TABLE kpi_daily_totals
    ADD COLUMN extras       bigint NOT NULL DEFAULT 0,
    ADD COLUMN pass_through bigint NOT NULL DEFAULT 0;
