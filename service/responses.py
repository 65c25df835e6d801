"""JSON responses rendered by orjson (numpy-aware).

Routes declare their response model for the OpenAPI schema and return this response
directly, so search results skip a per-hit pydantic round trip.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
