"""The store of record: one SQLite database (WAL mode) per collection.

Each point is a row with an internal integer *label* (what FAISS indexes hold), the user's
id, the vector as written (float32 blob) and a JSON payload. Labels come from an
AUTOINCREMENT sequence and are never reused: an update writes a new row under a new
label and deletes the old one. So a label present both in an index and in the store
always means the same vector, and an index is brought up to date by comparing label sets.

``meta.seq`` counts committed write transactions; a saved index records the seq it covers.

A point may have a small thumbnail (a JPEG, in ``thumbnails`` under its label), written
with it and deleted with it, so it goes where the point goes: backups, snapshots.
Payload fields declared for indexing are listed in ``meta.payload_indexes``; their
indexes are in memory, derived from the payloads (:mod:`indexer.payload_index`).
With full-text fields declared (``meta.full_text``, see :mod:`indexer.fulltext`), an FTS5
table ``ft`` holds each point's words under its label, written in the same transaction as
the point. Points that were there before the declaration are indexed afterwards in
batches (``meta.full_text_backlog``: the labels ``after < label <= until`` still to do).

One writer at a time (the collection's write lock); any number of readers, each thread on
its own connection. A write is acknowledged only after its transaction commits.

One concept a module: ``sqlite_store`` (:class:`SqliteStore`: opening, metadata and
every read), ``transaction`` (:class:`Transaction`: every write), ``connections`` (the
writer's connection and the readers' lent to threads), ``schema`` (the tables, and how
labels travel to SQL).
"""

from indexer.store.sqlite_store import SqliteStore
from indexer.store.transaction import Transaction

__all__ = ["SqliteStore", "Transaction"]
