-- Channel types: an endpoint is a channel type plus its settings (a webhook's URL and signing
-- secret, a Slack webhook URL, SMTP settings...). The settings hold secrets: never log them.
ALTER TABLE delivery_endpoints
    ADD COLUMN channel      text NOT NULL DEFAULT 'webhook',
    ADD COLUMN config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Rate limit: at least this many seconds between two sends (NULL: none).
    ADD COLUMN min_interval double precision CHECK (min_interval IS NULL OR min_interval > 0),
    -- Nothing is sent to the endpoint before this (next rate-limit slot, or a Retry-After).
    ADD COLUMN next_send_at timestamptz;

UPDATE delivery_endpoints SET config = jsonb_build_object('url', url, 'secret', secret);

ALTER TABLE delivery_endpoints
    DROP COLUMN url,
    DROP COLUMN secret,
    ALTER COLUMN channel DROP DEFAULT,
    ALTER COLUMN config DROP DEFAULT;

-- The human-readable rendering for channels that show text to people; a send slot
-- reserved under the endpoint's rate limit.
ALTER TABLE deliveries
    ADD COLUMN message jsonb,
    ADD COLUMN slot_at timestamptz;

-- An attempt's destination is not always a URL (e-mail), and a Slack URL is a secret:
-- the channel describes it.
ALTER TABLE delivery_attempts RENAME COLUMN url TO target;
