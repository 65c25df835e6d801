"""Hybrid retrieval: the query pipeline (prefetch stages -> fusion -> rerank -> page).

One module per step: :mod:`~indexer.query.plan` (the query as data),
:mod:`~indexer.query.lexical` (words to FTS5), :mod:`~indexer.query.fusion`,
:mod:`~indexer.query.mmr`, :mod:`~indexer.query.rerank` (cross-encoders) and
:mod:`~indexer.query.pipeline`, which runs a plan over a collection.
"""

from indexer.query.fusion import FusionMethod, Ranking, fuse
from indexer.query.pipeline import QueryHit, QueryResult, QuerySource, run_query
from indexer.query.plan import QueryPlan
from indexer.query.rerank import RerankerConfig, RerankerRegistry

__all__ = [
    "FusionMethod",
    "QueryHit",
    "QueryPlan",
    "QueryResult",
    "QuerySource",
    "Ranking",
    "RerankerConfig",
    "RerankerRegistry",
    "fuse",
    "run_query",
]
