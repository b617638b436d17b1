"""SQL migrations of the carts pipeline."""
