-- One row per accepted assistance request, keyed by its id (redeliveries add nothing).
-- Where it went and how each delivery fared is in `deliveries` (subject_id = request_id).
CREATE TABLE assistance_requests (
    request_id       uuid PRIMARY KEY,
    topic            text NOT NULL,
    topic_as_sent    text NOT NULL,
    description      text NOT NULL,
    customer         jsonb,
    conversation_url text,
    language         text,
    channels         text[] NOT NULL,
    routing_version  text NOT NULL,
    received_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assistance_requests_received_idx ON assistance_requests (received_at);
