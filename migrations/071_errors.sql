-- Error reports (server 500s and client apps) and the alerts they raise (issue 6).
CREATE TABLE err_reports (
    id              bigserial   PRIMARY KEY,
    occurred_at     timestamptz NOT NULL,
    source          text        NOT NULL,  -- server | client
    category        text        NOT NULL,
    severity        text        NOT NULL,
    message         text        NOT NULL,
    request_id      text,
    account_id      uuid,
    context         jsonb       NOT NULL DEFAULT '{}',  -- scrubbed of secrets
    amount_at_risk  bigint,
    currency        text
);
CREATE INDEX err_reports_category_time ON err_reports (category, occurred_at);
CREATE INDEX err_reports_time ON err_reports (occurred_at);

-- Alerts: one per category per window (key), each also an outbox row for the webhook.
CREATE TABLE err_alerts (
    id              bigserial   PRIMARY KEY,
    key             text        NOT NULL UNIQUE,
    category        text        NOT NULL,
    title           text        NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}',
    raised_at       timestamptz NOT NULL,
    webhook_status  text        NOT NULL DEFAULT 'pending',  -- pending, sent, failed, none
    webhook_attempts integer    NOT NULL DEFAULT 0,
    webhook_next_at timestamptz NOT NULL
);
CREATE INDEX err_alerts_category_time ON err_alerts (category, raised_at);
CREATE INDEX err_alerts_webhook ON err_alerts (webhook_next_at) WHERE webhook_status = 'pending';
