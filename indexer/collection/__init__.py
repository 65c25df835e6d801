"""Collections: points in a SQLite store of record, served from a FAISS index cache.

:class:`Collection` keeps the public API and every lock; the work goes to lock-free parts,
one concept a module: ``writes`` (a write's batch, prepared before any lock), ``reader``
(filters, searches, points, pages and recommendations, under the read lock), ``point_ids``
(label <-> user id), ``search`` (search planning and the filter cache), ``recommend`` (the
strategies), ``upkeep`` (opening, building, saving and judging the index),
``served_index`` (the index served: its changes, staging, saves and swap for a rebuilt
one; and the backlog that holds bulk upserts back during a rebuild), ``lifecycle``
(maintenance in the background or on ``optimize()``, and the close), ``background``
(the one thread of maintenance, of full-text indexing or of payload backfill, and work
done a batch at a time), ``payload_fields`` (payload index declaration and backfill),
``results`` (hits), ``plain_search``
(the most common search, one vector and nothing else, in as few steps as answer it),
``validation`` (k, page sizes and payloads), ``hybrid`` (the query pipeline's rankings
from this collection, and full-text backlog indexing).
"""

from indexer.collection._collection import Collection
from indexer.collection.config import MAX_DIM, CollectionConfig, new_uid
from indexer.collection.upkeep import INDEX_FILE, IndexBuild, IndexBuildObserver
from indexer.collection.validation import MAX_K

__all__ = [
    "INDEX_FILE",
    "MAX_DIM",
    "MAX_K",
    "Collection",
    "CollectionConfig",
    "IndexBuild",
    "IndexBuildObserver",
    "new_uid",
]
