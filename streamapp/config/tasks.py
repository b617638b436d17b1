"""The tasks pipeline's settings: the TODO app's webhook secret and the reports."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from streamapp.settings import Settings


class TasksSettings(Settings):
    """The tasks pipeline's settings: the TODO app's webhook secret and the reports.

    Read from the same `STREAMAPP_*` sources as the core settings; a pipeline gets
    its instance with `app.settings.of(TasksSettings)`.
    """

    # Tasks.
    tasks_secret: SecretStr | None = None
    # Reports cover aligned event-time intervals [start, start + interval).
    report_interval: float = Field(default=60.0, gt=0)
    # A late event amends its interval's report until end + grace (by the clock).
    report_grace: float = Field(default=300.0, ge=0)
    report_tick: float = Field(default=1.0, gt=0)
    report_dir: Path | None = None  # default: <data_dir>/reports

    @field_validator("tasks_secret", mode="before")
    @classmethod
    def _tasks_empty_is_unset(cls, value: object) -> object:
        # `FOO=` in an env file means "not set", not "the empty secret".
        return None if value == "" else value

    @property
    def reports_path(self) -> Path:
        return self.report_dir if self.report_dir is not None else self.data_dir / "reports"

    def production_doors(self) -> dict[str, object]:
        return {**super().production_doors(), "STREAMAPP_TASKS_SECRET": self.tasks_secret}
