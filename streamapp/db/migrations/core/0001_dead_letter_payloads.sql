-- The original bytes of dead letters too large for the dead-letter topic. The topic
-- record keeps everything else and names the row here (`payload_ref`).
CREATE TABLE IF NOT EXISTS dead_letter_payloads (
    dead_letter_id uuid PRIMARY KEY,
    key            bytea,
    value          bytea NOT NULL,
    stored_at      timestamptz NOT NULL DEFAULT now()
);
