-- Refresh reuse grace (midas.security.sessions): a refresh token is refused when any token
-- of its family is revoked, which this index answers without reading the whole family.
CREATE INDEX refresh_tokens_revoked_family ON refresh_tokens (family_id)
    WHERE revoked_at IS NOT NULL;
