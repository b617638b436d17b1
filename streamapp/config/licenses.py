"""The licenses pipeline's settings: the Salesforce webhook."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from streamapp.settings import Settings, split_csv


class LicensesSettings(Settings):
    """The licenses pipeline's settings: the Salesforce webhook.

    Read from the same `STREAMAPP_*` sources as the core settings; a pipeline gets
    its instance with `app.settings.of(LicensesSettings)`.
    """

    # Salesforce webhook.
    salesforce_secret: SecretStr | None = None
    salesforce_org_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("salesforce_secret", mode="before")
    @classmethod
    def _licenses_empty_is_unset(cls, value: object) -> object:
        # `FOO=` in an env file means "not set", not "the empty secret".
        return None if value == "" else value

    @field_validator("salesforce_org_allowlist", mode="before")
    @classmethod
    def _licenses_split_csv(cls, value: object) -> object:
        return split_csv(value)

    @property
    def salesforce_auth_enabled(self) -> bool:
        """The shared-secret check is on whenever a secret is configured."""
        return self.salesforce_secret is not None

    def production_doors(self) -> dict[str, object]:
        return {**super().production_doors(), "STREAMAPP_SALESFORCE_SECRET": self.salesforce_secret}
