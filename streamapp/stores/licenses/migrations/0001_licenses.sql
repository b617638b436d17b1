-- Customers as last seen; `effective_at` guards against out-of-order snapshots.
CREATE TABLE customers (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    account_manager   text NOT NULL,
    sales_engineer_id text,
    signed_tos        boolean NOT NULL,
    effective_at      timestamptz NOT NULL,
    source_event_id   uuid NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The current license per customer and SKU.
CREATE TABLE licenses (
    customer_id    text NOT NULL,
    sku            text NOT NULL,
    active         boolean NOT NULL,
    granted_at     timestamptz,
    revoked_at     timestamptz,
    effective_at   timestamptz NOT NULL,
    last_update_id uuid NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, sku)
);

-- Append-only history; `update_id` is derived from the source event, so a
-- redelivered update cannot add a second line.
CREATE TABLE license_history (
    update_id       uuid PRIMARY KEY,
    customer_id     text NOT NULL,
    sku             text NOT NULL,
    action          text NOT NULL CHECK (action IN ('grant', 'revoke')),
    effective_at    timestamptz NOT NULL,
    source_event_id uuid NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX license_history_customer_idx ON license_history (customer_id, effective_at DESC, recorded_at DESC);
