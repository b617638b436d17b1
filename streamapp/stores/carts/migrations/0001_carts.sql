-- Carts over gRPC: PostgreSQL is the source of truth; cart_outbox carries every
-- cart change to the `carts.events` topic (written in the change's transaction).

CREATE TABLE items (
    uuid        uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(btrim(name)) > 0),
    description text NOT NULL DEFAULT '',
    -- numeric, not double: cart totals are exact sums.
    price       numeric NOT NULL CHECK (price >= 0 AND price <= 999999999999),
    created     timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz NOT NULL DEFAULT now()
);
-- List sorts by these, with uuid as the tie-breaker for stable pages.
CREATE INDEX items_name_idx ON items (name, uuid);
CREATE INDEX items_price_idx ON items (price, uuid);
CREATE INDEX items_created_idx ON items (created, uuid);
CREATE INDEX items_updated_idx ON items (updated, uuid);

CREATE TABLE carts (
    uuid      uuid PRIMARY KEY,
    user_uuid uuid NOT NULL,
    -- +1 on every change; carried by each event so consumers can order and dedupe.
    version   bigint NOT NULL DEFAULT 1,
    created   timestamptz NOT NULL DEFAULT now(),
    updated   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX carts_user_idx ON carts (user_uuid);

CREATE TABLE cart_entries (
    cart_uuid uuid NOT NULL REFERENCES carts (uuid) ON DELETE CASCADE,
    -- No cascade: deleting an item removes its entries explicitly, with cart events.
    item_uuid uuid NOT NULL REFERENCES items (uuid),
    quantity  integer NOT NULL CHECK (quantity > 0),
    added     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (cart_uuid, item_uuid)
);
CREATE INDEX cart_entries_item_idx ON cart_entries (item_uuid);

-- One address per cart. `uuid` is the client's (or ours when it sent none); the
-- key is the cart, so one client's uuid can never overwrite another cart's address.
CREATE TABLE cart_addresses (
    cart_uuid    uuid PRIMARY KEY REFERENCES carts (uuid) ON DELETE CASCADE,
    uuid         uuid NOT NULL,
    line1        text NOT NULL,
    line2        text NOT NULL DEFAULT '',
    line3        text NOT NULL DEFAULT '',
    city         text NOT NULL,
    province     text NOT NULL DEFAULT '',
    zip_code     text NOT NULL DEFAULT '',
    country_code text NOT NULL,
    other        text NOT NULL DEFAULT '',
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_outbox (
    -- Allocated after the cart row is locked, so one cart's rows are in commit order.
    id         bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    cart_uuid  uuid NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX cart_outbox_unsent_idx ON cart_outbox (id) WHERE sent_at IS NULL;
CREATE INDEX cart_outbox_sent_idx ON cart_outbox (sent_at) WHERE sent_at IS NOT NULL;
