"""SQL migrations of the outbound delivery core."""
