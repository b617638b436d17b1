"""The OpenAPI 3.1 document, built from the route declarations and the pydantic models the views use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, cast

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from streamapp.errors import (
    DependencyUnavailable,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    StreamappError,
    Unauthorized,
    ValidationFailed,
)
from streamapp.routes import PUBLIC, SECURITY_SCHEMES, Operation, Route

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"


class FieldError(BaseModel):
    """One offending field of a 422."""

    field: str = Field(description="Dotted path of the field (`` for the whole body)")
    type: str = Field(description="Machine-readable kind of problem, e.g. `missing`, `nul_character`")
    message: str


class ErrorReply(BaseModel):
    """Every error the app answers in JSON: `error` is the reason clients switch on."""

    error: str = Field(description="Machine-readable reason, e.g. `validation_failed`")
    detail: str = Field(description="For people: what was wrong and what to do")
    errors: list[FieldError] | None = Field(default=None, description="For 422: each offending field")


# Answered by the server for any route, not by a view (streamapp/web/metrics.py, drain.py, ingest.py).
SERVER_ERRORS: dict[str, tuple[int, str]] = {
    "not_found": (404, "No route has this path."),
    "not_an_ingest_route": (404, "An ingest process was asked for a route only workers serve."),
    "method_not_allowed": (405, "The route has no such method; the `Allow` header lists those it has."),
    "draining": (503, "The worker is stopping and takes no new events; retry after `Retry-After`."),
}


def _error_schema(reasons: list[str]) -> dict[str, Any]:
    return {
        "allOf": [{"$ref": REF.format(model="ErrorReply")}],
        "properties": {"error": {"enum": reasons}},
    }


def implied_errors(operation: Operation, has_path_params: bool) -> list[type[StreamappError]]:
    """The errors a route has by its shape: a door (401), a body (400, 413, 422), a query (422),
    a path parameter (404: no such thing); with the database asked (`db_call`, which declares
    503), also 422 for a value PostgreSQL refuses (NUL in an id)."""
    errors: list[type[StreamappError]] = []
    if operation.access is not PUBLIC:
        errors.append(Unauthorized)
    if operation.body is not None or operation.other_bodies:
        errors += [MalformedBody, PayloadTooLarge, ValidationFailed]
    if operation.query is not None:
        errors.append(ValidationFailed)
    if has_path_params:
        errors.append(NotFound)
        if DependencyUnavailable in operation.errors:
            errors.append(ValidationFailed)
    return errors


def error_responses(operation: Operation, has_path_params: bool) -> dict[str, Any]:
    by_status: dict[int, set[str]] = {}
    errors = [*implied_errors(operation, has_path_params), *operation.errors]
    for error in errors:
        by_status.setdefault(error.status, set()).add(error.reason)
    responses: dict[str, Any] = {}
    for status, reasons in sorted(by_status.items()):
        content: dict[str, Any] = {"application/json": {"schema": _error_schema(sorted(reasons))}}
        if "text/xml" in operation.other_bodies:  # a SOAP sender is answered a SOAP Fault
            content["text/xml"] = {"schema": {"type": "string", "description": "A SOAP Fault"}}
        reasons_text = ", ".join(f"`{r}`" for r in sorted(reasons))
        responses[str(status)] = {"description": f"Reasons: {reasons_text}", "content": content}
    return responses


def _models(routes: Iterable[Route]) -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    wanted: dict[tuple[type[BaseModel], str], None] = {(ErrorReply, "serialization"): None}
    for route in routes:
        for operation in route.operations.values():
            if operation.body is not None:
                wanted[(operation.body, "validation")] = None
            for reply in operation.replies.values():
                if reply.model is not None:
                    wanted[(reply.model, "serialization")] = None
    return [(model, "validation" if mode == "validation" else "serialization") for model, mode in wanted]


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One `in: query` parameter per field of the model the view validates its query with."""
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "schema": prop}
        parameter["required"] = name in required
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def operation_object(
    route: Route,
    method: str,
    operation: Operation,
    refs: dict[tuple[type[BaseModel], str], dict[str, Any]],
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, reply in sorted(operation.replies.items()):
        answer: dict[str, Any] = {"description": reply.description}
        if reply.content_type is None:
            pass  # no body
        elif reply.model is not None:
            answer["content"] = {reply.content_type: {"schema": refs[(reply.model, "serialization")]}}
        else:
            schema = {"type": "object"} if reply.content_type == "application/json" else {"type": "string"}
            answer["content"] = {reply.content_type: {"schema": schema}}
        responses[str(status)] = answer
    for status_text, error in error_responses(operation, bool(route.path_params)).items():
        # A status both declared as a reply (an HTML form shown again) and raised as a JSON error
        # answers either: both bodies are documented.
        if status_text in responses:
            reply_answer = responses[status_text]
            error["description"] = f"{reply_answer['description']}. {error['description']}"
            error["content"] = {**reply_answer.get("content", {}), **error["content"]}
        responses[status_text] = error
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path_params
    ]
    if operation.query is not None:
        parameters += query_parameters(operation.query)
    parameters += [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in operation.headers.items()
    ]
    who = f"Who may call it: {operation.access.who}."
    result: dict[str, Any] = {
        "operationId": _operation_id(method, route.path),
        "summary": operation.summary,
        "description": f"{operation.description}\n\n{who}".strip(),
        "tags": [route.tag],
        "security": [{scheme: [] for scheme in requirement} for requirement in operation.access.requirements],
        "responses": responses,
    }
    if parameters:
        result["parameters"] = parameters
    content: dict[str, Any] = {}
    if operation.body is not None:
        content["application/json"] = {"schema": refs[(operation.body, "validation")]}
    for content_type, text in operation.other_bodies.items():
        content[content_type] = {"schema": {"type": "string", "description": text}}
    if content:
        result["requestBody"] = {"required": True, "content": content}
    return result


def _operation_id(method: str, path: str) -> str:
    """`get_licenses_customer_id`: unique, since a path has each method once."""
    words = "".join(ch if ch.isalnum() else " " for ch in path).split()
    return "_".join([method, *words])


def openapi_document(routes: Iterable[Route], *, title: str, version: str) -> dict[str, Any]:
    """The whole document; `routes` in any order (paths come out sorted)."""
    routes = sorted(routes, key=lambda route: route.path)
    found, schemas = models_json_schema(_models(routes), ref_template=REF)
    refs: dict[tuple[type[BaseModel], str], dict[str, Any]] = {}
    for (model, mode), ref in found.items():
        refs[(cast("type[BaseModel]", model), mode)] = ref
    paths: dict[str, Any] = {}
    for route in routes:
        item = paths.setdefault(route.path, {})
        item["x-served-by"] = ["worker", "ingest"] if route.ingest else ["worker"]
        for method, operation in route.operations.items():
            item[method] = operation_object(route, method, operation, refs)
    server_errors = "\n".join(
        f"- {status} `{reason}`: {text}" for reason, (status, text) in SERVER_ERRORS.items()
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "Webhooks and RPC calls made durable in Kafka, processed by Faust agents.\n\n"
            "Every error answers JSON `{error, detail, errors?}`; `error` is a machine-readable reason. "
            "Besides each operation's own, any request may get:\n" + server_errors,
        },
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
    }
