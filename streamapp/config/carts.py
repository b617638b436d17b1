"""The carts pipeline's settings: the gRPC server, its tokens, the outbox relay, tracing."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from streamapp.settings import MiB, Settings


class CartsSettings(Settings):
    """The carts pipeline's settings: the gRPC server, its tokens, the outbox relay, tracing.

    Read from the same `STREAMAPP_*` sources as the core settings; a pipeline gets
    its instance with `app.settings.of(CartsSettings)`.
    """

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
    # The longest a token may live (exp - iat, or exp - now without iat), s: a stolen
    # token valid until 2100 is a password that never changes.
    carts_jwt_max_lifetime: float = Field(default=86_400.0, gt=0)
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
            raise ValueError("must be at least 32 bytes")
        return value

    @model_validator(mode="after")
    def _carts_audience_outside_dev(self) -> CartsSettings:
        # Without an audience any token signed with the key is taken, whoever it was for.
        if (
            self.env not in ("dev", "prod")
            and self.carts_jwt_secret is not None
            and self.carts_jwt_audience is None
        ):
            raise ValueError("STREAMAPP_CARTS_JWT_AUDIENCE must be set with the JWT secret outside dev")
        return self

    def production_doors(self) -> dict[str, object]:
        return {
            **super().production_doors(),
            "STREAMAPP_CARTS_JWT_SECRET": self.carts_jwt_secret,
            "STREAMAPP_CARTS_JWT_AUDIENCE": self.carts_jwt_audience,
        }
