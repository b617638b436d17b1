"""HTTP views: the core ones (health, readiness, tables) and each pipeline's."""
