"""The environment variables a command reads, for its `--help`: derived from the settings class.

Nothing here is a hand-kept list of variables: groups are the fields' name
prefixes, so a setting added to `Settings` or to an installed pipeline's settings class
(`streamapp/config/<pipeline>.py`) shows up in every help that reads its group.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from importlib import resources

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from streamapp.settings import Settings, pipeline_settings

# Field-name prefixes that belong together under one heading (first match wins).
# Fields with no listed prefix are grouped by their first word.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("general", ("env", "app_id", "data_dir", "log_", "secrets_dir")),
    ("broker", ("broker_", "topic_", "producer_", "worker_producer_", "table_store", "gap_", "drain_")),
    ("postgres", ("database_url", "db_", "migrate_on_start")),
    ("embedded", ("embedded_",)),
    ("web", ("web_", "max_body_bytes", "ingest_", "admin_token", "read_token", "worker_nice")),
    ("processing", ("sink_", "dead_letter_", "max_future_skew", "retry_", "worker_gc_", "worker_stream_")),
    ("licenses", ("salesforce_",)),
    ("tasks", ("tasks_", "report_")),
    ("merchants", ("merchant_",)),
    ("deliveries", ("delivery_",)),
    ("assistance", ("assistance_",)),
    ("carts", ("carts_",)),
)


def group_of(field: str) -> str:
    for name, prefixes in GROUPS:
        if any(field == p or (p.endswith("_") and field.startswith(p)) for p in prefixes):
            return name
    return field.split("_", 1)[0]


def all_fields(settings_cls: type[BaseSettings] | None = None) -> dict[str, FieldInfo]:
    """Every setting: the core's, then each installed pipeline's own, in field order."""
    classes: list[type[BaseSettings]] = [settings_cls] if settings_cls else [Settings, *pipeline_settings()]
    fields: dict[str, FieldInfo] = {}
    for cls in classes:
        for field, info in cls.model_fields.items():
            fields.setdefault(field, info)
    return fields


def variables(settings_cls: type[BaseSettings] | None = None) -> dict[str, list[tuple[str, str]]]:
    """group -> [(variable, default as shown)], in the classes' field order."""
    prefix = str((settings_cls or Settings).model_config.get("env_prefix", ""))
    groups: dict[str, list[tuple[str, str]]] = {}
    for field, info in all_fields(settings_cls).items():
        default = "" if info.is_required() else info.get_default(call_default_factory=True)
        shown = (
            ""
            if default is None or isinstance(default, SecretStr) or default == ""
            else ",".join(map(str, default))
            if isinstance(default, list)
            else str(default)
        )
        groups.setdefault(group_of(field), []).append(((prefix + field).upper(), shown))
    return groups


def routing_variables() -> list[str]:
    """The `${NAME}` variables the packaged assistance routing table reads."""
    text = resources.files("streamapp.rules").joinpath("assistance.toml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", "\n".join(lines))))


def epilog(groups: Sequence[str] | None = None, width: int = 100) -> str:
    """The help text's environment section for these groups (None: all of them)."""
    found = variables()
    chosen = list(found) if groups is None else [g for g in groups if g in found]
    lines = ["environment (STREAMAPP_*, default in parentheses; also read from STREAMAPP_SECRETS_DIR files):"]
    for group in chosen:
        names = ", ".join(f"{name} ({default})" if default else name for name, default in found[group])
        lines += textwrap.wrap(
            f"{group}: {names}",
            width,
            initial_indent="  ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )
    if groups is None or "assistance" in chosen:
        lines += textwrap.wrap(
            "assistance routing file (packaged default): " + ", ".join(routing_variables()),
            width,
            initial_indent="  ",
            subsequent_indent="      ",
        )
    return "\n".join(lines)
