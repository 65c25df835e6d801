"""Every error the SDK raises on purpose, in one tree::

    VecserveError
    ├── TransportError              no answer came back; the request may or may not have run
    │   ├── ConnectError            the server could not be reached
    │   └── TimeoutException        no answer within the timeout
    └── APIError                    the server answered with an error
        ├── BadRequest (400)
        ├── Unauthorized (401)      no API key, or an unknown one
        ├── Forbidden (403)         a read-only key on a write
        ├── NotFound (404)
        │   ├── CollectionNotFound
        │   ├── PointNotFound
        │   ├── EmbedderNotFound    a model outside the server's allowlist
        │   └── SnapshotNotFound
        ├── MethodNotAllowed (405)
        ├── Conflict (409)
        │   ├── CollectionExists    the name is taken by a different configuration
        │   ├── CollectionNotEmpty  restoring a snapshot onto a collection with points
        │   └── FullTextNotDeclared lexical search on a collection without full-text fields
        ├── RequestTooLarge (413)   over one of the server's limits (also PayloadTooLarge)
        ├── UnsupportedMediaType (415)
        ├── InvalidInput (422)
        │   ├── InvalidRequest      the body does not match the API's schema
        │   ├── DimensionMismatch
        │   ├── InvalidVector       NaN, infinity, wrong shape
        │   ├── EmptyBatch
        │   ├── DuplicateIds
        │   ├── InvalidId
        │   ├── InvalidName
        │   ├── InvalidFilter
        │   ├── InvalidK
        │   ├── InvalidIndexSpec
        │   ├── InvalidSearchParams
        │   ├── InvalidPayload
        │   ├── InvalidEmbedderInput
        │   ├── UnknownEmbedder     a collection asks for a model outside the allowlist
        │   ├── InvalidFullText     a full-text declaration that cannot be built
        │   ├── InvalidPayloadIndex a payload field index with a bad path or type
        │   ├── InvalidQuery        a query pipeline that cannot run (or bad FTS5 syntax)
        │   └── InvalidSnapshot     a snapshot file that is damaged, unsafe or inconsistent
        │       └── ChecksumMismatch  the file is not the one its SHA-256 names (found by
        │                             the server on restore, or by the SDK on download)
        ├── RateLimited (429)       carries ``retry_after`` in seconds
        └── ServerError (5xx)
            ├── InternalError (500)
            ├── NotSupported (501)
            └── ServiceUnavailable (503)
                ├── EmbedderUnavailable
                └── ShardUnavailable

The server sends each error as ``{"error": name, "message": ..., "request_id": ...}``;
:func:`error_from_response` rebuilds the class of that name, and falls back on the HTTP
status for a name this SDK does not know (a newer server), so ``except NotFound`` still
catches it. Arguments the SDK can reject without asking the server (a query given twice,
vectors and ids of different lengths) raise the built-in ``ValueError`` or ``TypeError``;
the exception is ids repeated in one upsert, which raise :class:`DuplicateIds` (as the
server does for one batch) before any batch is sent.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Required, TypedDict, Unpack

import httpx


class VecserveError(Exception):
    """Base of every error the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransportError(VecserveError):
    """No answer came back: the request may or may not have been applied."""


class ConnectError(TransportError):
    """The server could not be reached."""


class TimeoutException(TransportError):
    """No answer came back within the timeout."""


class _ErrorDetails(TypedDict, total=False):
    """The keyword arguments of :class:`APIError` beside the message."""

    status_code: Required[int]
    name: str | None
    request_id: str | None
    response: httpx.Response | None


class APIError(VecserveError):
    """The server answered with an error.

    Attributes:
        status_code: the HTTP status.
        name: the server's stable error name (``"CollectionNotFound"``), or None when the
            answer was not vecserve's error JSON (a proxy's error page, say).
        message: what went wrong, in words.
        request_id: the server's id for the request, to find it in the server's log.
        response: the HTTP response, with its headers.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        name: str | None = None,
        request_id: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.name = name
        self.request_id = request_id
        self.response = response

    def __str__(self) -> str:
        head = f"{self.name or type(self).__name__} ({self.status_code}): {self.message}"
        return f"{head} [request {self.request_id}]" if self.request_id else head


class BadRequest(APIError):
    """The request could not be understood (400)."""


class Unauthorized(APIError):
    """No API key was given, or the server does not know it (401)."""


class Forbidden(APIError):
    """The API key may not do this, e.g. a read-only key asked to write (403)."""


class NotFound(APIError):
    """Something named in the request does not exist (404)."""


class CollectionNotFound(NotFound):
    """No collection has that name."""


class PointNotFound(NotFound):
    """No point has that id."""


class EmbedderNotFound(NotFound):
    """The embedder is not in the server's allowlist."""


class SnapshotNotFound(NotFound):
    """The collection has no snapshot of that name."""


class ThumbnailNotFound(NotFound):
    """The point has no thumbnail."""


class MethodNotAllowed(APIError):
    """The path exists but not with that HTTP method (405)."""


class Conflict(APIError):
    """The request conflicts with the server's state (409)."""


class CollectionExists(Conflict):
    """A collection of that name exists with a different configuration."""


class CollectionNotEmpty(Conflict):
    """A snapshot cannot be restored onto a collection that holds points."""


class FullTextNotDeclared(Conflict):
    """A lexical stage on a collection that has no full-text fields: declare them first."""


class RequestTooLarge(APIError):
    """The request is over one of the server's limits (413): points per upsert, queries
    per batch, payload or body size. Upserts split into batches to stay under it."""


class UnsupportedMediaType(APIError):
    """The body's content type is not one the route accepts (415)."""


class InvalidInput(APIError):
    """The request is well formed but its values are not acceptable (422)."""


class InvalidRequest(InvalidInput):
    """The body does not match the API's schema."""


class DimensionMismatch(InvalidInput):
    """A vector's length differs from the collection's dimension."""


class InvalidVector(InvalidInput):
    """A vector holds NaN or infinity, or has the wrong shape."""


class EmptyBatch(InvalidInput):
    """A batch with nothing in it."""


class DuplicateIds(InvalidInput):
    """The same id appears twice in one upsert."""


class InvalidId(InvalidInput):
    """An id that is neither a string nor an integer in range."""


class InvalidName(InvalidInput):
    """A collection name the server does not accept."""


class InvalidFilter(InvalidInput):
    """A filter that does not parse."""


class InvalidK(InvalidInput):
    """``k`` below 1 or above the server's limit."""


class InvalidIndexSpec(InvalidInput):
    """An index spec the server does not accept."""


class InvalidSearchParams(InvalidInput):
    """Search parameters the index does not accept."""


class InvalidPayload(InvalidInput):
    """A payload that is not a JSON object the server can store."""


class InvalidEmbedderInput(InvalidInput):
    """An undecodable image, a text for a collection without a text embedder, and so on."""


class UnknownEmbedder(InvalidInput):
    """A new collection asks for an embedder outside the server's allowlist."""


class InvalidFullText(InvalidInput):
    """A full-text declaration that cannot be built (a bad path, weight or tokenizer)."""


class InvalidPayloadIndex(InvalidInput):
    """A payload field index that cannot be declared (a bad path or type)."""


class InvalidQuery(InvalidInput):
    """A query pipeline that cannot run: a bad plan, a reranker outside the server's
    allowlist, or an FTS5 expression (``match="fts5"``) that does not parse."""


class InvalidSnapshot(InvalidInput):
    """A snapshot file that is damaged, unsafe or inconsistent."""


class ChecksumMismatch(InvalidSnapshot):
    """A snapshot file is not the one its SHA-256 names: found by the server when
    restoring, or by the SDK when downloading (then ``status_code`` is the download's)."""


class RateLimited(APIError):
    """Too many requests (429). ``retry_after`` is the server's suggested wait in
    seconds, or None when it gave none."""

    def __init__(self, message: str, **details: Unpack[_ErrorDetails]) -> None:
        super().__init__(message, **details)
        response = details.get("response")
        self.retry_after = retry_after(response) if response is not None else None


class ServerError(APIError):
    """The server failed (5xx)."""


class InternalError(ServerError):
    """An unexpected failure on the server (500); its log has the details."""


class ServiceUnavailable(ServerError):
    """The server cannot answer now (503): starting, or a dependency is down."""


class EmbedderUnavailable(ServiceUnavailable):
    """The collection's embedding model could not be loaded."""


class ShardUnavailable(ServiceUnavailable):
    """A shard of a cluster collection (named in the message) cannot answer now; the
    cluster restarts it. Nothing was answered from the other shards (a query with
    ``partial=True`` gets their answer instead, naming the shard in ``missing_shards``)."""


class NotSupported(ServerError):
    """The server does not offer this (a cluster router takes no snapshots)."""


_BY_NAME: dict[str, type[APIError]] = {
    cls.__name__: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        CollectionNotFound,
        PointNotFound,
        EmbedderNotFound,
        SnapshotNotFound,
        ThumbnailNotFound,
        MethodNotAllowed,
        Conflict,
        CollectionExists,
        CollectionNotEmpty,
        FullTextNotDeclared,
        RequestTooLarge,
        UnsupportedMediaType,
        InvalidInput,
        InvalidRequest,
        DimensionMismatch,
        InvalidVector,
        EmptyBatch,
        DuplicateIds,
        InvalidId,
        InvalidName,
        InvalidFilter,
        InvalidK,
        InvalidIndexSpec,
        InvalidSearchParams,
        InvalidPayload,
        InvalidEmbedderInput,
        UnknownEmbedder,
        InvalidFullText,
        InvalidPayloadIndex,
        InvalidQuery,
        InvalidSnapshot,
        ChecksumMismatch,
        RateLimited,
        InternalError,
        ServiceUnavailable,
        EmbedderUnavailable,
        ShardUnavailable,
        NotSupported,
    )
}
# The HTTP framework's own name for 413, answered before vecserve's limits are checked.
_BY_NAME["PayloadTooLarge"] = RequestTooLarge

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: RequestTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: RateLimited,
    500: InternalError,
    503: ServiceUnavailable,
}


def error_class(name: str | None, status_code: int) -> type[APIError]:
    """The exception class for an error name, or for the status when the name is unknown."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    return ServerError if status_code >= 500 else APIError


def error_from_response(response: httpx.Response) -> APIError:
    """The typed exception for an error response (which must have been read)."""
    name: str | None = None
    message = response.text[:500] or response.reason_phrase
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        name = body["error"]
        message = str(body.get("message", message))
        request_id = body.get("request_id") or request_id
    cls = error_class(name, response.status_code)
    return cls(
        message,
        status_code=response.status_code,
        name=name,
        request_id=request_id,
        response=response,
    )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds that the response's ``Retry-After`` asks to wait (given as seconds or as an
    HTTP date, which a proxy in front of the server may send), or None without one."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def transport_error(exc: httpx.TransportError) -> TransportError:
    """The SDK's error for an httpx transport failure (the original is its cause)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutException(message)
    if isinstance(exc, httpx.ConnectError):
        return ConnectError(message)
    return TransportError(message)
