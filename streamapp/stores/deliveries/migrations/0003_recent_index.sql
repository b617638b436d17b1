-- The dashboard lists the newest deliveries first (GET /deliveries). created_at never
-- changes after the insert, so this index does not stop the frequent status updates
-- from being HOT updates.
CREATE INDEX deliveries_created_idx ON deliveries (created_at DESC);
