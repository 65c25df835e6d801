"""What a collection is, fixed at creation, and the identity that tells it from another."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from indexer.metric import Metric
from indexer.spec import IndexSpec

MAX_DIM = 65_536


def new_uid() -> str:
    """A collection's identity: new for each collection made, dropped and made again, or
    restored from a snapshot, so that what outlives a collection (a batch job's checkpoint)
    can tell it from another of the same name."""
    return uuid.uuid4().hex


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
