-- Idempotency-Key of the JSON webhook, bound to the record it first came with:
-- the same key with another record is refused (422) instead of silently dropped
-- downstream as a duplicate event id.
CREATE TABLE salesforce_idempotency_keys (
    idempotency_key text PRIMARY KEY,
    record_sha256   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
