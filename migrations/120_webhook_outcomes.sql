-- What became of each provider notification (Stripe webhooks, PayPal IPN), counted per
-- provider and outcome: the business series midas_webhook_outcomes_total in /metrics,
-- the same whichever process received the notification.
CREATE TABLE ops_webhook_outcomes (
    provider text   NOT NULL,
    outcome  text   NOT NULL,
    count    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, outcome)
);
