"""The one settings object, read from `STREAMAPP_*` environment variables at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob streamapp has. Built once by the entry point and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMAPP_", frozen=True, extra="ignore", env_file_encoding="utf-8"
    )

    env: Literal["dev", "test", "prod"] = "dev"
    app_id: str = "streamapp"
    data_dir: Path = Path(".streamapp")

    # Where the real parts are. Unset means "use the embedded ones" (dev, services).
    broker_url: str | None = None
    database_url: SecretStr | None = None

    # Kafka / Faust.
    topic_partitions: int = Field(default=4, ge=1, le=256)
    topic_replication: int = Field(default=1, ge=1)
    # Tansu answers JoinGroup only after session_timeout/2: keep this small.
    broker_session_timeout: float = Field(default=6.0, gt=0)
    broker_heartbeat_interval: float = Field(default=1.0, gt=0)
    broker_commit_interval: float = Field(default=1.0, gt=0)
    producer_linger_ms: int = Field(default=5, ge=0)
    # Table state: `rocksdb://` keeps it on disk under `<data_dir>/state` (it survives a
    # restart of the worker and of the memory-only embedded broker); `memory://` rebuilds
    # every table from its changelog at each start.
    table_store: str = "rocksdb://"
    # Offsets Faust skipped around a rebalance are redelivered once a gap has
    # stayed unchanged this long (streamapp/gaps.py), checked every interval, s.
    gap_check_interval: float = Field(default=2.0, gt=0)
    gap_patience: float = Field(default=6.0, ge=0)

    # `streamapp dev` on Ctrl-C: how long the workers may work off what the topics
    # hold before the (memory-only) embedded broker stops, s.
    drain_timeout: float = Field(default=30.0, ge=0)

    # Web.
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    # The ingest tier (`streamapp ingest`): processes that only turn webhooks into
    # events, on their own port (shared by all of them, SO_REUSEPORT), so ingest
    # keeps its own CPU when the agents are busy. `streamapp dev` starts this many.
    ingest_port: int = Field(default=6067, ge=0, le=65535)
    # Two: one per core of a small host. A single process saturates its event loop
    # near 3,000 req/s and then spends more CPU per request, not less (bench/licenses.py).
    ingest_processes: int = Field(default=2, ge=0, le=64)
    # Added to a worker's nice value at start (with SCHED_BATCH): webhooks are
    # answered first and the agents work off the backlog with the CPU left (the
    # topics hold it durably). Matters only against other processes on the same
    # host; 0 leaves the worker's priority alone.
    worker_nice: int = Field(default=10, ge=0, le=19)
    max_body_bytes: int = Field(default=1 * MiB, ge=1024)
    # Ingest waits this long for the broker's acknowledgement before a 503.
    ingest_ack_timeout: float = Field(default=10.0, gt=0)

    # Salesforce webhook.
    salesforce_secret: SecretStr | None = None
    salesforce_org_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Admin token for privileged endpoints (e.g. creating API clients); open when unset in dev.
    admin_token: SecretStr | None = None

    # Carts (gRPC).
    carts_grpc_host: str = "127.0.0.1"
    carts_grpc_port: int = Field(default=9111, ge=0, le=65535)
    carts_grpc_max_message_bytes: int = Field(default=1 * MiB, ge=1024)
    # How long in-flight calls may finish when the worker stops, s.
    carts_grpc_grace: float = Field(default=5.0, ge=0)
    # HS256 key of the shop front's bearer tokens. Unset: every call is UNAUTHENTICATED.
    carts_jwt_secret: SecretStr | None = None
    carts_jwt_audience: str | None = None
    carts_jwt_issuer: str | None = None
    carts_jwt_leeway: float = Field(default=30.0, ge=0)
    carts_max_quantity: int = Field(default=10_000, ge=1, le=1_000_000_000)
    carts_max_entries: int = Field(default=200, ge=1)
    carts_outbox_batch: int = Field(default=500, ge=1)
    # The relay is woken at once by local commits; this catches other workers' rows.
    carts_outbox_poll_interval: float = Field(default=0.2, gt=0)
    carts_outbox_retention: float = Field(default=86_400.0, gt=0)
    # OTLP/gRPC collector for traces, e.g. http://otel-collector:4317. Unset: no tracing.
    carts_otlp_endpoint: str | None = None

    @field_validator(
        "carts_jwt_secret", "carts_jwt_audience", "carts_jwt_issuer", "carts_otlp_endpoint", mode="before"
    )
    @classmethod
    def _carts_empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("carts_jwt_secret")
    @classmethod
    def _carts_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # RFC 7518 3.2: an HS256 key must be at least as long as the hash (32 bytes).
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("STREAMAPP_CARTS_JWT_SECRET must be at least 32 bytes")
        return value

    # Merchant normalization.
    merchant_heuristic_repeat: int = Field(default=20_000_000, ge=1)
    merchant_pool_size: int = Field(default=0, ge=0)  # 0: one process per CPU
    merchant_cache_ttl: float = Field(default=86_400.0, gt=0)

    # Outbound deliveries.
    delivery_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    delivery_timeout: float = Field(default=15.0, gt=0)
    delivery_max_response_bytes: int = Field(default=4096, ge=0)
    delivery_poll_interval: float = Field(default=0.5, gt=0)
    delivery_concurrency: int = Field(default=64, ge=1)
    delivery_per_endpoint: int = Field(default=4, ge=1)
    # Networks deliveries may reach although internal. Unset: loopback in dev, nothing otherwise.
    delivery_allow_networks: Annotated[list[str] | None, NoDecode] = None

    # Assistance.
    # The chat bot's bearer token. Unset: POST /assistance is open in dev, refused otherwise.
    assistance_bot_token: SecretStr | None = None
    # The routing table (TOML). Unset: the packaged default (sales -> Slack, pricing -> e-mail).
    assistance_routing_file: Path | None = None
    # TOML merged over the file's table, entry by entry; may carry secrets (Slack URLs).
    assistance_routes: SecretStr | None = None
    assistance_max_description: int = Field(default=8000, ge=1)

    @field_validator("assistance_bot_token", "assistance_routing_file", "assistance_routes", mode="before")
    @classmethod
    def _assistance_empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    # Tasks.
    tasks_secret: SecretStr | None = None
    # Reports cover aligned event-time intervals [start, start + interval).
    report_interval: float = Field(default=60.0, gt=0)
    # A late event amends its interval's report until end + grace (by the clock).
    report_grace: float = Field(default=300.0, ge=0)
    report_tick: float = Field(default=1.0, gt=0)
    report_dir: Path | None = None  # default: <data_dir>/reports

    # PostgreSQL.
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=8, ge=1)
    db_connect_timeout: float = Field(default=60.0, gt=0)

    # Sinks: batch size and the longest a partial batch waits.
    sink_batch_size: int = Field(default=2000, ge=1)
    sink_batch_within: float = Field(default=0.25, gt=0)
    # Retry of transient infrastructure errors: exponential backoff with a cap.
    retry_initial_backoff: float = Field(default=0.2, gt=0)
    retry_max_backoff: float = Field(default=30.0, gt=0)

    # Embedded parts (used only when the URLs above are unset).
    embedded_broker_host: str = "127.0.0.1"
    embedded_broker_port: int = Field(default=19092, ge=1, le=65535)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"

    @field_validator("salesforce_secret", "admin_token", "database_url", "tasks_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `FOO=` in an env file means "not set", not "the empty secret".
        return None if value == "" else value

    @field_validator(
        "salesforce_org_allowlist", "delivery_schedule", "delivery_allow_networks", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def delivery_allowed(self) -> list[str]:
        if self.delivery_allow_networks is not None:
            return self.delivery_allow_networks
        return ["127.0.0.0/8", "::1/128"] if self.env == "dev" else []

    @property
    def reports_path(self) -> Path:
        return self.report_dir if self.report_dir is not None else self.data_dir / "reports"

    @property
    def merchant_processes(self) -> int:
        return self.merchant_pool_size or os.cpu_count() or 1

    @model_validator(mode="after")
    def _prod_needs_auth(self) -> Settings:
        # Open webhooks are a dev convenience; in production an unauthenticated
        # endpoint that writes licenses is a mistake worth refusing to start over.
        if self.env == "prod" and self.salesforce_secret is None:
            raise ValueError("STREAMAPP_SALESFORCE_SECRET must be set when STREAMAPP_ENV=prod")
        return self

    @property
    def services_env_file(self) -> Path:
        return self.data_dir / "services.env"

    @property
    def kafka_url(self) -> str:
        if self.broker_url is None:
            raise ValueError("STREAMAPP_BROKER_URL is not set and no embedded broker is running")
        return self.broker_url

    @property
    def postgres_dsn(self) -> str:
        if self.database_url is None:
            raise ValueError("STREAMAPP_DATABASE_URL is not set and no embedded PostgreSQL runs")
        return self.database_url.get_secret_value()

    @property
    def salesforce_auth_enabled(self) -> bool:
        """The shared-secret check is on whenever a secret is configured."""
        return self.salesforce_secret is not None


def load_settings(**overrides: object) -> Settings:
    """Build the settings, falling back to `<data_dir>/services.env` for the broker/DB URLs.

    `streamapp services` writes that file, so a worker started in another shell finds
    the embedded parts without the user copying URLs around. Real environment
    variables always win over the file.
    """
    first = Settings(**overrides)  # type: ignore[arg-type]
    env_file = first.services_env_file
    if env_file.is_file() and (first.broker_url is None or first.database_url is None):
        return Settings(_env_file=env_file, **overrides)  # type: ignore[arg-type]
    return first
