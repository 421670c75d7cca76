-- Write-side state of accounts that must never be in events (hashes, sessions, counters).
-- Rows change only in the append transaction of the account's events (Statement),
-- except the login counters and tokens, which are security state, not domain state.
CREATE TABLE auth_accounts (
    account_id     uuid        PRIMARY KEY,
    email          text        NOT NULL,
    role           text        NOT NULL,
    active         boolean     NOT NULL DEFAULT true,
    password_hash  text,
    google_subject text        UNIQUE,
    failed_logins  integer     NOT NULL DEFAULT 0,
    lockouts       integer     NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX auth_accounts_email ON auth_accounts (lower(email));

-- Opaque refresh tokens, stored as sha256; one family per sign-in, rotated on each use.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY,
    family_id  uuid        NOT NULL,
    account_id uuid        NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);

-- Access tokens revoked before their expiry (logout), by jti.
CREATE TABLE revoked_access_tokens (
    jti        text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- Shared fixed-window counters of the rate limiter (any key: login IP, payments...).
CREATE TABLE rate_limits (
    key          text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL
);

-- Read model of the accounts projection (staff lookups).
CREATE TABLE acc_accounts (
    id              uuid        PRIMARY KEY,
    email           text        NOT NULL,
    name            text        NOT NULL,
    phone           text,
    role            text        NOT NULL,
    status          text        NOT NULL,
    google_linked   boolean     NOT NULL DEFAULT false,
    consent_version text,
    consent_at      timestamptz,
    version         integer     NOT NULL,
    registered_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX acc_accounts_email ON acc_accounts (lower(email));
CREATE INDEX acc_accounts_role_status ON acc_accounts (role, status);
