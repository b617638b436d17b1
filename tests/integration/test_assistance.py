"""Assistance end to end: the bot's requests routed by topic to a Slack stand-in, real SMTP and a webhook."""

from __future__ import annotations

import asyncio
import itertools
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from streamapp.deadletter_cli import read_dead_letters, replay_letters
from streamapp.outbound import signing
from streamapp.settings import Settings
from tests.integration.conftest import ADMIN, RECEIVER_HOST, Client
from tests.integration.receiver import Receiver
from tests.integration.slack import Posted, SlackStandIn
from tests.integration.smtp import Mail, SmtpServer, write_ca
from tests.integration.stack import Services, Worker, eventually
from tests.integration.test_dead_letters import args

BOT = "test-bot-token"
SLACK_SECRET = "T0SECRET0B0SECRET0xyzzy"
SALES = f"/services/T0/B0/sales-{SLACK_SECRET}"
URGENT = f"/services/T0/B1/urgent-{SLACK_SECRET}"
LIMITED = f"/services/T0/B2/limited-{SLACK_SECRET}"
PACED = f"/services/T0/B3/paced-{SLACK_SECRET}"
WEBHOOK_SECRET = signing.new_secret()
KNOWN = ["down", "flaky", "limited", "paced", "pricing", "sales", "urgent help"]


@dataclass
class Stage:
    client: Client
    worker: Worker
    services: Services
    slack: SlackStandIn
    smtp: SmtpServer
    receiver: Receiver
    routing_file: Path
    ca_file: Path

    def document(self, **routes: str) -> str:
        """The test routing table; `routes` replaces entries of [routes] (TOML values as text)."""
        table = {
            "sales": '"sales-slack"',
            "pricing": '"pricing-email"',
            '"Urgent Help"': '["urgent-slack", "pricing-email", "ops-webhook"]',
            "flaky": '"flaky-email"',
            "down": '"down-email"',
            "limited": '"limited-slack"',
            "paced": '"paced-slack"',
            **routes,
        }
        lines = ["[routes]", *(f"{topic} = {target}" for topic, target in table.items()), ""]
        for name, path, extra in (
            ("sales-slack", SALES, ""),
            ("urgent-slack", URGENT, 'mention = "<!here>"'),
            ("limited-slack", LIMITED, ""),
            ("paced-slack", PACED, "rate_limit = 4"),
        ):
            lines += [
                f"[channels.{name}]",
                'type = "slack"',
                f'webhook_url = "{self.slack.url(path)}"',
                extra,
            ]
        for name, to in (
            ("pricing-email", "pricing@example.com"),
            ("flaky-email", "flaky@example.com"),
            ("down-email", "down@example.com"),
        ):
            lines += [
                f"[channels.{name}]",
                'type = "email"',
                f'host = "{RECEIVER_HOST}"',
                f"port = {self.smtp.port}",
                f'username = "{self.smtp.username}"',
                f'password = "{self.smtp.password}"',
                'from = "Assistance <assistance@streamapp.test>"',
                f'to = ["{to}"]',
                'subject_prefix = "[help] "',
                f'ca_file = "{self.ca_file}"',
            ]
        lines += [
            "[channels.ops-webhook]",
            'type = "webhook"',
            f'url = "{self.receiver.url("/ops")}"',
            f'secret = "{WEBHOOK_SECRET}"',
        ]
        return "\n".join(lines) + "\n"

    async def ask(
        self, body: dict[str, Any] | bytes, *, token: str | None = BOT, **headers: str
    ) -> tuple[int, Any]:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        status, payload, _ = await self.client.post(
            "/assistance", body, secret=None, headers={**auth, **headers}
        )
        return status, payload

    async def status(self, request_id: str, token: str = BOT) -> tuple[int, Any]:
        async with self.client.session.get(
            f"{self.client.base}/assistance/{request_id}", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            return response.status, await response.json()

    async def settled(self, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The request's report once no channel is still being tried."""
        _, body = await eventually(
            lambda: self.status(request_id),
            lambda r: r[0] == 200 and r[1]["status"] != "in_progress",
            timeout=timeout,
        )
        assert isinstance(body, dict)
        return body

    async def admin(self, method: str, path: str, token: str | None = ADMIN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.client.session.request(method, self.client.base + path, headers=headers) as r:
            return r.status, await r.json()

    async def reload(self, text: str | None = None) -> tuple[int, Any]:
        self.routing_file.write_text(self.document() if text is None else text)
        return await self.admin("POST", "/admin/assistance/routing/reload")


def slack_posts(stage: Stage, path: str, request_id: str) -> list[Posted]:
    return [p for p in stage.slack.posted[path] if request_id in str(p.body)]


def mail_text(mail: Mail) -> str:
    body = mail.message.get_body(("plain",))
    return body.get_content() if body is not None else ""


def mails(stage: Stage, address: str, request_id: str) -> list[Mail]:
    return [m for m in stage.smtp.mails_to(address) if request_id in mail_text(m)]


async def slack_post(stage: Stage, path: str, request_id: str) -> Posted:
    async def probe() -> list[Posted]:
        return slack_posts(stage, path, request_id)

    (post,) = await eventually(probe, bool, timeout=30)
    return post


async def mail(stage: Stage, address: str, request_id: str) -> Mail:
    async def probe() -> list[Mail]:
        return mails(stage, address, request_id)

    (found,) = await eventually(probe, bool, timeout=30)
    return found


@pytest.fixture(scope="module")
async def stage(
    services: Services, worker: Worker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stage]:
    here = tmp_path_factory.mktemp("assistance")
    ca = trustme.CA()
    slack = SlackStandIn(RECEIVER_HOST)
    smtp = SmtpServer(RECEIVER_HOST, ca)
    receiver = Receiver(RECEIVER_HOST)
    receiver.secrets["/ops"] = WEBHOOK_SECRET
    for part in (slack, smtp, receiver):
        await part.start()
    async with aiohttp.ClientSession() as session:
        built = Stage(
            client=Client(session, worker.url),
            worker=worker,
            services=services,
            slack=slack,
            smtp=smtp,
            receiver=receiver,
            routing_file=Path(worker.settings["STREAMAPP_ASSISTANCE_ROUTING_FILE"]),
            ca_file=write_ca(ca, here / "ca.pem"),
        )
        status, body = await built.reload()
        assert status == 200, body
        yield built
    for part in (slack, smtp, receiver):
        await part.stop()


REQUEST = {
    "topic": "sales",
    "description": "I want 500 seats <!channel> & a discount",
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "conversation_url": "https://chat.example.com/c/42",
    "language": "en",
}


async def test_sales_goes_to_slack_as_block_kit(stage: Stage) -> None:
    status, body = await stage.ask(REQUEST)
    assert status == 202, body
    assert body["status"] == "accepted"
    assert (body["topic"], body["channels"]) == ("sales", ["sales-slack"])
    rid = body["request_id"]
    post = await slack_post(stage, SALES, rid)
    blocks = post.body["blocks"]
    kinds = [b["type"] for b in blocks]
    assert kinds == ["header", "section", "section", "actions", "context"]
    assert blocks[0]["text"]["text"] == "Assistance needed: sales"
    # The description is escaped: it cannot ping the whole channel.
    assert blocks[1]["text"]["text"] == "I want 500 seats &lt;!channel&gt; &amp; a discount"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields == ["*Topic*\nsales", "*Customer*\nAda Lovelace &lt;ada@example.com&gt;", "*Language*\nen"]
    assert blocks[3]["elements"][0]["url"] == "https://chat.example.com/c/42"
    assert rid in blocks[4]["elements"][0]["text"]
    assert "<!channel>" not in post.body["text"]
    report = await stage.settled(rid)
    assert report["status"] == "delivered"
    assert report["topic"] == "sales"
    assert report["customer"] == {"name": "Ada Lovelace", "email": "ada@example.com"}
    (channel,) = report["channels"]
    assert (channel["channel"], channel["type"], channel["status"]) == ("sales-slack", "slack", "succeeded")
    (attempt,) = channel["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["target"] == f"slack webhook at {RECEIVER_HOST}"


async def test_pricing_goes_by_email_with_text_and_html(stage: Stage) -> None:
    status, body = await stage.ask({**REQUEST, "topic": "pricing", "description": "How much is <b>Pro</b>?"})
    assert status == 202, body
    rid = body["request_id"]
    got = await mail(stage, "pricing@example.com", rid)
    assert got.tls  # STARTTLS happened before anything else
    assert got.login == stage.smtp.username
    message = got.message
    assert message["Subject"] == "[help] Assistance needed: pricing"
    assert message["From"] == "Assistance <assistance@streamapp.test>"
    assert message["To"] == "pricing@example.com"
    assert message["Reply-To"] == "Ada Lovelace <ada@example.com>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "How much is <b>Pro</b>?" in text.get_content()
    assert "Customer: Ada Lovelace <ada@example.com>" in text.get_content()
    assert "How much is &lt;b&gt;Pro&lt;/b&gt;?" in html.get_content()
    assert '<a href="https://chat.example.com/c/42">' in html.get_content()
    report = await stage.settled(rid)
    (channel,) = report["channels"]
    assert (channel["type"], channel["status"]) == ("email", "succeeded")
    assert message["Message-ID"] == f"<{channel['delivery_id']}@streamapp.test>"
    assert [a["status_code"] for a in channel["attempts"]] == [250]
    assert (
        channel["attempts"][0]["target"] == f"smtp://{RECEIVER_HOST}:{stage.smtp.port} to pricing@example.com"
    )


async def test_topic_matching_ignores_case_and_spaces_and_fans_out(stage: Stage) -> None:
    status, body = await stage.ask({"topic": "  URGENT help ", "description": "Production is down"})
    assert status == 202, body
    assert body["topic"] == "urgent help"
    assert body["channels"] == ["urgent-slack", "pricing-email", "ops-webhook"]
    rid = body["request_id"]
    post = await slack_post(stage, URGENT, rid)
    assert post.body["blocks"][1]["text"]["text"].startswith("<!here> Production is down")
    await mail(stage, "pricing@example.com", rid)
    hooks = await stage.receiver.wait_for("/ops", 1)
    (hook,) = [h for h in hooks if h.body["request_id"] == rid]
    assert hook.signature_ok
    assert hook.body["topic"] == "urgent help"
    assert hook.body["description"] == "Production is down"
    report = await stage.settled(rid)
    assert report["status"] == "delivered"
    assert {(c["channel"], c["type"], c["status"]) for c in report["channels"]} == {
        ("urgent-slack", "slack", "succeeded"),
        ("pricing-email", "email", "succeeded"),
        ("ops-webhook", "webhook", "succeeded"),
    }


async def test_unknown_topic_and_bad_requests(stage: Stage) -> None:
    status, body = await stage.ask({"topic": "legal", "description": "help"})
    assert (status, body["error"]) == (422, "unknown_topic")
    assert body["known_topics"] == KNOWN
    assert "legal" in body["detail"]
    for bad, field in (
        ({"topic": "sales", "description": ""}, "description"),
        ({"topic": "sales", "description": "   "}, "description"),
        ({"topic": "sales"}, "description"),
        ({"description": "help"}, "topic"),
        ({**REQUEST, "customer": {"email": "not-an-address"}}, "customer.email"),
        ({**REQUEST, "conversation_url": "javascript:alert(1)"}, "conversation_url"),
        ({**REQUEST, "language": "English please"}, "language"),
        ({**REQUEST, "description": "x" * 9000}, "description"),
    ):
        status, body = await stage.ask(bad)
        assert (status, body["error"]) == (422, "validation_failed"), bad
        assert field in {e["field"] for e in body["errors"]}, body
    for raw in (b"{nope", b"[1]", b"", b"topic=sales"):
        status, body = await stage.ask(raw)
        assert (status, body["error"]) == (400, "malformed_body"), raw
    for token in (None, "wrong", ADMIN):
        status, body = await stage.ask(REQUEST, token=token)
        assert (status, body["error"]) == (401, "unauthorized"), token


async def test_idempotency_key_sends_once(stage: Stage) -> None:
    key = str(uuid.uuid4())
    first = await stage.ask(REQUEST, **{"Idempotency-Key": key})
    second = await stage.ask(REQUEST, **{"Idempotency-Key": key})
    assert first[0] == second[0] == 202
    rid = first[1]["request_id"]
    assert second[1]["request_id"] == rid
    await slack_post(stage, SALES, rid)
    await stage.settled(rid)
    await asyncio.sleep(1)
    assert len(slack_posts(stage, SALES, rid)) == 1


async def test_smtp_refusing_then_accepting_is_retried(stage: Stage) -> None:
    stage.smtp.scripts["flaky@example.com"] = ["554 5.7.1 Not now", "451 4.3.0 Try again", "250 OK"]
    _, body = await stage.ask({**REQUEST, "topic": "flaky"})
    rid = body["request_id"]
    await mail(stage, "flaky@example.com", rid)
    report = await stage.settled(rid)
    (channel,) = report["channels"]
    assert channel["status"] == "succeeded"
    assert [a["status_code"] for a in channel["attempts"]] == [554, 451, 250]
    assert channel["attempts"][0]["error"] == "SMTP 554: 5.7.1 Not now"


async def test_smtp_permanent_failure_dead_letters_then_replays(stage: Stage) -> None:
    stage.smtp.scripts["down@example.com"] = ["550 5.1.1 Mailbox unavailable"]
    _, body = await stage.ask({**REQUEST, "topic": "down"})
    rid = body["request_id"]
    report = await stage.settled(rid)
    assert report["status"] == "failed"
    (channel,) = report["channels"]
    assert channel["status"] == "dead"
    assert channel["attempt_count"] == 3
    settings = Settings(broker_url=stage.services.broker_url)

    async def letters() -> list[Any]:
        return [x async for _, _, x in read_dead_letters(settings) if x.event_id == channel["delivery_id"]]

    found = await eventually(letters, lambda xs: len(xs) == 1)
    assert [(x.pipeline, x.reason, x.replay_topic) for x in found] == [
        ("assistance", "delivery_exhausted", "deliveries.requests")
    ]
    assert "550" in found[0].detail
    assert mails(stage, "down@example.com", rid) == []
    stage.smtp.scripts["down@example.com"] = ["250 OK"]  # the mailbox is fixed
    await replay_letters(settings, args(ids=[str(found[0].dead_letter_id)]))
    await mail(stage, "down@example.com", rid)
    report = await stage.settled(rid)
    assert report["status"] == "delivered"
    assert [a["status_code"] for a in report["channels"][0]["attempts"]] == [550, 550, 550, 250]


async def test_slack_429_retry_after_is_honoured(stage: Stage) -> None:
    stage.slack.scripts[LIMITED] = [(429, {"Retry-After": "1"}), (200, {})]
    _, body = await stage.ask({**REQUEST, "topic": "limited"})
    rid = body["request_id"]
    await slack_post(stage, LIMITED, rid)
    first, second = stage.slack.attempts[LIMITED][:2]
    assert second - first >= 0.9  # the schedule alone would have retried after ~0.3 s
    report = await stage.settled(rid)
    attempts = report["channels"][0]["attempts"]
    assert [a["status_code"] for a in attempts] == [429, 200]
    assert attempts[0]["error"] == "HTTP 429: rate_limited"


async def test_slack_rate_limit_paces_messages(stage: Stage) -> None:
    ids = []
    for n in range(4):
        status, body = await stage.ask({**REQUEST, "topic": "paced", "description": f"paced {n}"})
        assert status == 202
        ids.append(body["request_id"])
    posted = await stage.slack.wait_for(PACED, 4)
    assert len(posted) == 4
    times = sorted(p.at for p in posted)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # rate_limit = 4 per second: sent a quarter of a second apart. Arrival times jitter on a
    # loaded machine (one gap of 0.176 s was seen), so: no two close together as an unpaced
    # burst would be (milliseconds), and the four spread over about three quarters of a second.
    assert min(gaps) >= 0.1, gaps
    assert times[-1] - times[0] >= 0.6, gaps
    for rid in ids:
        assert (await stage.settled(rid))["status"] == "delivered"


async def test_reload_changes_routing_without_restart(stage: Stage) -> None:
    _, before = await stage.admin("GET", "/admin/assistance/routing")
    status, report = await stage.reload(stage.document(pricing='"sales-slack"'))
    try:
        assert status == 200, report
        assert report["previous_version"] == before["active"]["version"]
        assert report["version"] != report["previous_version"]
        assert report["changed_channels"] == []  # only a route changed
        _, body = await stage.ask({**REQUEST, "topic": "Pricing"})
        assert body["channels"] == ["sales-slack"]
        await slack_post(stage, SALES, body["request_id"])
    finally:
        status, report = await stage.reload()
        assert status == 200
    assert report["version"] == before["active"]["version"]


async def test_bad_routing_file_is_rejected_and_the_old_table_kept(stage: Stage) -> None:
    _, before = await stage.admin("GET", "/admin/assistance/routing")
    version = before["active"]["version"]
    try:
        status, body = await stage.reload("[routes\nsales = ")
        assert (status, body["error"]) == (422, "invalid_routing")
        assert "not valid TOML" in body["detail"]
        assert body["active_version"] == version
        bad = "\n".join(
            [
                "[routes]",
                'sales = "nowhere"',
                'SALES = "slack-ok"',
                "[channels.slack-ok]",
                'type = "slack"',
                'webhook_url = "https://hooks.slack.test/services/T/B/ok-secret-value"',
                "[channels.pager]",
                'type = "pager"',
                "[channels.bad-slack]",
                'type = "slack"',
                'webhook_url = "ftp://secret-thing"',
                "[channels.bad-mail]",
                'type = "email"',
                'host = "smtp.test"',
                'port = "many"',
                'from = "a@b.test"',
                'to = ["c@d.test"]',
                "[channels.from-env]",
                'type = "slack"',
                'webhook_url = "${ASSISTANCE_TEST_UNSET_VARIABLE}"',
            ]
        )
        status, body = await stage.reload(bad)
        assert (status, body["error"]) == (422, "invalid_routing")
        problems = {(e["field"], e["type"]) for e in body["errors"]}
        assert ("routes.sales", "unknown_channel") in problems
        assert ("routes.SALES", "duplicate_topic") in problems
        assert ("channels.pager.type", "unknown_channel_type") in problems
        assert ("channels.bad-slack.webhook_url", "value_error") in problems
        assert ("channels.bad-mail.port", "int_parsing") in problems
        assert ("channels.from-env.webhook_url", "missing_env") in problems
        assert "secret-thing" not in str(body)
        assert "ok-secret-value" not in str(body)
        _, now = await stage.admin("GET", "/admin/assistance/routing")
        assert now["active"]["version"] == version
        assert now["last_error"]["error"] == "invalid_routing"
        # Routing goes on exactly as before.
        status, accepted = await stage.ask(REQUEST)
        assert (status, accepted["channels"]) == (202, ["sales-slack"])
        await slack_post(stage, SALES, accepted["request_id"])
    finally:
        status, _ = await stage.reload()
        assert status == 200


async def test_sighup_reloads_the_file(stage: Stage) -> None:
    stage.routing_file.write_text(stage.document(billing='"pricing-email"'))
    try:
        assert stage.worker.proc is not None
        stage.worker.proc.send_signal(signal.SIGHUP)
        _, body = await eventually(
            lambda: stage.admin("GET", "/admin/assistance/routing"),
            lambda r: "billing" in r[1]["active"]["routes"],
        )
        assert body["active"]["routes"]["billing"] == ["pricing-email"]
        status, accepted = await stage.ask({**REQUEST, "topic": "billing"})
        assert (status, accepted["channels"]) == (202, ["pricing-email"])
    finally:
        status, _ = await stage.reload()
        assert status == 200


async def test_admin_endpoints_need_the_admin_token(stage: Stage) -> None:
    for token in (None, BOT, "wrong"):
        status, body = await stage.admin("GET", "/admin/assistance/routing", token=token)
        assert (status, body["error"]) == (401, "unauthorized")
        status, body = await stage.admin("POST", "/admin/assistance/routing/reload", token=token)
        assert (status, body["error"]) == (401, "unauthorized")


async def test_status_and_history_access(stage: Stage) -> None:
    _, body = await stage.ask(REQUEST)
    rid = body["request_id"]
    await stage.settled(rid)
    status, err = await stage.status(rid, token="wrong")
    assert (status, err["error"]) == (401, "unauthorized")
    assert (await stage.status(str(uuid.uuid4())))[0] == 404
    assert (await stage.status("not-a-uuid"))[0] == 404
    async with stage.client.session.get(
        f"{stage.client.base}/deliveries/{rid}", headers={"Authorization": f"Bearer {BOT}"}
    ) as r:
        assert r.status == 200
        history = await r.json()
    assert [d["channel"] for d in history["deliveries"]] == ["slack"]
    async with stage.client.session.get(
        f"{stage.client.base}/assistance/{rid}", headers={"Authorization": f"Bearer {ADMIN}"}
    ) as r:
        assert r.status == 200


async def test_secrets_are_never_shown_or_logged(stage: Stage) -> None:
    _, shown = await stage.admin("GET", "/admin/assistance/routing")
    channels = shown["active"]["channels"]
    assert channels["sales-slack"]["webhook_url"] == "**********"
    assert channels["pricing-email"]["password"] == "**********"
    assert channels["ops-webhook"]["secret"] == "**********"
    assert channels["paced-slack"]["min_interval"] == 0.25
    assert channels["sales-slack"]["min_interval"] == 1.0  # Slack's default: one a second
    _, body = await stage.ask(REQUEST)
    report = await stage.settled(body["request_id"])
    log = stage.worker.log_path.read_text(errors="replace")
    assert "assistance routing" in log  # the log is the worker's, and it talks about routing
    for secret in (SLACK_SECRET, stage.smtp.password, WEBHOOK_SECRET.removeprefix("whsec_")):
        assert secret not in str(shown)
        assert secret not in str(report)
        assert secret not in log
