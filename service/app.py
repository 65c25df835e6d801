"""The FastAPI application: ``create_app(settings)``, with no import-time globals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexer import Engine
from service.errors import install_error_handlers
from service.responses import Json
from service.routes import collections, health, points, search
from service.settings import Settings

REQUEST_ID_HEADER = "x-request-id"


class RequestIdMiddleware:
    """Give every request an id (the client's ``X-Request-ID`` if it sent a sane one),
    put it on the request state for error bodies, and on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = sent if 0 < len(sent) <= 128 and sent.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The vecserve HTTP API over the collections in ``settings.data_dir``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = Engine(settings.data_dir, device=settings.device)
        app.state.engine = engine
        engine.open_all()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            engine.close()  # finishes background work and saves indexes

    app = FastAPI(
        title="vecserve",
        summary="Vector search with embedding, on CPU or GPU.",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=Json,
    )
    app.state.settings = settings
    app.state.ready = False
    install_error_handlers(app)
    for module in (health, collections, points, search):
        app.include_router(module.router)
    app.add_middleware(RequestIdMiddleware)
    return app
