"""The one settings object, read from `STREAMAPP_*` environment variables at start-up."""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import (
    Field,
    NonNegativeInt,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from streamapp.errors import InvalidSettings

MiB = 1024 * 1024
S = TypeVar("S", bound="Settings")
# Where installed pipelines are found (streamapp.pipeline reads the same group).
PIPELINES_GROUP = "streamapp.pipelines"


def split_csv(value: object) -> object:
    """`a, b,c` in an environment variable -> ["a", "b", "c"]."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """The core's knobs. Built once by the entry point and passed down.

    Each pipeline's own knobs are a subclass of this one (`streamapp/config/<pipeline>.py`),
    read from the same sources and the same variable names; `of` builds it.
    """

    # hide_input_in_errors: a validation error must never echo what it was given
    # (a database URL with its password, a JWT key typed into the wrong variable).
    model_config = SettingsConfigDict(
        env_prefix="STREAMAPP_",
        frozen=True,
        # Kept: a pipeline's own fields given here (tests, `load_settings(**overrides)`)
        # reach its settings class through `of`.
        extra="allow",
        env_file_encoding="utf-8",
        hide_input_in_errors=True,
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
    # How long the producer waits to fill a batch. Ingest: 5 ms gathers concurrent
    # webhooks into one request. Workers send a whole batch's outputs and then wait
    # for them: a linger there only delays the acknowledgement (twice per batch).
    producer_linger_ms: int = Field(default=5, ge=0)
    worker_producer_linger_ms: int = Field(default=0, ge=0)
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

    # Web. web_bind is the address the web server listens on (Faust's own default
    # is every interface, which put the dev-open admin routes of a laptop on the
    # network); a container sets 0.0.0.0 explicitly. web_host is the name the other
    # workers reach this one at (Faust's canonical URL, table routing).
    web_bind: str = "127.0.0.1"
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
    # The worker's cyclic garbage collector thresholds (`gc.set_threshold`). With
    # Python's (700, 10, 10) a worker working off a backlog spent ~30 us of CPU per
    # licenses record collecting (gen 0 every 700 allocations, a batch of 2,000
    # records allocates ~100,000 objects, and what lives through a batch is
    # promoted and rescanned); almost all of it is freed by reference counting
    # anyway. JSON in the environment, e.g. `[700,10,10]` for Python's default.
    worker_gc_thresholds: tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt] = (50_000, 20, 20)
    # Events fetched ahead per agent (Faust's `stream_buffer_maxsize`, default 4,096).
    # Once an agent's queue is 80 % full Faust stops fetching its partitions, and with
    # every partition stopped its fetch loop sleeps a whole second before it looks
    # again: a worker working off a backlog at ~10,000 records/s emptied a 4,096 queue
    # well before that and sat idle 0.3-0.75 s every ~9,000 records (a third of its
    # time in the peers benchmark). 16,384 holds more than the second.
    worker_stream_buffer: int = Field(default=16_384, ge=64)
    # A request body must fit in one message with its envelope (~1 KB of event id,
    # source, key and time, plus JSON escaping of the odd character): 64 KiB under
    # the producer limit, so a body the limit lets through is never refused by the
    # producer (that came back as a 503 senders retry forever). Checked below.
    max_body_bytes: int = Field(default=1 * MiB - 64 * 1024, ge=1024)
    # The producer's largest request; real brokers refuse more by default (message.max.bytes).
    producer_max_request_bytes: int = Field(default=1 * MiB, ge=64 * 1024)
    # Ingest waits this long for the broker's acknowledgement before a 503.
    ingest_ack_timeout: float = Field(default=10.0, gt=0)

    # Admin token for privileged endpoints (e.g. creating API clients); open when unset in dev.
    admin_token: SecretStr | None = None
    # Read token for the read routes (licenses, tasks, reports); the admin token works too.
    # Unset: those reads are open in dev and need the admin token everywhere else.
    read_token: SecretStr | None = None

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

    # PostgreSQL.
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=8, ge=1)
    db_connect_timeout: float = Field(default=60.0, gt=0)

    # Sinks: batch size and the longest a partial batch waits.
    sink_batch_size: int = Field(default=2000, ge=1)
    sink_batch_within: float = Field(default=0.25, gt=0)
    # Dead letters larger than this keep their original bytes in PostgreSQL
    # (`dead_letter_payloads`): base64 and the letter's fields must fit the producer limit.
    dead_letter_max_bytes: int = Field(default=900_000, ge=4096)
    # Edge limits: an event time further in the future than this is refused (422).
    # A year-9999 time would make every later change of that entity look stale.
    max_future_skew: float = Field(default=300.0, ge=0)
    # Retry of transient infrastructure errors: exponential backoff with a cap.
    retry_initial_backoff: float = Field(default=0.2, gt=0)
    retry_max_backoff: float = Field(default=30.0, gt=0)

    # Embedded parts (used only when the URLs above are unset).
    embedded_broker_host: str = "127.0.0.1"
    embedded_broker_port: int = Field(default=19092, ge=1, le=65535)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"

    @field_validator("admin_token", "read_token", "database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `FOO=` in an env file means "not set", not "the empty secret".
        return None if value == "" else value

    @field_validator("delivery_schedule", "delivery_allow_networks", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return split_csv(value)

    @property
    def delivery_allowed(self) -> list[str]:
        if self.delivery_allow_networks is not None:
            return self.delivery_allow_networks
        return ["127.0.0.0/8", "::1/128"] if self.env == "dev" else []

    @model_validator(mode="after")
    def _body_fits_a_message(self) -> Settings:
        if self.max_body_bytes + 64 * 1024 > self.producer_max_request_bytes:
            raise ValueError(
                "STREAMAPP_MAX_BODY_BYTES must be at least 64 KiB below STREAMAPP_PRODUCER_MAX_REQUEST_BYTES"
            )
        return self

    @model_validator(mode="after")
    def _doors_locked(self) -> Settings:
        # Open doors are a dev convenience. In production every inbound door must
        # have its credential, or the worker refuses to start, naming each one missing
        # (each pipeline's settings class names its own doors: `production_doors`).
        if self.env == "prod":
            missing = [name for name, value in self.production_doors().items() if not value]
            if missing:
                raise ValueError("\n".join(f"{name} must be set when STREAMAPP_ENV=prod" for name in missing))
        return self

    def production_doors(self) -> dict[str, object]:
        """The credential of every door these settings open, by variable name: all required in prod."""
        return {"STREAMAPP_ADMIN_TOKEN": self.admin_token}

    _pipelines: dict[type[Settings], Settings] = PrivateAttr(default_factory=dict)

    def of(self, cls: type[S]) -> S:
        """A pipeline's settings: its class's fields read from the same sources, these for the rest.

        Built once per settings object (a pipeline's modules all see the same one).
        """
        if isinstance(self, cls):
            return self
        built = self._pipelines.get(cls)
        if built is None:
            given = {name: getattr(self, name) for name in type(self).model_fields}
            built = self._pipelines[cls] = cls(**{**(self.model_extra or {}), **given})
        return cast(S, built)

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

    # --- Production: broker security, secrets from files, migrations (issue 14) ----
    # A directory of files named like the variables (`STREAMAPP_DATABASE_URL`, any
    # case), one value each, trailing whitespace stripped: how Kubernetes and Docker
    # hand out secrets. Environment variables win over files. Unset: no files read.
    secrets_dir: Path | None = None
    # How workers, ingest processes and every CLI talk to the broker. SSL/SASL_SSL
    # verify the broker against the system CAs, or against `broker_ssl_cafile`.
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    broker_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"] = (
        "PLAIN"
    )
    broker_sasl_username: str | None = None
    broker_sasl_password: SecretStr | None = None
    # OAUTHBEARER: a file holding the current token, re-read for every
    # authentication, so whatever refreshes it (a sidecar, a projected token) wins.
    broker_sasl_oauth_token_file: Path | None = None
    broker_sasl_kerberos_service_name: str = "kafka"
    broker_sasl_kerberos_domain_name: str | None = None
    broker_ssl_cafile: Path | None = None
    # Client certificate and key (PEM) for brokers that authenticate clients by TLS.
    broker_ssl_certfile: Path | None = None
    broker_ssl_keyfile: Path | None = None
    broker_ssl_key_password: SecretStr | None = None
    # Off only for a broker whose certificate names another host (tests, tunnels).
    broker_ssl_check_hostname: bool = True
    # Workers and ingest processes apply pending migrations when they start. Off
    # when a deploy step (`streamapp migrate`, the chart's init container) does it
    # and the runtime database user has no DDL rights.
    migrate_on_start: bool = True
    # Check each end offset Faust's recovery and /lag ask for with a fetch (one short
    # probe per question): the embedded Tansu broker lists too small an end after
    # multi-record batches (streamapp/compat.py). Harmless on Kafka; off saves the probe.
    broker_check_end_offsets: bool = True

    @field_validator(
        "broker_sasl_username",
        "broker_sasl_password",
        "broker_sasl_oauth_token_file",
        "broker_sasl_kerberos_domain_name",
        "broker_ssl_cafile",
        "broker_ssl_certfile",
        "broker_ssl_keyfile",
        "broker_ssl_key_password",
        "secrets_dir",
        mode="before",
    )
    @classmethod
    def _production_empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _broker_security_is_complete(self) -> Settings:
        # Caught at start-up with the variable's name, not as an auth failure the
        # client library retries until the session times out.
        problems: list[str] = []
        sasl = self.broker_security_protocol.startswith("SASL_")
        user_password = self.broker_sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        if sasl and user_password:  # noqa: SIM102 (one condition per line reads better)
            if self.broker_sasl_username is None or self.broker_sasl_password is None:
                problems.append(
                    f"STREAMAPP_BROKER_SASL_USERNAME and STREAMAPP_BROKER_SASL_PASSWORD are required "
                    f"for SASL {self.broker_sasl_mechanism}"
                )
        if sasl and self.broker_sasl_mechanism == "OAUTHBEARER" and self.broker_sasl_oauth_token_file is None:
            problems.append("STREAMAPP_BROKER_SASL_OAUTH_TOKEN_FILE is required for SASL OAUTHBEARER")
        if (self.broker_ssl_certfile is None) != (self.broker_ssl_keyfile is None):
            problems.append("STREAMAPP_BROKER_SSL_CERTFILE and STREAMAPP_BROKER_SSL_KEYFILE go together")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def broker_tls(self) -> bool:
        return self.broker_security_protocol in ("SSL", "SASL_SSL")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The directory is itself a setting, so it has to be known before the
        # other settings are read: take it from the environment at construction
        # (never at import), unless the caller passed `_secrets_dir`.
        secrets_dir = os.environ.get("STREAMAPP_SECRETS_DIR") or None
        if (
            isinstance(file_secret_settings, SecretsSettingsSource)
            and file_secret_settings.secrets_dir is None
        ):
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
        return init_settings, env_settings, dotenv_settings, file_secret_settings


def load_settings(**overrides: object) -> Settings:
    """Build the settings, falling back to `<data_dir>/services.env` for the broker/DB URLs.

    `streamapp services` writes that file, so a worker started in another shell finds
    the embedded parts without the user copying URLs around. Real environment
    variables always win over the file. Every installed pipeline's own settings are
    checked too: invalid settings raise `InvalidSettings`, one line per problem,
    never a value.
    """
    settings: Settings | None = None
    found: list[str] = []
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        env_file = settings.services_env_file
        if env_file.is_file() and (settings.broker_url is None or settings.database_url is None):
            settings = Settings(_env_file=env_file, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        found = problems(exc)
    for cls in pipeline_settings():
        try:
            if settings is not None:
                settings.of(cls)
            else:
                cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            # A pipeline's settings repeat the core's checks: each problem once.
            found += [line for line in problems(exc) if line not in found]
    if found or settings is None:
        raise InvalidSettings(found)
    return settings


def pipeline_settings() -> list[type[Settings]]:
    """The settings classes of the installed pipelines (`Pipeline.settings`), in name order."""
    classes: list[type[Settings]] = []
    for ep in sorted(entry_points(group=PIPELINES_GROUP), key=lambda ep: ep.name):
        cls: Any = getattr(ep.load(), "settings", None)
        if isinstance(cls, type) and issubclass(cls, Settings) and cls not in classes:
            classes.append(cls)
    return classes


def problems(exc: ValidationError) -> list[str]:
    """One line per problem, naming the variable; inputs are never shown (they may be secrets)."""
    lines: list[str] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if field:
            lines.append(f"STREAMAPP_{field.upper()}: {message}")
        else:  # a whole-settings check: its message names the variables, one per line
            lines.extend(message.splitlines())
    return lines
