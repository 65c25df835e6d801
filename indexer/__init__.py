"""vecserve's engine: durable collections on SQLite, searched through FAISS indexes."""

from indexer.collection import Collection, CollectionConfig, IndexBuild
from indexer.engine import Engine
from indexer.errors import (
    ChecksumMismatch,
    CollectionExists,
    CollectionNotEmpty,
    CollectionNotFound,
    DataFolderInUse,
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
    InvalidSnapshot,
    InvalidVector,
    PointNotFound,
    SnapshotNotFound,
    ThumbnailNotFound,
    VecserveError,
)
from indexer.metric import Metric
from indexer.points import Hit, Point, PointId
from indexer.snapshots import SnapshotInfo
from indexer.spec import IndexSpec, SearchParams

__all__ = [
    "ChecksumMismatch",
    "Collection",
    "CollectionConfig",
    "CollectionExists",
    "CollectionNotEmpty",
    "CollectionNotFound",
    "DataFolderInUse",
    "DimensionMismatch",
    "DuplicateIds",
    "EmptyBatch",
    "Engine",
    "Hit",
    "IndexBuild",
    "IndexSpec",
    "InvalidFilter",
    "InvalidId",
    "InvalidIndexSpec",
    "InvalidInput",
    "InvalidK",
    "InvalidName",
    "InvalidPayload",
    "InvalidSearchParams",
    "InvalidSnapshot",
    "InvalidVector",
    "Metric",
    "Point",
    "PointId",
    "PointNotFound",
    "SearchParams",
    "SnapshotInfo",
    "SnapshotNotFound",
    "ThumbnailNotFound",
    "VecserveError",
]
