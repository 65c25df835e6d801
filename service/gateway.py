"""The service's own middleware, in one layer: what every HTTP request passes through
before a route sees it.

In the order a request meets them:

- a request id: the client's ``X-Request-ID`` if it sent a sane one, else a new one; on
  the request state (error bodies name it) and on every response;
- metrics (:class:`~service.metrics.RequestMetrics`): every request counted and timed,
  those refused here too;
- API keys (:class:`~service.auth.ApiKeys`): a 401 or 403 before the body is read;
- the body size limit (:class:`~service.limits.BodyLimits`): a 413 before reading a
  body declared too large, or as soon as one sent without a length grows past it; and
  the app's settings made visible to the body's checks;
- ``Connection: close`` on any answer started before the body was read to its end.

One layer rather than one middleware each: each layer wraps ``send`` (and some
``receive``) in a closure of its own and adds a coroutine frame per call, and five of
them cost more than a small search's HTTP handling. A websocket (the app has no
websocket routes) is closed when API keys are on, as any route would refuse it.
"""

from __future__ import annotations

import random
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import ApiKeys
from service.limits import BodyLimits, BodyTooLarge
from service.metrics import Metrics, RequestMetrics
from service.routing import RouteTable
from service.settings import Settings

REQUEST_ID_HEADER = "x-request-id"
_ID_HEADER = REQUEST_ID_HEADER.encode()


def request_id(sent: bytes) -> str:
    """The request's id: the client's (``sent``, empty for none) when sane, else a new one.

    A new id is 128 random bits as hex, from the process's Mersenne Twister: ids need to be
    unique, not unguessable, and this costs a tenth of ``secrets`` (a system call)."""
    text = sent.decode("latin-1")
    if 0 < len(text) <= 128 and text.isprintable():
        return text
    return f"{random.getrandbits(128):032x}"


class Gateway:
    """See the module docstring."""

    def __init__(
        self, app: ASGIApp, settings: Settings, metrics: Metrics, routes: RouteTable
    ) -> None:
        self.app = app
        self.keys = ApiKeys(settings, routes)
        self.limits = BodyLimits(settings, routes)
        self.metrics = RequestMetrics(metrics, routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket" and self.keys.enabled:
            await send({"type": "websocket.close", "code": 1008})
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        rid = request_id(headers.get(_ID_HEADER, b""))
        scope.setdefault("state", {})["request_id"] = rid
        id_header = (_ID_HEADER, rid.encode("latin-1"))
        declared = headers.get(b"content-length", b"")
        unread = b"transfer-encoding" in headers or declared not in (b"", b"0")
        status = 500  # unless a response starts: an exception escaped the app
        limit = self.limits.max_bytes(scope)
        received = 0
        exceeded = False  # the body grew past the limit: the answer is a 413
        app_started = False

        async def answer(message: Message) -> None:
            """Every response's way out: its status counted, the request id added, and
            the connection closed after it if the body was left unread."""
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                sent = list(message.get("headers", []))
                sent.append(id_header)
                if unread and not any(name.lower() == b"connection" for name, _ in sent):
                    sent.append((b"connection", b"close"))
                message["headers"] = sent
            await send(message)

        async def app_send(message: Message) -> None:
            nonlocal app_started
            if exceeded and not app_started:
                return  # whatever the app makes of the aborted read, the answer is a 413
            app_started = app_started or message["type"] == "http.response.start"
            await answer(message)

        async def app_receive() -> Message:
            nonlocal unread, received, exceeded
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False  # the last part, or the client went away
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        try:
            refusal = self.keys.refusal(scope, headers)
            if refusal is not None:
                await refusal(scope, receive, answer)
                return
            if declared.isdigit() and int(declared) > limit:
                await self.limits.too_large(scope, limit)(scope, receive, answer)
                return
            token = self.limits.enter()
            try:
                await self.app(scope, app_receive, app_send)
            except Exception:
                if not exceeded or app_started:
                    raise
            finally:
                self.limits.leave(token)
            if exceeded and not app_started:
                await self.limits.too_large(scope, limit)(scope, receive, answer)
        finally:
            self.metrics.record(scope, status, time.perf_counter() - started)
