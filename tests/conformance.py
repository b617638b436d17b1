"""Does an answer match what /openapi.json says of its route, method and status? (Schemathesis' check.)"""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import Draft202012Validator

from streamapp.app import create_app
from streamapp.settings import Settings
from streamapp.web.docs import app_version
from streamapp.web.openapi import openapi_document

NOWHERE = {"broker_url": "kafka://127.0.0.1:1", "database_url": "postgresql://nobody@127.0.0.1:1/none"}


@functools.cache
def document() -> dict[str, Any]:
    app = create_app(Settings(**NOWHERE))  # type: ignore[arg-type]
    return openapi_document(app.routes.values(), title="streamapp", version=app_version())


def mismatch(route: str, method: str, status: int, content_type: str, body: Any) -> str | None:
    """Why the answer does not match the document, or None when it does.

    `route` is the path template (`/licenses/{customer_id}`); `body` the parsed JSON
    (ignored for other content types, which only must be the declared one).
    """
    doc = document()
    operation = doc["paths"].get(route, {}).get(method.lower())
    if operation is None:
        return f"{method} {route} is not in the document"
    response = operation["responses"].get(str(status))
    if response is None:
        return f"{method} {route}: status {status} is not documented ({sorted(operation['responses'])})"
    media = content_type.split(";")[0].strip()
    declared = response.get("content", {})
    if not declared:  # documented without a body (a redirect)
        return (
            None if body in (None, b"", "") else f"{method} {route} {status}: a body where none is documented"
        )
    schema = next(
        (spec["schema"] for kind, spec in declared.items() if _matches(kind, media)),
        None,
    )
    if schema is None:
        return f"{method} {route} {status}: content type {media} is not one of {sorted(declared)}"
    if media != "application/json":
        return None
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    if errors:
        return f"{method} {route} {status}: {errors[0].message} at {list(errors[0].path)}"
    return None


def _matches(declared: str, media: str) -> bool:
    if declared.endswith("/*"):
        return media.startswith(declared[:-1])
    return declared == media
