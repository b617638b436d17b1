"""Pydantic models and the pure logic on them, one module per pipeline."""
