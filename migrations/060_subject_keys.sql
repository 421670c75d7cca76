-- GDPR crypto-shredding (issue 8 item 6): one AES-256-GCM key per data subject (an
-- account). Personal fields of its events are encrypted with it; erasure sets the key to
-- NULL and stamps erased_at (a tombstone), after which those fields read as "[erased]".
-- Written only by Statements in the append of the subject's events.
CREATE TABLE subject_keys (
    account_id uuid        PRIMARY KEY,
    key        bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
