"""Liveness and readiness."""

from __future__ import annotations

from fastapi import Request, Response

from service.responses import Json
from service.routing import ApiRouter

router = ApiRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
async def healthz() -> Response:
    """The process is up."""
    return Json({"status": "ok"})


@router.get("/readyz", operation_id="readyz")
async def readyz(request: Request) -> Response:
    """Every collection is open and its index loaded: the server can answer searches."""
    if not getattr(request.app.state, "ready", False):
        return Json({"status": "starting"}, status_code=503)
    return Json({"status": "ready"})
