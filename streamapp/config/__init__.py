"""Each pipeline's own settings class (its `STREAMAPP_*` fields over the core's), one module per pipeline."""
