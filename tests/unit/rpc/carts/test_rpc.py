"""The rpc wrapper: authentication first, errors to status codes and trailers, spans per call."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import grpc
import jwt
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from streamapp.config.carts import CartsSettings
from streamapp.errors import NotFound, ValidationFailed
from streamapp.models.carts import Caller
from streamapp.rpc.carts.auth import TokenVerifier
from streamapp.rpc.carts.rpc import RpcRunner

SECRET = "unit-test-carts-rpc-secret-0123456789"


class Aborted(Exception):
    pass


class FakeContext:
    """What RpcRunner uses of grpc.aio.ServicerContext."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata
        self.trailers: tuple[tuple[str, str], ...] = ()
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def set_trailing_metadata(self, trailers: tuple[tuple[str, str], ...]) -> None:
        self.trailers = trailers

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def runner(spans: InMemorySpanExporter) -> RpcRunner:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    return RpcRunner(TokenVerifier(CartsSettings(carts_jwt_secret=SECRET)), lambda: tracer)


def signed(user: uuid.UUID) -> tuple[tuple[str, str], ...]:
    token = jwt.encode({"sub": str(user), "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    return (("authorization", f"Bearer {token}"),)


async def call(runner: RpcRunner, context: FakeContext, error: Exception | None) -> Any:
    async def work(caller: Caller) -> str:
        if error is not None:
            raise error
        return str(caller.user_uuid)

    return await runner.run(context, "cart.Cart/Get", work)  # type: ignore[arg-type]


async def test_success_names_the_caller(runner: RpcRunner, spans: InMemorySpanExporter) -> None:
    user = uuid.uuid4()
    assert await call(runner, FakeContext(signed(user)), None) == str(user)
    (span,) = spans.get_finished_spans()
    assert span.name == "cart.Cart/Get"
    assert span.attributes is not None
    assert span.attributes["enduser.id"] == str(user)
    assert span.attributes["rpc.grpc.status_code"] == 0


@pytest.mark.parametrize(
    ("error", "code", "reason", "detail"),
    [
        (NotFound("cart x not found"), grpc.StatusCode.NOT_FOUND, "not_found", "cart x not found"),
        (ConnectionRefusedError(), grpc.StatusCode.UNAVAILABLE, "dependency_unavailable", "retry later"),
        (KeyError("secret detail"), grpc.StatusCode.INTERNAL, "internal_error", "internal error"),
    ],
)
async def test_errors_become_status_codes(
    runner: RpcRunner,
    spans: InMemorySpanExporter,
    error: Exception,
    code: grpc.StatusCode,
    reason: str,
    detail: str,
) -> None:
    context = FakeContext(signed(uuid.uuid4()))
    with pytest.raises(Aborted):
        await call(runner, context, error)
    assert context.aborted is not None
    assert context.aborted[0] is code
    assert detail in context.aborted[1]
    assert "secret detail" not in context.aborted[1]  # unexpected errors are logged, not told
    assert dict(context.trailers)["error-reason"] == reason
    (span,) = spans.get_finished_spans()
    failed_on_our_side = code is not grpc.StatusCode.NOT_FOUND
    assert (span.status.status_code.name == "ERROR") is failed_on_our_side


async def test_field_errors_travel_as_a_trailer(runner: RpcRunner) -> None:
    context = FakeContext(signed(uuid.uuid4()))
    bad = ValidationFailed("x", errors=[{"field": "quantity", "type": "value_error", "message": "no"}])
    with pytest.raises(Aborted):
        await call(runner, context, bad)
    assert context.aborted is not None
    assert context.aborted[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert json.loads(dict(context.trailers)["error-fields"])[0]["field"] == "quantity"


async def test_unauthenticated_before_the_work(runner: RpcRunner) -> None:
    context = FakeContext((("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),))
    with pytest.raises(Aborted):
        await call(runner, context, AssertionError("must not run"))
    assert context.aborted is not None
    assert context.aborted[0] is grpc.StatusCode.UNAUTHENTICATED
