"""vecserve's engine: durable collections on SQLite, searched through FAISS indexes."""

from indexer.collection import Collection, CollectionConfig
from indexer.engine import Engine
from indexer.errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    DuplicateIds,
    EmptyBatch,
    InvalidFilter,
    InvalidId,
    InvalidIndexSpec,
    InvalidInput,
    InvalidK,
    InvalidName,
    InvalidPayload,
    InvalidSearchParams,
    InvalidVector,
    PointNotFound,
    VecserveError,
)
from indexer.metric import Metric
from indexer.points import Hit, Point, PointId
from indexer.spec import IndexSpec, SearchParams

__all__ = [
    "Collection",
    "CollectionConfig",
    "CollectionExists",
    "CollectionNotFound",
    "DimensionMismatch",
    "DuplicateIds",
    "EmptyBatch",
    "Engine",
    "Hit",
    "IndexSpec",
    "InvalidFilter",
    "InvalidId",
    "InvalidIndexSpec",
    "InvalidInput",
    "InvalidK",
    "InvalidName",
    "InvalidPayload",
    "InvalidSearchParams",
    "InvalidVector",
    "Metric",
    "Point",
    "PointId",
    "PointNotFound",
    "SearchParams",
    "VecserveError",
]
