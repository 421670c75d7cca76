-- Email verification (docs/security.md, "Account linking and email verification").
-- Whether the sign-in email is proven, beside the other sign-in state; written by the
-- Statements of the account's events like email, role and active. Accounts from before
-- verification existed start unverified.
ALTER TABLE auth_accounts ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- Verification links sent by email. The token is never stored: only its sha256. The
-- address to prove (and, for a change, the address told about it) are personal data,
-- deleted by an erasure. Rows change only in the append transaction of the account's
-- events; the Account aggregate decides validity (single use, expiry), used_at and
-- revoked_at mirror it so that delivery skips a link that can no longer be used.
CREATE TABLE auth_email_verifications (
    id             uuid        PRIMARY KEY,
    account_id     uuid        NOT NULL,
    email          text        NOT NULL,
    previous_email text,
    token_hash     bytea       NOT NULL UNIQUE,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_email_verifications_account ON auth_email_verifications (account_id);

-- The accounts read model shows whether the email is verified and the address awaiting
-- proof, if any.
ALTER TABLE acc_accounts ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
ALTER TABLE acc_accounts ADD COLUMN pending_email text;
