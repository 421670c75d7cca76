-- The access cache (midas.security.access) also keeps whether an account's email is
-- verified (holding a booking needs it), so a change of it is announced like role and
-- active.
DROP TRIGGER auth_accounts_access_changed ON auth_accounts;
CREATE TRIGGER auth_accounts_access_changed
    AFTER INSERT OR DELETE OR UPDATE OF role, active, email_verified ON auth_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access_change();
