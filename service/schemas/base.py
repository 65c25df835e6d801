"""The building blocks of the HTTP bodies: strict bodies, whole numbers, point ids,
filters, and the error body."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

from indexer.points import INTEGER_ID_SCHEMA, STRING_ID_SCHEMA
from service.filter_schema import FILTER_SCHEMA
from service.limits import check_filter_depth


def whole(value: object) -> object:
    """A JSON number with no fractional part (``10.0``) is that integer, as JSON Schema's
    ``integer`` says; strict validation would refuse it as a float."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


# An integer, written ``10`` or ``10.0``.
WholeNumber = Annotated[int, BeforeValidator(whole)]
# The schemas say what the engine checks after parsing (InvalidId), so that clients
# generated from them send only ids the server takes.
PointIdModel = (
    Annotated[StrictStr, WithJsonSchema(STRING_ID_SCHEMA)]
    | Annotated[StrictInt, BeforeValidator(whole), WithJsonSchema(INTEGER_ID_SCHEMA)]
)
# The server's limits (max_filter_depth, max_dim) are checked as bodies are parsed.
Filter = Annotated[
    dict[str, Any], AfterValidator(check_filter_depth), WithJsonSchema(FILTER_SCHEMA)
]
# Base64 of little-endian float32 values: a whole number of 4-byte values.
FLOAT32_B64 = r"^(?:[A-Za-z0-9+/]{16})*(?:[A-Za-z0-9+/]{6}==|[A-Za-z0-9+/]{11}=)?$"
# Base64 (padding optional), or a data URL of it.
IMAGE_B64 = (
    r"^(?:data:[^,]*;base64,)?(?:[A-Za-z0-9+/]{4})*"
    r"(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$"
)


class Body(BaseModel):
    # Strict: a JSON body means what it says (`0` is not `false`, `"5"` is not `5`).
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    """Every error: a stable name (the SDK raises the exception of that name), a message
    for people, and the request id (also in the ``X-Request-ID`` header)."""

    error: str = Field(examples=["CollectionNotFound"])
    message: str
    request_id: str | None
