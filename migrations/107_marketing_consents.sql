-- Marketing consent now, per account: the gate of every marketing email. Written only by
-- Statements in the append transaction of the account's consent events
-- (Account.MarketingConsentGiven / MarketingConsentWithdrawn), so it never disagrees with
-- the log and takes effect at once, whatever the projections' lag. No row: never given.
CREATE TABLE marketing_consents (
    account_id    uuid        PRIMARY KEY,
    version       text        NOT NULL,
    given_at      timestamptz NOT NULL,
    withdrawn_at  timestamptz,
    withdrawn_via text,
    CHECK ((withdrawn_at IS NULL) = (withdrawn_via IS NULL))
);
