"""SQL migrations of the tasks pipeline."""
