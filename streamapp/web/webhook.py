"""The webhook skeleton, written once: who calls, the body, the secret, parse, publish, answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response
from pydantic import BaseModel

from streamapp.publishing import publish_all
from streamapp.typing import Topic, aiohttp_request
from streamapp.web.base import JsonView, check_shared_secret, read_body

if TYPE_CHECKING:
    from pydantic import SecretStr


@dataclass
class Accepted:
    """What a webhook publishes, and its answer once all of it is durable (202 + `body` by default)."""

    messages: list[tuple[bytes, bytes]]
    body: dict[str, Any] = field(default_factory=dict)
    # The route's declared reply model, which `body` must match (streamapp/routes.py).
    reply: type[BaseModel] | None = None
    # A ready answer instead (Salesforce wants a SOAP acknowledgement, with 200).
    response: Response | None = None


class Webhook(JsonView):
    """A webhook that turns requests into messages on `topic` (bound per app, `web.base.bound`).

    The steps, in this order for every pipeline: `authorize` (credentials in headers,
    before the body is read), the body under STREAMAPP_MAX_BODY_BYTES, `received`,
    the `shared_secret` check, `accept` (parse and validate: 4xx for bad input, nothing
    published), publish durably, answer. The caller hears "accepted" only once the
    broker acknowledged every message.
    """

    topic: Topic

    async def authorize(self, request: Request) -> None:
        """Check credentials that need no body; none by default."""

    def received(self, request: Request, body: bytes) -> None:
        """A look at the body before the secret check (how to answer errors); nothing by default."""

    def shared_secret(self) -> SecretStr | None:
        """The secret senders prove (header or `?token=`); None: no check."""
        return None

    async def accept(self, request: Request, body: bytes) -> Accepted:
        raise NotImplementedError

    async def post(self, request: Request) -> Response:
        settings = self.host.settings
        await self.authorize(request)
        body = await read_body(request, settings.max_body_bytes)
        self.received(request, body)
        secret = self.shared_secret()
        check_shared_secret(aiohttp_request(request), secret.get_secret_value() if secret else None)
        accepted = await self.accept(request, body)
        if accepted.messages:
            await publish_all(self.topic, accepted.messages, timeout=settings.ingest_ack_timeout)
        if accepted.response is not None:
            return accepted.response
        if accepted.reply is not None:
            return self.reply(accepted.reply, accepted.body, status=202)
        return self.json(accepted.body, status=202)
