"""The deliveries pipeline's schema (migrations/); its statements are in outbound/store.py (core)."""
