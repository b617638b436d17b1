"""Long-running services a pipeline owns (pools, schedulers, reloaders), one module per pipeline."""
