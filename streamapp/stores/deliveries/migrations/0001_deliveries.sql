-- Where deliveries go: one row per endpoint (a client's webhook, a channel).
CREATE TABLE delivery_endpoints (
    endpoint_id     text PRIMARY KEY,
    url             text NOT NULL,
    secret          text NOT NULL,
    disabled_at     timestamptz,
    disabled_reason text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per delivery; the scheduler claims due rows with FOR UPDATE SKIP LOCKED,
-- so several workers share the work and a crashed worker's claims expire (lease).
CREATE TABLE deliveries (
    delivery_id     uuid PRIMARY KEY,
    pipeline        text NOT NULL,
    subject_id      text NOT NULL,
    owner           text NOT NULL,
    endpoint_id     text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'delivering', 'succeeded', 'dead', 'disabled')),
    attempts        integer NOT NULL DEFAULT 0,
    round_attempts  integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    request         bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status IN ('pending', 'delivering');
CREATE INDEX deliveries_subject_idx ON deliveries (subject_id);

CREATE TABLE delivery_attempts (
    delivery_id  uuid NOT NULL REFERENCES deliveries (delivery_id),
    attempt      integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    url          text NOT NULL,
    status_code  integer,
    latency_ms   double precision NOT NULL,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);
