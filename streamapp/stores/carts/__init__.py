"""Carts and items in PostgreSQL, and the outbox relay that publishes their events."""
