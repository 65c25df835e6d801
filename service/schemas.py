"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from indexer.errors import InvalidVector
from indexer.spec import IndexSpec, SearchParams

PointIdModel = StrictStr | StrictInt
Filter = dict[str, Any]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VectorInput(Body):
    """A vector as a JSON array, or as base64 of little-endian float32 (the fast path)."""

    vector: list[float] | None = None
    vector_b64: str | None = None

    def array(self) -> np.ndarray:
        if self.vector_b64 is not None:
            try:
                raw = base64.b64decode(self.vector_b64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidVector("vector_b64 is not valid base64") from None
            if len(raw) % 4:
                raise InvalidVector("vector_b64 must hold little-endian float32 values")
            return np.frombuffer(raw, dtype="<f4")
        if self.vector is not None:
            return np.asarray(self.vector, dtype=np.float32)
        raise InvalidVector("no vector given")


def stack(vectors: list[np.ndarray]) -> Any:
    """One [n, dim] matrix, or the ragged list as it is (the engine says what is wrong)."""
    return np.stack(vectors) if len({len(v) for v in vectors}) == 1 else vectors


# -- collections ---------------------------------------------------------------------------


class CreateCollection(Body):
    dim: int = Field(ge=1, le=65_536)
    metric: Literal["cosine", "dot", "l2"] = "cosine"
    index: IndexSpec | Literal["auto", "flat", "ivf_flat", "ivf_pq", "hnsw"] = "auto"
    embedder: str | None = None


class CollectionInfo(BaseModel):
    name: str
    dim: int
    metric: str
    index: dict[str, Any]
    embedder: str | None
    count: int
    serving: dict[str, Any] = Field(description="the index serving now: family, device, ...")


class CollectionList(BaseModel):
    collections: list[str]


# -- points ----------------------------------------------------------------------------------


class PointIn(VectorInput):
    id: PointIdModel
    payload: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_vector(self) -> PointIn:
        if (self.vector is None) == (self.vector_b64 is None):
            raise ValueError("give exactly one of vector or vector_b64")
        return self


class Upsert(Body):
    points: list[PointIn] = Field(min_length=1)


class Upserted(BaseModel):
    upserted: int


class GetPoints(Body):
    ids: list[PointIdModel] = Field(min_length=1)
    with_vector: bool = False


class PointOut(BaseModel):
    id: PointIdModel
    payload: dict[str, Any]
    vector: list[float] | None = None


class Points(BaseModel):
    points: list[PointOut]


class DeletePoints(Body):
    ids: list[PointIdModel] | None = Field(default=None, min_length=1)
    filter: Filter | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> DeletePoints:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids or filter")
        return self


class Deleted(BaseModel):
    deleted: int


class Scroll(Body):
    limit: int = Field(default=100, ge=1, le=10_000)
    cursor: str | None = None
    filter: Filter | None = None
    with_vector: bool = False


class ScrollPage(Points):
    next_cursor: str | None


# -- search ----------------------------------------------------------------------------------


class Search(VectorInput):
    """Search by a vector, or by the id of a stored point (which is then left out)."""

    id: PointIdModel | None = None
    k: int = Field(default=10, ge=1)
    filter: Filter | None = None
    params: SearchParams | None = None
    with_payload: bool = True
    with_vector: bool = False

    @model_validator(mode="after")
    def _one_query(self) -> Search:
        given = sum(x is not None for x in (self.vector, self.vector_b64, self.id))
        if given != 1:
            raise ValueError("give exactly one of vector, vector_b64 or id")
        return self


class SearchBatch(Body):
    searches: list[Search] = Field(min_length=1)


class HitOut(BaseModel):
    id: PointIdModel
    score: float
    payload: dict[str, Any] | None = None
    vector: list[float] | None = None


class Hits(BaseModel):
    hits: list[HitOut]


class BatchHits(BaseModel):
    results: list[Hits]


class Recommend(Body):
    """Examples are point ids or vectors (JSON arrays)."""

    positive: list[PointIdModel | list[float]] = Field(min_length=1)
    negative: list[PointIdModel | list[float]] = Field(default_factory=list)
    strategy: Literal["average", "best_score"] = "average"
    k: int = Field(default=10, ge=1)
    filter: Filter | None = None
    params: SearchParams | None = None
    with_payload: bool = True
    with_vector: bool = False
