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
    FullTextNotDeclared,
    InvalidFilter,
    InvalidFullText,
    InvalidId,
    InvalidIndexSpec,
    InvalidInput,
    InvalidK,
    InvalidName,
    InvalidPayload,
    InvalidQuery,
    InvalidSearchParams,
    InvalidSnapshot,
    InvalidVector,
    PointNotFound,
    SnapshotNotFound,
    VecserveError,
)
from indexer.fulltext import FullTextSpec
from indexer.metric import Metric
from indexer.points import Hit, Point, PointId
from indexer.query import QueryHit, QueryPlan, QueryResult, RerankerConfig
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
    "FullTextNotDeclared",
    "FullTextSpec",
    "Hit",
    "IndexBuild",
    "IndexSpec",
    "InvalidFilter",
    "InvalidFullText",
    "InvalidId",
    "InvalidIndexSpec",
    "InvalidInput",
    "InvalidK",
    "InvalidName",
    "InvalidPayload",
    "InvalidQuery",
    "InvalidSearchParams",
    "InvalidSnapshot",
    "InvalidVector",
    "Metric",
    "Point",
    "PointId",
    "PointNotFound",
    "QueryHit",
    "QueryPlan",
    "QueryResult",
    "RerankerConfig",
    "SearchParams",
    "SnapshotInfo",
    "SnapshotNotFound",
    "VecserveError",
]
