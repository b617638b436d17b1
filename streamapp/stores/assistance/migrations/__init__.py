"""SQL migrations of the assistance pipeline."""
