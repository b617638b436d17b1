"""`GET /openapi.json` (the API's OpenAPI 3.1 document) and `GET /docs` (Swagger UI, served offline).

Who may call them: the document needs the read or admin token (open in dev while
no read token is set), like every read route. It holds no secret, but it maps
every admin and webhook door of a deployment, so outside dev it is not for
anonymous callers. The page and its assets are public: they are Swagger UI's
files and ours, with nothing of the deployment in them; the page asks for a
token when the document does.
"""

from __future__ import annotations

import functools
from importlib import metadata, resources
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response

from streamapp.auth import require_reader
from streamapp.errors import NotFound
from streamapp.routes import PUBLIC, READER, Operation, Reply
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView, bound
from streamapp.web.openapi import openapi_document

if TYPE_CHECKING:
    from streamapp.host import CoreHost

# The page's files, by the name it asks for: the packaged copy (no CDN; the page works offline).
ASSETS: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css"),
    "LICENSE": ("swagger-ui/LICENSE", "text/plain"),
    "docs.js": ("docs.js", "text/javascript"),
    "docs.css": ("docs.css", "text/css"),
}
# Everything from this server; Swagger UI sets inline styles and shows data: images.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
}


@functools.cache
def static_file(name: str) -> bytes:
    return (resources.files("streamapp.web") / "static" / name).read_bytes()


def app_version() -> str:
    try:
        return metadata.version("streamapp")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


class OpenApi(JsonView):
    document: dict[str, Any]

    async def get(self, request: Request) -> Response:
        require_reader(self.core, aiohttp_request(request))
        if not self.document:  # routes are all declared once the app is built: build it once
            self.document.update(
                openapi_document(self.core.routes.values(), title="streamapp", version=app_version())
            )
        return self.json(self.document)


class Docs(JsonView):
    async def get(self, request: Request) -> Response:
        return self.bytes(static_file("docs.html"), content_type="text/html", headers=PAGE_HEADERS)


class DocsAsset(JsonView):
    async def get(self, request: Request, asset: str) -> Response:
        if asset not in ASSETS:  # a fixed list: no path from the request reaches the file system
            raise NotFound(f"no docs asset {asset!r}")
        path, content_type = ASSETS[asset]
        return self.bytes(
            static_file(path),
            content_type=content_type,
            headers={**PAGE_HEADERS, "Cache-Control": "public, max-age=3600"},
        )


def register_docs_views(app: CoreHost) -> None:
    document: dict[str, Any] = {}
    app.route(
        "/openapi.json",
        tag="docs",
        ingest=True,
        get=Operation(
            "This API's OpenAPI 3.1 document",
            READER,
            {200: Reply("The document, built from the route declarations and their pydantic models")},
        ),
    )(bound(OpenApi, document=document))
    app.route(
        "/docs",
        tag="docs",
        ingest=True,
        get=Operation(
            "Interactive API docs (Swagger UI)", PUBLIC, {200: Reply("The page", None, "text/html")}
        ),
    )(Docs)
    app.route(
        "/docs/{asset}",
        tag="docs",
        ingest=True,
        get=Operation(
            "A file of the docs page (Swagger UI's, packaged)",
            PUBLIC,
            {200: Reply("The file", None, "text/*")},
            errors=(NotFound,),
        ),
    )(DocsAsset)
