"""Every error is JSON: ``{"error": StableName, "message": ..., "request_id": ...}``.

Engine errors carry their own name and status (see :mod:`indexer.errors`); request
validation failures are ``InvalidRequest`` (422); anything unexpected is logged with its
traceback and answered as ``InternalError`` (500) without details.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from indexer.errors import VecserveError
from service.responses import Json
from service.routing import allowed_methods

log = logging.getLogger(__name__)

_HTTP_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}


class RequestTooLarge(VecserveError):
    """A request over one of the server's limits."""

    status_code = 413


def error_response(request: Request, status: int, name: str, message: str) -> Json:
    request_id = getattr(request.state, "request_id", None)
    return Json({"error": name, "message": message, "request_id": request_id}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VecserveError)
    async def vecserve_error(request: Request, exc: VecserveError) -> Json:
        return error_response(request, exc.status_code, exc.name, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Json:
        errors = exc.errors()
        first: dict[str, Any] = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # loc is ("body", character offset)
            offset = first["loc"][-1]
            message = f"the body is not valid JSON: {first['ctx']['error']} (at character {offset})"
            return error_response(request, 422, "InvalidRequest", message)
        # A validator's own ValueError is the message itself, without pydantic's
        # "Value error, " in front; a check of the whole body names no field.
        error = first.get("ctx", {}).get("error")
        message = str(error) if first.get("type") == "value_error" and error else first["msg"]
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return error_response(
            request, 422, "InvalidRequest", f"{where}: {message}" if where else message
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Json:
        name = _HTTP_NAMES.get(exc.status_code, "HttpError")
        response = error_response(request, exc.status_code, name, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # the router names one route's methods; name them all
            response.headers["Allow"] = ", ".join(
                allowed_methods(request.scope, request.app.routes)
            )
        return response

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Json:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        response = error_response(
            request, 500, "InternalError", "internal error; see the server log"
        )
        # Starlette answers this outside every middleware, so the request id middleware
        # never sees the response: set its header here.
        request_id = getattr(request.state, "request_id", None)
        if request_id is not None:
            response.headers["x-request-id"] = request_id
        # Starlette raises the exception again once this is sent, and uvicorn then drops
        # the connection: say so, or the client sends its next request on the dropped
        # connection and gets a reset (which hides this 500 from it, too).
        response.headers["connection"] = "close"
        return response
