"""The retry transport of the sync client: sends each request through the real
transport, again as :mod:`vecserve_client._transport._policy` says.

Generated from _async_retry.py by scripts/unasync.py; do not edit.
"""

from __future__ import annotations

import time

import httpx

from vecserve_client._transport._policy import (
    RETRY_ERRORS,
    RETRY_EXTENSION,
    RETRY_STATUSES,
    Retries,
    wait_for,
)


class RetryTransport(httpx.BaseTransport):
    """Sends each request through ``transport``, retrying as :class:`Retries` says the
    requests marked with :data:`RETRY_EXTENSION`."""

    def __init__(self, transport: httpx.BaseTransport, retries: Retries) -> None:
        self._transport = transport
        self._retries = retries

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.extensions.get(RETRY_EXTENSION):
            return self._transport.handle_request(request)
        retry = 1
        while True:
            try:
                response = self._transport.handle_request(request)
            except RETRY_ERRORS:
                delay = self._retries.delay(retry)
                if delay is None:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                response.read()  # a short error, whose name says whether to retry
                delay = wait_for(self._retries, retry, response)
                if delay is None:
                    return response
                response.close()
            time.sleep(delay)
            retry += 1

    def close(self) -> None:
        self._transport.close()
