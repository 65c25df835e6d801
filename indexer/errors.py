"""The one error tree of vecserve.

Every error has a stable name (its class name), which the HTTP layer sends as
``{"error": name, "message": ...}`` and the SDK turns back into a typed exception, and the
HTTP status it maps to::

    VecserveError (500)
    ├── InvalidInput (422)
    │   ├── DimensionMismatch
    │   ├── InvalidVector           NaN, infinity, wrong shape
    │   ├── EmptyBatch
    │   ├── DuplicateIds
    │   ├── InvalidId
    │   ├── InvalidName
    │   ├── InvalidFilter
    │   ├── InvalidK
    │   ├── InvalidIndexSpec
    │   ├── InvalidSearchParams
    │   ├── InvalidPayload
    │   ├── InvalidEmbedderInput    undecodable image, text where none is accepted, ...
    │   ├── UnknownEmbedder         a collection asks for a name outside the allowlist
    │   ├── InvalidFullText         a full-text declaration that cannot be built
    │   ├── InvalidPayloadIndex     a payload field index with a bad path or type
    │   ├── InvalidQuery            a query pipeline that cannot run (or bad FTS5 syntax)
    │   └── InvalidSnapshot         a snapshot file that is damaged, unsafe or inconsistent
    │       └── ChecksumMismatch    the file is not the one its SHA-256 names
    ├── NotFound (404)
    │   ├── CollectionNotFound
    │   ├── PointNotFound
    │   ├── EmbedderNotFound        a name outside the server's allowlist
    │   ├── SnapshotNotFound
    │   └── ThumbnailNotFound       a point without a thumbnail
    ├── Conflict (409)
    │   ├── CollectionExists
    │   ├── CollectionNotEmpty      restoring a snapshot onto a collection that has points
    │   └── FullTextNotDeclared     lexical search on a collection without full-text fields
    ├── EmbedderUnavailable (503)   the model could not be loaded
    ├── ShardUnavailable (503)      a shard of a cluster collection cannot answer now
    ├── NotSupported (501)          not offered here (snapshots through a cluster router)
    ├── DataFolderInUse             another engine (in this process or another) has the data
    │                               folder open (raised on open: never sent over HTTP)
    └── JobFailed                   a batch indexing job could not finish (jobs run outside
                                    the server: never sent over HTTP)
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError


class VecserveError(Exception):
    """Base of every error vecserve raises on purpose."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def name(self) -> str:
        """The stable error name sent to clients."""
        return type(self).__name__


class InvalidInput(VecserveError):
    status_code = 422


class DimensionMismatch(InvalidInput):
    pass


class InvalidVector(InvalidInput):
    pass


class EmptyBatch(InvalidInput):
    pass


class DuplicateIds(InvalidInput):
    pass


class InvalidId(InvalidInput):
    pass


class InvalidName(InvalidInput):
    pass


class InvalidFilter(InvalidInput):
    pass


class InvalidK(InvalidInput):
    pass


class InvalidIndexSpec(InvalidInput):
    pass


class InvalidSearchParams(InvalidInput):
    pass


class InvalidPayload(InvalidInput):
    pass


class InvalidEmbedderInput(InvalidInput):
    pass


class UnknownEmbedder(InvalidInput):
    pass


class InvalidSnapshot(InvalidInput):
    pass


class ChecksumMismatch(InvalidSnapshot):
    pass


class InvalidFullText(InvalidInput):
    pass


class InvalidPayloadIndex(InvalidInput):
    pass


class InvalidQuery(InvalidInput):
    pass


class NotFound(VecserveError):
    status_code = 404


class CollectionNotFound(NotFound):
    pass


class PointNotFound(NotFound):
    pass


class ThumbnailNotFound(NotFound):
    """The point exists but has no thumbnail."""


class EmbedderNotFound(NotFound):
    pass


class SnapshotNotFound(NotFound):
    pass


class Conflict(VecserveError):
    status_code = 409


class CollectionExists(Conflict):
    pass


class CollectionNotEmpty(Conflict):
    pass


class FullTextNotDeclared(Conflict):
    pass


class EmbedderUnavailable(VecserveError):
    status_code = 503


class ShardUnavailable(VecserveError):
    """A shard of a cluster collection (named in the message) did not answer in time:
    it is restarting, or its node is gone. Nothing is answered from the other shards,
    unless a query asked for a partial answer (``QueryPlan.partial``)."""

    status_code = 503


class NotSupported(VecserveError):
    status_code = 501


class DataFolderInUse(VecserveError):
    """Another engine, in this process or another, has the data folder open: two engines
    on one folder would each miss the other's writes."""


class JobFailed(VecserveError):
    """A batch indexing job could not finish: its input could not be read, none of its
    records could be indexed, or the server it sends points to refused them or could not
    be reached."""


Model = TypeVar("Model", bound=BaseModel)


def validated(
    model: type[Model], value: object, error: type[VecserveError], root: str, prefix: str = ""
) -> Model:
    """``value`` as a ``model`` (as it is, when it is one already); else ``error`` saying
    ``prefix`` and where the first problem is (see :func:`validation_message`)."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise error(prefix + validation_message(exc, root)) from None


def validation_message(exc: ValidationError, root: str) -> str:
    """``where: what`` of the first problem pydantic found; ``root`` names the value
    itself when the problem is at its top."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or root
    return f"{where}: {err['msg']}"
