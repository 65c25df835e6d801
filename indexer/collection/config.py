"""What a collection is, fixed at creation, and the identity that tells it from another."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from indexer.metric import Metric
from indexer.spec import IndexSpec

if TYPE_CHECKING:
    from indexer.store import SqliteStore

MAX_DIM = 65_536


def new_uid() -> str:
    """A collection's identity: new for each collection made, dropped and made again, or
    restored from a snapshot, so that what outlives a collection (a batch job's checkpoint)
    can tell it from another of the same name."""
    return uuid.uuid4().hex


def stored_uid(store: SqliteStore) -> str:
    """The identity of the collection in ``store``, given one now if it has none (it was
    made by a version without identities)."""
    uid = store.get_meta("uid")
    if not isinstance(uid, str):
        uid = store.set_meta_once("uid", new_uid())
    return str(uid)


class CollectionConfig(BaseModel):
    """What a collection is; fixed at creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dim: int = Field(ge=1, le=MAX_DIM)
    metric: Metric = Metric.COSINE
    index: IndexSpec = IndexSpec()
    embedder: str | None = None
    # Keep each point's text (or image hash) in its payload; see indexer.embedders.inputs.
    store_source: bool = False
    # Keep a small JPEG of each image point in the store; see indexer.thumbnails.
    thumbnails: bool = False
