"""The outbound delivery core: signed HTTP deliveries with durable retries, SSRF guard, history."""
