"""Faust table declarations, one module per pipeline."""
