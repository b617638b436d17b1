"""The assistance rules: the routing table (topic -> channels) and the deliveries a request becomes.

The document has two tables. `routes` maps a topic to one channel name or a
list of them; `channels` defines each channel as a `type` plus that type's
settings. String settings may say `${NAME}` (required environment variable),
`${NAME:-default}` (optional) or `$$` (a literal `$`), so secrets stay out of
the file. Every problem in a document is reported, each with its path.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from streamapp.envelope import derived_id
from streamapp.errors import StreamappError
from streamapp.models.assistance import BOT_OWNER, PIPELINE, AssistanceRequest
from streamapp.outbound.channels import Channel, ChannelConfig, stored
from streamapp.outbound.models import DeliveryRequest, Link, Message, MessageField

ENDPOINT_PREFIX = "assistance:"
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAX_TOPIC = 100
_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TOP_LEVEL = ("routes", "channels")

Problem = dict[str, str]


class RoutingError(StreamappError):
    """A routing document that cannot be used; `errors` lists every problem with its path."""

    status = 422
    reason = "invalid_routing"


def normalize_topic(topic: str) -> str:
    """Topics match ignoring case and surrounding spaces."""
    return topic.strip().casefold()


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    kind: str
    config: ChannelConfig = field(repr=False)
    min_interval: float | None

    @property
    def endpoint_id(self) -> str:
        return endpoint_id(self.name)

    def public(self) -> dict[str, Any]:
        """The settings as shown to an admin: secrets masked by pydantic."""
        return {
            "type": self.kind,
            "min_interval": self.min_interval,
            **self.config.model_dump(mode="json", by_alias=True, exclude_none=True),
        }


@dataclass(frozen=True)
class RoutingTable:
    routes: Mapping[str, tuple[str, ...]]
    channels: Mapping[str, ChannelSpec]
    source: str
    warnings: tuple[str, ...] = ()

    @property
    def known_topics(self) -> list[str]:
        return sorted(self.routes)

    def resolve(self, topic: str) -> tuple[str, tuple[ChannelSpec, ...]] | None:
        """The normalised topic and its channels, or None for an unknown topic."""
        key = normalize_topic(topic)
        names = self.routes.get(key)
        if names is None:
            return None
        return key, tuple(self.channels[name] for name in names)

    @property
    def version(self) -> str:
        """A short fingerprint of the table. Secrets are left out, so it can be shown and logged."""
        public = {
            "routes": {topic: list(names) for topic, names in sorted(self.routes.items())},
            "channels": {name: spec.public() for name, spec in sorted(self.channels.items())},
        }
        return hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source,
            "routes": {topic: list(names) for topic, names in sorted(self.routes.items())},
            "channels": {name: spec.public() for name, spec in sorted(self.channels.items())},
            "warnings": list(self.warnings),
        }

    def stored_configs(self) -> dict[str, tuple[str, dict[str, Any], float | None]]:
        """endpoint id -> (channel type, settings with secrets, min interval): what the endpoint rows hold."""
        return {
            spec.endpoint_id: (spec.kind, stored(spec.config), spec.min_interval)
            for spec in self.channels.values()
        }


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoutingError(
            f"{source}: not valid TOML: {exc}",
            errors=[{"field": "", "type": "toml", "message": str(exc)}],
        ) from exc


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` wins entry by entry: a route or a channel it names replaces the file's whole entry."""
    merged = dict(base)
    for key, value in override.items():
        if key in _TOP_LEVEL and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def interpolate(value: Any, env: Mapping[str, str], path: str, problems: list[Problem]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = env.get(name)
            if found not in (None, ""):
                return str(found)
            if default is not None:
                return default
            problems.append(
                {
                    "field": path,
                    "type": "missing_env",
                    "message": f"environment variable {name} is not set"
                    " (write ${" + name + ":-default} for an optional value)",
                }
            )
            return ""

        return _REFERENCE.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, env, f"{path}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def build_table(
    document: Mapping[str, Any],
    types: Mapping[str, type[Channel[Any]]],
    env: Mapping[str, str],
    source: str,
) -> RoutingTable:
    """Check a whole document; raise one `RoutingError` listing every problem found."""
    problems: list[Problem] = []

    def problem(path: str, kind: str, message: str) -> None:
        problems.append({"field": path, "type": kind, "message": message})

    for key in document:
        if key not in _TOP_LEVEL:
            problem(key, "unknown_key", f"unknown top-level key; expected {', '.join(_TOP_LEVEL)}")
    raw_channels = document.get("channels", {})
    raw_routes = document.get("routes", {})
    if not isinstance(raw_channels, Mapping):
        problem("channels", "type", "must be a table of channels")
        raw_channels = {}
    if not isinstance(raw_routes, Mapping):
        problem("routes", "type", "must be a table of topic = channel(s)")
        raw_routes = {}

    channels: dict[str, ChannelSpec] = {}
    for name, raw in raw_channels.items():
        path = f"channels.{name}"
        if not CHANNEL_NAME.match(name):
            problem(path, "name", "channel names are 1-63 letters, digits, '.', '_' or '-'")
        if not isinstance(raw, Mapping):
            problem(path, "type", "must be a table with a `type` and its settings")
            continue
        kind = raw.get("type")
        cls = types.get(kind) if isinstance(kind, str) else None
        if cls is None:
            problem(f"{path}.type", "unknown_channel_type", f"must be one of: {', '.join(sorted(types))}")
            continue
        before = len(problems)
        settings = interpolate({k: v for k, v in raw.items() if k != "type"}, env, path, problems)
        if len(problems) > before:
            continue  # validating the blanks left by missing variables would only add noise
        try:
            config = cls.parse(settings)
        except ValidationError as exc:
            # Never the input: a setting may be a secret.
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(part) for part in err["loc"])
                problem(f"{path}.{loc}" if loc else path, err["type"], err["msg"])
            continue
        channels[name] = ChannelSpec(name, cls.kind, config, cls.min_interval(config))

    routes: dict[str, tuple[str, ...]] = {}
    for topic, target in raw_routes.items():
        path = f"routes.{topic}"
        key = normalize_topic(topic)
        names = [target] if isinstance(target, str) else target
        if not key or len(key) > MAX_TOPIC:
            problem(path, "topic", f"topics are 1-{MAX_TOPIC} characters besides surrounding spaces")
            continue
        if key in routes:
            problem(
                path,
                "duplicate_topic",
                f"the same topic as another route once case and spaces are ignored: {key!r}",
            )
            continue
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            problem(path, "type", "must be a channel name or a non-empty list of them")
            continue
        for name in names:
            if name not in raw_channels:
                problem(path, "unknown_channel", f"no channel named {name!r} in [channels]")
        if len(set(names)) != len(names):
            problem(path, "duplicate_channel", "a channel is listed twice")
        routes[key] = tuple(dict.fromkeys(names))
    if not raw_routes and isinstance(document.get("routes", {}), Mapping):
        problem("routes", "empty", "no routes: every topic would be refused")

    if problems:
        shown = "; ".join(
            f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems[:5]
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise RoutingError(f"{source}: {shown}{more}", errors=problems)
    used = {name for names in routes.values() for name in names}
    warnings = tuple(f"channel {name!r} is not used by any route" for name in sorted(set(channels) - used))
    return RoutingTable(routes=routes, channels=channels, source=source, warnings=warnings)


def payload_for(request: AssistanceRequest) -> dict[str, Any]:
    """What a webhook channel receives."""
    return {
        "request_id": str(request.request_id),
        "topic": request.topic,
        "description": request.description,
        "customer": request.customer.model_dump() if request.customer else None,
        "conversation_url": request.conversation_url,
        "language": request.language,
        "received_at": request.received_at.isoformat(),
    }


def message_for(request: AssistanceRequest) -> Message:
    """What people read in Slack or an e-mail."""
    fields = [MessageField(label="Topic", value=request.topic)]
    customer = request.customer.display() if request.customer else None
    if customer:
        fields.append(MessageField(label="Customer", value=customer))
    if request.language:
        fields.append(MessageField(label="Language", value=request.language))
    return Message(
        title=f"Assistance needed: {request.topic}",
        body=request.description,
        fields=tuple(fields),
        link=Link(url=request.conversation_url, text="Open the conversation")
        if request.conversation_url
        else None,
        footer=f"Request {request.request_id} · received {request.received_at:%Y-%m-%d %H:%M:%S %Z}".strip(),
        reply_to=customer if request.customer and request.customer.email else None,
    )


def endpoint_id(channel: str) -> str:
    return ENDPOINT_PREFIX + channel


def deliveries_for(request: AssistanceRequest) -> list[DeliveryRequest]:
    """One delivery per channel; ids derive from the request, so a redelivered event changes nothing."""
    payload = payload_for(request)
    message = message_for(request)
    return [
        DeliveryRequest(
            delivery_id=derived_id("assistance.delivery", str(request.request_id), channel),
            pipeline=PIPELINE,
            subject_id=str(request.request_id),
            owner=BOT_OWNER,
            endpoint_id=endpoint_id(channel),
            payload=payload,
            message=message,
        )
        for channel in request.channels
    ]


def channel_report(channels: tuple[str, ...], deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """Status per channel, and overall, from the delivery history of one request.

    A channel with no delivery row yet is `queued` (on its way through the topic).
    Overall: `delivered` when every channel succeeded, `in_progress` while any is
    still being tried, else `partially_delivered` or `failed`.
    """
    by_endpoint = {d["endpoint_id"]: d for d in deliveries}
    report: list[dict[str, Any]] = []
    for name in channels:
        delivery = by_endpoint.get(endpoint_id(name))
        if delivery is None:
            report.append({"channel": name, "type": None, "status": "queued", "attempts": []})
            continue
        report.append(
            {
                "channel": name,
                "type": delivery["channel"],
                "status": delivery["status"],
                "delivery_id": delivery["delivery_id"],
                "attempt_count": delivery["attempt_count"],
                "next_attempt_at": delivery["next_attempt_at"],
                "last_error": delivery["last_error"],
                "attempts": delivery["attempts"],
            }
        )
    statuses = {entry["status"] for entry in report}
    if statuses <= {"succeeded"}:
        overall = "delivered"
    elif statuses & {"queued", "pending", "delivering"}:
        overall = "in_progress"
    elif "succeeded" in statuses:
        overall = "partially_delivered"
    else:
        overall = "failed"
    return {"status": overall, "channels": report}
