"""The HTTP side of the ``ramp`` deployment: the FastAPI app, its OpenAPI schema, error answers
and body reading. The routes themselves are methods of ``app.PolicyServer`` (they need its state).
"""

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from ramp import __version__
from ramp.deploy import protocol as P
from ramp.deploy import schemas
from ramp.deploy.auth import retry_after_header

log = logging.getLogger("ramp.deploy")
THREAD_DECODE_BYTES = 64 * 1024  # bodies bigger than this are decoded off the event loop


api = FastAPI(
    title="ramp serving API",
    version=__version__,
    description="Action chunks for robots, episode uploads, and the openpi protocol "
    "(docs/api.md). WebSocket routes: /v1/stream, /v1/openpi.",
)
ERRORS = {
    400: {"model": schemas.ErrorOut, "description": "malformed body"},
    401: {"model": schemas.ErrorOut, "description": "missing or invalid robot token"},
    413: {"model": schemas.ErrorOut, "description": "body over the size limit"},
    415: {"model": schemas.ErrorOut, "description": "not JSON or msgpack"},
    422: {"model": schemas.ErrorOut, "description": "invalid content; 'field' names it"},
    429: {"model": schemas.ErrorOut, "description": "over the robot's rate limit"},
}
BODY_DOC_MODELS = {"act": schemas.ObservationIn, "episodes": schemas.EpisodeIn}


def body_doc(name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{BODY_DOC_MODELS[name].__name__}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ref},
                "application/msgpack": {"schema": ref},
            },
        }
    }


def _openapi() -> dict[str, Any]:
    """FastAPI's schema plus the body models it cannot see (the routes decode bodies by hand)."""
    if api.openapi_schema:
        return api.openapi_schema
    schema = get_openapi(
        title=api.title, version=api.version, description=api.description, routes=api.routes
    )
    _, defs = models_json_schema(
        [(m, "validation") for m in BODY_DOC_MODELS.values()],
        ref_template="#/components/schemas/{model}",
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
    schema["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
    }
    api.openapi_schema = schema
    return schema


api.openapi = _openapi  # type: ignore[method-assign]


def error_response(err: P.ProtocolError) -> Response:
    headers = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="ramp"'
    if err.status == 429 and getattr(err, "retry_after", None) is not None:
        headers["Retry-After"] = retry_after_header(err.retry_after)
    return Response(
        P.encode(err.to_json(), P.JSON), err.status, headers, media_type=P.MEDIA[P.JSON]
    )


@api.exception_handler(P.ProtocolError)
async def _protocol_error(request: Request, err: P.ProtocolError) -> Response:
    return error_response(err)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, err: StarletteHTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
    return error_response(P.ProtocolError(err.status_code, "path", str(err.detail), code))


@api.exception_handler(Exception)
async def _internal_error(request: Request, err: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error_response(
        P.ProtocolError(500, "", f"internal error ({type(err).__name__})", "internal")
    )


async def read_body(request: Request, limit: int, setting: str) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    size = request.headers.get("content-length")
    if size is not None:
        if not size.strip().isdigit():
            raise P.ProtocolError(400, "content-length", "is not a byte count", "malformed_body")
        if int(size) > limit:
            raise P.ProtocolError(
                413,
                "body",
                f"{int(size)} bytes exceed the limit of {limit} ({setting})",
                "body_too_large",
            )
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise P.ProtocolError(
                413, "body", f"more than {limit} bytes ({setting})", "body_too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def decode(body: bytes | str, fmt: str) -> Any:
    if len(body) > THREAD_DECODE_BYTES:
        return await asyncio.to_thread(P.decode, body, fmt)
    return P.decode(body, fmt)


class ServerFault(P.ProtocolError):
    """A failure that is not the client's: answered with a 5xx and a message, never a crash."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(status, "", message, code)


def frame(msg: dict[str, Any]) -> tuple[bytes | str, str]:
    if msg.get("bytes") is not None:
        return msg["bytes"], P.MSGPACK
    return msg.get("text") or "", P.JSON
