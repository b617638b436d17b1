"""The assistance pipeline's settings: the chat bot's token and the routing table."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from streamapp.settings import Settings


class AssistanceSettings(Settings):
    """The assistance pipeline's settings: the chat bot's token and the routing table.

    Read from the same `STREAMAPP_*` sources as the core settings; a pipeline gets
    its instance with `app.settings.of(AssistanceSettings)`.
    """

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

    def production_doors(self) -> dict[str, object]:
        return {**super().production_doors(), "STREAMAPP_ASSISTANCE_BOT_TOKEN": self.assistance_bot_token}
