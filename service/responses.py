"""Responses: JSON rendered by orjson (numpy-aware), and a file already open.

Routes declare their response model for the OpenAPI schema and return :class:`Json`
directly, so search results skip a per-hit pydantic round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import IO, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class OpenFileResponse(StreamingResponse):
    """Sends a file the route has already opened, and closes it however the sending ends.

    Unlike Starlette's ``FileResponse``, which opens its path only once the answer has
    started, nothing can go missing here after the route has answered: a file deleted
    meanwhile (a snapshot deleted by another request) is still read to its end.
    """

    chunk_size = 256 * 1024

    def __init__(
        self,
        file: IO[bytes],
        size: int,
        media_type: str,
        filename: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.file = file
        disposition = {"content-disposition": f'attachment; filename="{filename}"'}
        super().__init__(
            self._chunks(),
            media_type=media_type,
            headers={**(headers or {}), "content-length": str(size), **disposition},
        )

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await run_in_threadpool(self.file.read, self.chunk_size):
            yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.file.close()
