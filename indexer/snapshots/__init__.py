"""Collection snapshots: a collection at one point in time, in one tar file.

A snapshot is an uncompressed tar (GNU format) with these members, in this order::

    manifest.json   {"format": 1, "collection", "created_at", "seq", "points", "config",
                     "members": [{"name", "size", "sha256"}, ...]}  (every other member)
    config.json     the collection's configuration
    store.sqlite3   a copy of the store made by SQLite's online backup in one read
                    transaction: every write committed up to ``seq``, none after
    index.vsi       the saved FAISS index, when there is one; a cache that may cover an
                    older seq (it is caught up from the store when used)

Beside ``NAME.tar`` lies ``NAME.tar.sha256``, the SHA-256 of the whole file in
``sha256sum`` format. Snapshots live in ``DATA/snapshots/COLLECTION/``, outside the
collections folder, and outlive the collection they were taken from.

Restoring treats the file as hostile. Its SHA-256 must match the one given; the raw tar
headers are walked before :mod:`tarfile` parses them, so that only regular files of sizes
the file can hold get through (no links, devices, FIFOs, directories, or pax and GNU
long-name headers, which :mod:`tarfile` would read whole into memory); every member must
be one of the names above, listed in the manifest with its size and SHA-256. Members are
never extracted by name: their bytes are copied to paths the caller chose. The database is
then checked (schema, ``PRAGMA integrity_check``, the manifest's config, seq and count,
vector lengths, ids and payloads) with schema-defined functions off. Nothing is unpickled.
"""

from indexer.snapshots.area import SnapshotArea, unpack
from indexer.snapshots.manifest import SNAPSHOT_NAME, SnapshotInfo, checked_sha256

__all__ = ["SNAPSHOT_NAME", "SnapshotArea", "SnapshotInfo", "checked_sha256", "unpack"]
