"""The retry transport of the async client: sends each request through the real
transport, again as :mod:`vecserve_client._transport._policy` says."""

from __future__ import annotations

import asyncio

import httpx

from vecserve_client._transport._policy import (
    RETRY_ERRORS,
    RETRY_EXTENSION,
    RETRY_STATUSES,
    Retries,
    wait_for,
)


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """Sends each request through ``transport``, retrying as :class:`Retries` says the
    requests marked with :data:`RETRY_EXTENSION`."""

    def __init__(self, transport: httpx.AsyncBaseTransport, retries: Retries) -> None:
        self._transport = transport
        self._retries = retries

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.extensions.get(RETRY_EXTENSION):
            return await self._transport.handle_async_request(request)
        retry = 1
        while True:
            try:
                response = await self._transport.handle_async_request(request)
            except RETRY_ERRORS:
                delay = self._retries.delay(retry)
                if delay is None:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                await response.aread()  # a short error, whose name says whether to retry
                delay = wait_for(self._retries, retry, response)
                if delay is None:
                    return response
                await response.aclose()
            await asyncio.sleep(delay)
            retry += 1

    async def aclose(self) -> None:
        await self._transport.aclose()
