CREATE TABLE merchant_clients (
    client_id    text PRIMARY KEY,
    api_key_hash text NOT NULL,
    url          text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per accepted request; `status` moves pending -> done | failed exactly once.
CREATE TABLE merchant_requests (
    request_id      uuid PRIMARY KEY,
    client_id       text NOT NULL,
    idempotency_key text,
    transaction     jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    merchant_name   text,
    cache_hit       boolean,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (client_id, idempotency_key)
);
