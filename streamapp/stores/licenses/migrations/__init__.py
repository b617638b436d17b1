"""SQL migrations of the licenses pipeline."""
