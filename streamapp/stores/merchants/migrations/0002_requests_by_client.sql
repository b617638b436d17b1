-- GET /clients/{client_id}/requests pages a client's requests newest first (keyset).
CREATE INDEX merchant_requests_client_created_idx
    ON merchant_requests (client_id, created_at DESC, request_id DESC);
