"""SQL migrations of the merchants pipeline."""
