-- Events an operator told one projection to pass over (`midas projections skip`): the
-- repair of a log holding an event a projector cannot apply, without editing the log
-- (its hash chain stays verifiable). Append-only: who, when and why, for the audit.
CREATE TABLE projection_skips (
    name        text        NOT NULL,
    position    bigint      NOT NULL,
    reason      text        NOT NULL,
    skipped_by  text        NOT NULL,
    skipped_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, position)
);
