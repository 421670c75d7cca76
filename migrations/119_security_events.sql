-- Security events (failed sign-ins, lockouts, refresh-token reuse, permission refusals,
-- webhook signature failures, erasures): append-only. A trigger refuses every UPDATE,
-- DELETE and TRUNCATE, so a record, once written, stays as written. No secrets: an email
-- that matches no account is kept only as a keyed hash (subject), never in clear.
CREATE TABLE security_events (
    id          bigserial   PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    kind        text        NOT NULL,
    account_id  uuid,        -- the account concerned, when known
    subject     text,        -- else a keyed hash of what was presented (an email)
    actor       text,        -- who acted (an account id, "anonymous", a provider)
    client_ip   text,
    route       text,
    request_id  text,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX security_events_at ON security_events (occurred_at);
CREATE INDEX security_events_kind ON security_events (kind, id);
CREATE INDEX security_events_account ON security_events (account_id, id)
    WHERE account_id IS NOT NULL;

CREATE FUNCTION security_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'security_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER security_events_no_change
    BEFORE UPDATE OR DELETE ON security_events
    FOR EACH ROW EXECUTE FUNCTION security_events_append_only();
CREATE TRIGGER security_events_no_truncate
    BEFORE TRUNCATE ON security_events
    FOR EACH STATEMENT EXECUTE FUNCTION security_events_append_only();
