"""The merchants pipeline's settings: the heuristic pool, the caches, per-client limits."""

from __future__ import annotations

import os

from pydantic import Field

from streamapp.settings import Settings


class MerchantsSettings(Settings):
    """The merchants pipeline's settings: the heuristic pool, the caches, per-client limits.

    Read from the same `STREAMAPP_*` sources as the core settings; a pipeline gets
    its instance with `app.settings.of(MerchantsSettings)`.
    """

    # Merchant normalization.
    merchant_heuristic_repeat: int = Field(default=20_000_000, ge=1)
    merchant_pool_size: int = Field(default=0, ge=0)  # 0: one process per CPU
    merchant_cache_ttl: float = Field(default=86_400.0, gt=0)
    # Per client and per process (worker or ingest): requests a second, and the burst.
    merchant_client_rate: float = Field(default=50.0, gt=0)
    merchant_client_burst: int = Field(default=100, ge=1)
    # How long an unknown client-id is remembered as unknown (no PostgreSQL query), s.
    merchant_unknown_client_ttl: float = Field(default=5.0, ge=0)

    @property
    def merchant_processes(self) -> int:
        return self.merchant_pool_size or os.cpu_count() or 1
