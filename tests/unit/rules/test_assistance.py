"""The routing table: TOML, ${ENV} values, the environment's override, and every kind of bad document;
the notifications a request becomes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from pydantic import SecretStr

from streamapp.models.assistance import BOT_OWNER, AssistanceRequest
from streamapp.outbound.channels import channel_types
from streamapp.outbound.channels.email import EmailConfig
from streamapp.outbound.channels.slack import SlackConfig
from streamapp.outbound.models import DeliveryRequest
from streamapp.rules.assistance import (
    RoutingError,
    RoutingTable,
    build_table,
    channel_report,
    deliveries_for,
    interpolate,
    merge,
    message_for,
    normalize_topic,
    parse_toml,
    payload_for,
)

TYPES = channel_types()
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"

DOCUMENT = """
[routes]
sales = "sales-slack"
" Pricing " = ["pricing-email"]
urgent = ["sales-slack", "pricing-email", "ops"]

[channels.sales-slack]
type = "slack"
webhook_url = "${SLACK_URL}"

[channels.pricing-email]
type = "email"
host = "smtp.example.com"
port = "${SMTP_PORT:-587}"
username = "bot"
password = "${SMTP_PASSWORD}"
from = "Help <help@example.com>"
to = ["pricing@example.com"]

[channels.ops]
type = "webhook"
url = "https://ops.example.com/hook?token=abc"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
rate_limit = 2
"""
ENV = {"SLACK_URL": SLACK_URL, "SMTP_PASSWORD": "hunter2-but-longer"}


def table(text: str = DOCUMENT, env: dict[str, str] | None = None) -> RoutingTable:
    return build_table(parse_toml(text, "test.toml"), TYPES, ENV if env is None else env, "test.toml")


def problems(text: str, env: dict[str, str] | None = None) -> set[tuple[str, str]]:
    with pytest.raises(RoutingError) as info:
        table(text, env)
    assert info.value.status == 422
    assert info.value.reason == "invalid_routing"
    return {(e["field"], e["type"]) for e in info.value.errors}


def test_a_good_table() -> None:
    routes = table()
    assert routes.known_topics == ["pricing", "sales", "urgent"]
    resolved = routes.resolve("  SALES ")
    assert resolved is not None
    topic, channels = resolved
    assert topic == "sales"
    assert [(c.name, c.kind, c.endpoint_id) for c in channels] == [
        ("sales-slack", "slack", "assistance:sales-slack")
    ]
    assert routes.resolve("legal") is None
    _, urgent = routes.resolve("urgent") or ("", ())
    assert [c.name for c in urgent] == ["sales-slack", "pricing-email", "ops"]
    slack = routes.channels["sales-slack"].config
    assert isinstance(slack, SlackConfig)
    assert slack.webhook_url.get_secret_value() == SLACK_URL
    email = routes.channels["pricing-email"].config
    assert isinstance(email, EmailConfig)
    assert (email.port, email.security, email.sender) == (587, "starttls", "Help <help@example.com>")
    # Rate limits: Slack's default is one a second; the webhook asked for two.
    assert routes.channels["sales-slack"].min_interval == 1.0
    assert routes.channels["pricing-email"].min_interval is None
    assert routes.channels["ops"].min_interval == 0.5
    assert routes.warnings == ()


def test_secrets_are_masked_everywhere_but_the_endpoint_rows() -> None:
    routes = table()
    shown = str(routes.describe()) + repr(routes) + str(routes.channels)
    assert "XXXXSECRET" not in shown
    assert "hunter2" not in shown
    assert "MfKQ9r8" not in shown
    assert routes.describe()["channels"]["sales-slack"]["webhook_url"] == "**********"
    assert "XXXXSECRET" not in routes.version
    stored = routes.stored_configs()
    kind, config, interval = stored["assistance:pricing-email"]
    assert (kind, config["password"], config["from"], interval) == (
        "email",
        "hunter2-but-longer",
        "Help <help@example.com>",
        None,
    )
    assert stored["assistance:sales-slack"][1]["webhook_url"] == SLACK_URL


def test_version_follows_the_content() -> None:
    assert table().version == table().version
    assert table().version != table(DOCUMENT.replace('sales = "sales-slack"', 'sales = "ops"')).version


def test_topic_normalisation() -> None:
    assert normalize_topic("  Sales\t") == "sales"
    assert normalize_topic("STRASSE") == normalize_topic("straße")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${A}", "1"),
        ("x-${A}-${B:-two}", "x-1-two"),
        ("${EMPTY:-fallback}", "fallback"),
        ("$$5 and $HOME", "$5 and $HOME"),
        ("${B:-}", ""),
    ],
)
def test_interpolation(value: str, expected: str) -> None:
    found: list[dict[str, str]] = []
    assert interpolate(value, {"A": "1", "EMPTY": ""}, "x", found) == expected
    assert found == []


def test_missing_variable_is_reported_by_path() -> None:
    found: list[dict[str, str]] = []
    interpolate({"a": ["${NOPE}"]}, {}, "channels.c", found)
    assert found[0]["field"] == "channels.c.a[0]"
    assert "NOPE" in found[0]["message"]
    assert problems(DOCUMENT, {"SLACK_URL": SLACK_URL}) == {
        ("channels.pricing-email.password", "missing_env")
    }


def test_override_replaces_entries() -> None:
    base = parse_toml(DOCUMENT, "file")
    override = parse_toml(
        'routes.sales = "ops"\n[channels.ops]\ntype = "webhook"\nurl = "https://x.test/"\n'
        'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"',
        "env",
    )
    merged = merge(base, override)
    routes = build_table(merged, TYPES, ENV, "file + env")
    assert routes.routes["sales"] == ("ops",)
    assert routes.routes["pricing"] == ("pricing-email",)  # untouched
    assert routes.channels["ops"].min_interval is None  # the whole entry was replaced


def test_unused_channels_are_a_warning() -> None:
    text = DOCUMENT.replace('urgent = ["sales-slack", "pricing-email", "ops"]', "")
    assert table(text).warnings == ("channel 'ops' is not used by any route",)


def test_not_toml() -> None:
    with pytest.raises(RoutingError, match=r"test\.toml: not valid TOML.*line 1"):
        parse_toml("[routes\n", "test.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {("routes", "empty")}),
        ("routes = 1", {("routes", "type")}),
        ("[route]\nsales = 'x'", {("route", "unknown_key"), ("routes", "empty")}),
        ("[routes]\nsales = 'nowhere'", {("routes.sales", "unknown_channel")}),
        ("[routes]\nsales = []", {("routes.sales", "type")}),
        (
            "[routes]\n'  ' = 'x'\n[channels.x]\ntype='slack'\nwebhook_url='https://h.test/x'",
            {("routes.  ", "topic")},
        ),
        (
            "[routes]\nsales = 'x'\nSales = 'x'\n[channels.x]\ntype='slack'\nwebhook_url='https://h.test/x'",
            {("routes.Sales", "duplicate_topic")},
        ),
        (
            "[routes]\nsales = ['x', 'x']\n[channels.x]\ntype='slack'\nwebhook_url='https://h.test/x'",
            {("routes.sales", "duplicate_channel")},
        ),
        (
            "[routes]\nsales = 'x'\n[channels.x]\ntype = 'pager'",
            {("channels.x.type", "unknown_channel_type")},
        ),
        (
            "[routes]\nsales = 'x'\n[channels.x]\nwebhook_url = 'https://h.test/'",
            {("channels.x.type", "unknown_channel_type")},
        ),
        ("[routes]\nsales = 'x'\n[channels.x]\ntype = 'slack'", {("channels.x.webhook_url", "missing")}),
        (
            "[routes]\nsales = 'x'\n[channels.x]\ntype = 'slack'\nwebhook_url = 'ftp://h.test/'\nextra = 1",
            {("channels.x.webhook_url", "value_error"), ("channels.x.extra", "extra_forbidden")},
        ),
        (
            "[routes]\nsales = 'x'\n[channels.'bad name']\ntype='slack'\nwebhook_url='https://h.test/x'",
            {("channels.bad name", "name"), ("routes.sales", "unknown_channel")},
        ),
        (
            "[routes]\nsales = 'x'\n[channels.x]\ntype='email'\nhost='h'\nfrom='a@b.test'\nto=['c@d.test']\n"
            "security='none'\nusername='u'\npassword='p'",
            {("channels.x", "value_error")},
        ),
        (
            "[routes]\nsales = 'x'\n[channels.x]\ntype='email'\nhost='h'\nfrom='nobody'\nto=[]\nport=0",
            {
                ("channels.x.from", "value_error"),
                ("channels.x.to", "too_short"),
                ("channels.x.port", "greater_than_equal"),
            },
        ),
        (
            "[routes]\nsales = 'x'\n[channels.x]\ntype='webhook'\nurl='https://h.test/'\nsecret='whsec_!!'",
            {("channels.x.secret", "value_error")},
        ),
        (
            "[routes]\nsales = 'x'\n[channels.x]\ntype='slack'\nwebhook_url='https://h.test/'\nrate_limit=0",
            {("channels.x.rate_limit", "greater_than")},
        ),
    ],
)
def test_bad_documents(text: str, expected: set[tuple[str, str]]) -> None:
    assert problems(text) == expected


def test_every_problem_is_reported_and_no_value_is_echoed() -> None:
    text = (
        "[routes]\na = 'nowhere'\nb = 'slack'\n[channels.slack]\ntype='slack'\nwebhook_url='ftp://top-secret'\n"
        "[channels.mail]\ntype='email'\nhost='h'\nport='top-secret-port'\nfrom='a@b.test'\nto=['c@d.test']\n"
    )
    with pytest.raises(RoutingError) as info:
        table(text)
    body: dict[str, Any] = info.value.to_json()
    assert len(body["errors"]) == 3
    assert "top-secret" not in str(body)


def test_the_packaged_default_routes_sales_to_slack_and_pricing_to_email() -> None:
    text = resources.files("streamapp.rules").joinpath("assistance.toml").read_text()
    env = {
        "STREAMAPP_ASSISTANCE_SLACK_WEBHOOK_URL": SLACK_URL,
        "STREAMAPP_ASSISTANCE_PRICING_EMAIL_TO": "p@x.test",
    }
    routes = table(text, env)
    kinds = {}
    for topic in routes.known_topics:
        resolved = routes.resolve(topic)
        assert resolved is not None
        kinds[topic] = [c.kind for c in resolved[1]]
    assert kinds == {"sales": ["slack"], "pricing": ["email"]}
    email = routes.channels["pricing-email"].config
    assert isinstance(email, EmailConfig)
    assert (email.host, email.port, email.username, email.password) == ("localhost", 587, None, None)
    # Without the Slack URL the default cannot be used, and says which variable is missing.
    assert problems(text, {"STREAMAPP_ASSISTANCE_PRICING_EMAIL_TO": "p@x.test"}) == {
        ("channels.sales-slack.webhook_url", "missing_env")
    }
    assert isinstance(SlackConfig(webhook_url=SecretStr(SLACK_URL)).webhook_url, SecretStr)


def request(**overrides: Any) -> AssistanceRequest:
    fields: dict[str, Any] = {
        "request_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "received_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "topic": "sales",
        "topic_as_sent": " Sales ",
        "description": "Need 500 seats",
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "conversation_url": "https://chat.example.com/c/1",
        "language": "en",
        "channels": ("sales-slack", "ops"),
        "routing_version": "abc",
        **overrides,
    }
    return AssistanceRequest.model_validate(fields)


def test_message_and_payload() -> None:
    req = request()
    message = message_for(req)
    assert message.title == "Assistance needed: sales"
    assert message.body == "Need 500 seats"
    assert [(f.label, f.value) for f in message.fields] == [
        ("Topic", "sales"),
        ("Customer", "Ada <ada@example.com>"),
        ("Language", "en"),
    ]
    assert message.link is not None
    assert message.link.url == "https://chat.example.com/c/1"
    assert message.footer == f"Request {req.request_id} · received 2026-01-02 03:04:05 UTC"
    assert message.reply_to == "Ada <ada@example.com>"
    assert payload_for(req) == {
        "request_id": str(req.request_id),
        "topic": "sales",
        "description": "Need 500 seats",
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "conversation_url": "https://chat.example.com/c/1",
        "language": "en",
        "received_at": "2026-01-02T03:04:05+00:00",
    }
    bare = message_for(request(customer=None, conversation_url=None, language=None))
    assert [f.label for f in bare.fields] == ["Topic"]
    assert (bare.link, bare.reply_to) == (None, None)
    assert message_for(request(customer={"name": "Ada"})).reply_to is None


def test_one_delivery_per_channel_with_stable_ids() -> None:
    first = deliveries_for(request())
    again = deliveries_for(request())
    assert [d.delivery_id for d in first] == [d.delivery_id for d in again]
    assert len({d.delivery_id for d in first}) == 2
    assert [d.endpoint_id for d in first] == ["assistance:sales-slack", "assistance:ops"]
    assert {(d.pipeline, d.owner, d.subject_id) for d in first} == {
        ("assistance", BOT_OWNER, "00000000-0000-4000-8000-000000000001")
    }
    # The wire form round-trips, message included (a replayed delivery is rendered the same).
    assert DeliveryRequest.model_validate_json(first[0].model_dump_json()) == first[0]


def delivery(endpoint: str, status: str) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint,
        "channel": "slack",
        "status": status,
        "delivery_id": "d",
        "attempt_count": 1,
        "next_attempt_at": None,
        "last_error": None,
        "attempts": [],
    }


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        (["succeeded", "succeeded"], "delivered"),
        (["succeeded", None], "in_progress"),
        (["succeeded", "pending"], "in_progress"),
        (["succeeded", "delivering"], "in_progress"),
        (["succeeded", "dead"], "partially_delivered"),
        (["dead", "disabled"], "failed"),
    ],
)
def test_channel_report(statuses: list[str | None], overall: str) -> None:
    names = ("a", "b")
    found = [delivery(f"assistance:{n}", s) for n, s in zip(names, statuses, strict=True) if s is not None]
    report = channel_report(names, found)
    assert report["status"] == overall
    assert [c["channel"] for c in report["channels"]] == ["a", "b"]
    assert [c["status"] for c in report["channels"]] == [s or "queued" for s in statuses]
