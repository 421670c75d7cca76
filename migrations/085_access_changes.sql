-- Announce changes to what the auth middleware checks on each request (role, active,
-- revoked access tokens), so every process can cache those checks (midas.security.access).
CREATE FUNCTION announce_access_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_access', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_accounts_access_changed
    AFTER INSERT OR DELETE OR UPDATE OF role, active ON auth_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access_change();

CREATE TRIGGER revoked_access_tokens_changed
    AFTER INSERT ON revoked_access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access_change();
