"""The batch runtime: every batching agent takes events, plans effects, and has them applied in one order."""
