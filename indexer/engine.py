"""The engine: a data folder holding named collections, each in its own folder."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
import uuid
import weakref
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Literal

import faiss

from indexer import devices
from indexer.collection import (
    INDEX_FILE,
    Collection,
    CollectionConfig,
    IndexBuildObserver,
    new_uid,
)
from indexer.embedders import EmbedderRegistry, default_embedder_configs
from indexer.embedders.inputs import embedder_dim
from indexer.errors import (
    CollectionExists,
    CollectionNotEmpty,
    CollectionNotFound,
    DataFolderInUse,
    InvalidInput,
    InvalidName,
)
from indexer.fulltext import FullTextSpec
from indexer.metric import Metric
from indexer.payload_index import parse_declaration
from indexer.query import RerankerRegistry
from indexer.snapshots import SnapshotArea, SnapshotInfo, unpack
from indexer.spec import IndexSpec
from indexer.store import SqliteStore

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_STORE_FILE = "store.sqlite3"
LOCK_FILE = ".lock"  # in the data folder; see _lock_folder
# FAISS scans query by query below this many queries x dimensions and uses BLAS above it.
# Its default (128,000) leaves batches of a few hundred short vectors on the slow path;
# measured on GloVe (50-d) with 1,000 queries, BLAS is ~9x faster (PERFORMANCE-NOTES).
BLAS_THRESHOLD = 16 * 64


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidName(
            f"invalid collection name {name!r}: 1 to 64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class Engine:
    """Opens or creates a data folder of collections; use it like an embedded database.

    >>> engine = Engine("./data")
    >>> products = engine.create_collection("products", dim=384, metric="cosine")

    ``device``: ``"auto"`` places indexes on the GPUs when FAISS sees any; ``"cpu"``
    keeps them on the CPU. With several GPUs, ``gpu_mode`` copies each index to every GPU
    (``replicate``) or splits it across them (``shard``); ``gpu_memory_limit`` caps the bytes
    per GPU that indexes may take (an index that does not fit stays on the CPU, and
    :attr:`Collection.index_info` says why). ``background``: rebuild, compact and save indexes in a
    background thread as collections grow (else only on :meth:`Collection.optimize`).
    ``embedders``: the allowlist of models that collections may embed with (by default
    :func:`~indexer.embedders.default_embedder_configs`); each loads on first use.
    ``rerankers``: the allowlist of cross-encoders that queries may rerank with (none by
    default); each loads on first use.
    ``on_index_build``: called with an :class:`~indexer.collection.IndexBuild` after each
    index built from a whole store (on open or by maintenance), e.g. to export its time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: Literal["auto", "cpu"] = "auto",
        background: bool = True,
        gpu_mode: Literal["replicate", "shard"] = "replicate",
        gpu_memory_limit: int | None = None,
        embedders: EmbedderRegistry | None = None,
        rerankers: RerankerRegistry | None = None,
        on_index_build: IndexBuildObserver | None = None,
    ) -> None:
        self.path = Path(path)
        self._root = self.path / "collections"
        self._root.mkdir(parents=True, exist_ok=True)
        self._folder_lock = _lock_folder(self.path)
        self._release_folder = weakref.finalize(self, os.close, self._folder_lock)
        self.embedders = embedders or EmbedderRegistry(default_embedder_configs())
        self.rerankers = rerankers or RerankerRegistry()
        self.placement = devices.Placement.detect(
            device, mode=gpu_mode, memory_limit=gpu_memory_limit
        )
        self._gpus = self.placement.gpus
        self._background = background
        self._on_index_build = on_index_build
        self._lock = threading.Lock()
        self._open: dict[str, Collection] = {}
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
        for leftover in self._root.glob(".*"):
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted create, drop or restore
        self._snapshots = SnapshotArea(self.path / "snapshots")  # not a collection

    @property
    def gpus(self) -> int:
        return self._gpus

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        return sorted(p.name for p in self._root.iterdir() if NAME_PATTERN.match(p.name))

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric | str = Metric.COSINE,
        index: IndexSpec | str | dict[str, Any] | None = None,
        *,
        embedder: str | None = None,
        store_source: bool = False,
        thumbnails: bool = False,
        full_text: FullTextSpec | dict[str, Any] | list[Any] | None = None,
        payload_indexes: Mapping[str, str] | None = None,
        exist_ok: bool = False,
    ) -> Collection:
        """Create a collection. With ``exist_ok``, an identical existing one is returned;
        an existing one with another configuration raises :class:`CollectionExists`.

        ``embedder``: a name from :attr:`embedders`; the collection then takes texts or
        images as well as vectors. Its dimension is the model's (``dim`` may be left out),
        so the model is loaded now. ``store_source``: points keep their text (or image
        hash) in the payload by default; see :mod:`indexer.embedders.inputs`. ``thumbnails``:
        image points keep a small JPEG (see :meth:`Collection.thumbnail`); it needs an
        embedder that takes images. ``full_text``: the payload fields to index for lexical
        search (see :meth:`Collection.set_full_text`, which also declares them later).
        ``payload_indexes``: payload fields to index for filters, ``{path: "keyword" |
        "number"}`` (see :meth:`Collection.create_payload_index`).
        """
        validate_name(name)
        if embedder is not None:
            dim = embedder_dim(self.embedders, embedder, dim)
        if thumbnails and (
            embedder is None or "image" not in self.embedders.get(embedder).modalities
        ):
            raise InvalidInput("thumbnails are kept of images: they need an image embedder")
        config = _config(name, dim, metric, index, embedder, store_source, thumbnails)
        spec = None if full_text is None else FullTextSpec.parse(full_text)
        fields = parse_declaration(payload_indexes or {})
        with self._lock:
            folder = self._root / name
            if folder.exists():
                existing = self._get(name)
                same_text = (existing.store.full_text == spec) or full_text is None
                same_fields = payload_indexes is None or existing.payload_fields == fields
                if exist_ok and existing.config == config and same_text and same_fields:
                    return existing
                differences = _differences(existing.config, config)
                raise CollectionExists(
                    f"collection {name!r} already exists"
                    + (f" with another configuration: {differences}" if differences else "")
                )
            staging = self._root / f".new-{uuid.uuid4().hex}"
            staging.mkdir()
            store = SqliteStore(staging / _STORE_FILE)
            store.set_meta("config", config.model_dump(mode="json"))
            store.set_meta("uid", new_uid())
            if spec is not None or fields:
                with store.transaction() as txn:
                    if spec is not None:
                        txn.set_full_text(spec)
                    txn.set_payload_indexes(dict(fields))
            store.close()
            os.rename(staging, folder)  # the collection appears whole, or not at all
            return self._get(name)

    def get_collection(self, name: str) -> Collection:
        """An existing collection; raises :class:`CollectionNotFound`."""
        with self._lock:
            return self._get(validate_name(name))

    def opened_collection(self, name: str) -> Collection | None:
        """The collection if it is open now, else None (then :meth:`get_collection` opens
        it). It never waits for the engine's lock, which a create, drop or open holds for
        as long as it takes, so an event loop may call it."""
        return self._open.get(name)  # a dict read is atomic; a miss takes the slow path

    def drop_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""
        with self._lock:
            folder = self._root / validate_name(name)
            if not folder.exists():
                raise CollectionNotFound(f"collection {name!r} does not exist")
            trash = self._detach(name)
        shutil.rmtree(trash, ignore_errors=True)

    def open_all(self) -> None:
        """Open every collection now (rebuilding indexes where needed)."""
        for name in self.list_collections():
            self.get_collection(name)

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self, name: str) -> SnapshotInfo:
        """Write a snapshot of a collection while writes go on: one tar file under
        ``DATA/snapshots/NAME/`` holding every write committed up to ``info.seq``.

        >>> info = engine.snapshot("products")
        >>> info.name, info.seq, info.sha256
        """
        return self._snapshots.take(self.get_collection(name))

    def list_snapshots(self, name: str) -> list[SnapshotInfo]:
        """The snapshots of a collection, oldest first (they outlive the collection)."""
        return self._snapshots.snapshots_of(validate_name(name))

    def get_snapshot(self, name: str, snapshot: str) -> SnapshotInfo:
        """One snapshot of a collection; ``info.path`` is its tar file.
        Raises :class:`SnapshotNotFound`."""
        return self._snapshots.get(validate_name(name), snapshot)

    def open_snapshot(self, name: str, snapshot: str) -> tuple[SnapshotInfo, IO[bytes]]:
        """One snapshot of a collection and its tar file, open for reading (the caller
        closes it); the file stays whole if the snapshot is deleted while it is read.
        Raises :class:`SnapshotNotFound`."""
        return self._snapshots.open(validate_name(name), snapshot)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Delete one snapshot of a collection. Raises :class:`SnapshotNotFound`."""
        self._snapshots.delete(validate_name(name), snapshot)

    def snapshot_upload(self) -> AbstractContextManager[Path]:
        """A path in the data folder to receive a snapshot file into, removed on exit."""
        return self._snapshots.upload()

    def check_restore_target(self, name: str) -> None:
        """Raise :class:`CollectionNotEmpty` unless a snapshot may be restored into ``name``
        now: it must not exist, or have no points. :meth:`restore_snapshot` checks again."""
        with self._lock:
            folder = self._root / validate_name(name)
            if folder.exists() and self._get(name).count():
                raise CollectionNotEmpty(
                    f"collection {name!r} has points; restore into a new or empty collection"
                )

    def restore_snapshot(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        sha256: str,
        trust_index: bool = False,
    ) -> Collection:
        """Restore the snapshot file at ``path`` as collection ``name``, which must not exist
        or be empty (an empty one is replaced). The file must have SHA-256 ``sha256``.

        The snapshot is checked in full before the collection appears, whole and with its
        index built. ``trust_index``: use the snapshot's index file instead of rebuilding
        from the store; FAISS does not defend against crafted index files, so only for
        snapshots from a trusted source.

        Raises :class:`ChecksumMismatch`, :class:`InvalidSnapshot`, :class:`CollectionNotEmpty`.
        """
        self.check_restore_target(name)
        staging = self._root / f".restore-{uuid.uuid4().hex}"
        staging.mkdir()
        trash: Path | None = None
        try:
            unpack(
                Path(path),
                sha256,
                name=name,
                store_path=staging / _STORE_FILE,
                index_path=staging / INDEX_FILE if trust_index else None,
            )
            # A restored collection is a new one, whoever's snapshot it came from.
            store = SqliteStore(staging / _STORE_FILE)
            store.set_meta("uid", new_uid())
            store.close()
            # Build (or catch up) and save the index now, outside the engine lock.
            self._load(staging, background=False).close()
            with self._lock:
                if (self._root / name).exists():
                    if self._get(name).count():
                        raise CollectionNotEmpty(f"collection {name!r} has points")
                    trash = self._detach(name)
                os.rename(staging, self._root / name)
                collection = self._get(name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        log.info("collection %s restored from %s", name, path)
        return collection

    def close(self) -> None:
        """Save what needs saving, close every open collection and let go of the folder."""
        with self._lock:
            for collection in self._open.values():
                collection.close()
            self._open.clear()
            self._release_folder()  # once: later calls do nothing

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, name: str) -> Collection:
        collection = self._open.get(name)
        if collection is None:
            folder = self._root / name
            if not (folder / _STORE_FILE).exists():
                raise CollectionNotFound(f"collection {name!r} does not exist")
            collection = self._load(folder, background=self._background)
            self._open[name] = collection
        return collection

    def _load(self, folder: Path, *, background: bool) -> Collection:
        return Collection(
            folder,
            SqliteStore(folder / _STORE_FILE),
            placement=self.placement,
            background=background,
            embedders=self.embedders,
            rerankers=self.rerankers,
            on_index_build=self._on_index_build,
        )

    def _detach(self, name: str) -> Path:
        """Close a collection and move its folder aside (lock held); returns where to."""
        collection = self._open.pop(name, None)
        if collection is not None:
            collection.close()
        trash = self._root / f".dropped-{uuid.uuid4().hex}"
        os.rename(self._root / name, trash)  # gone at once for readers; removed at leisure
        return trash


def check_folder_free(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DataFolderInUse` if an engine has the data folder open now (a check
    before a slow start; the engine takes the lock itself when it opens)."""
    path = Path(path)
    if path.is_dir():
        os.close(_lock_folder(path, note_pid=False))


def _lock_folder(path: Path, *, note_pid: bool = True) -> int:
    """Take the data folder's lock file and return its descriptor, held while the engine
    lives (the kernel lets go of it if the process dies); raise :class:`DataFolderInUse`
    when another engine holds it. Each engine keeps its collections' ids in memory and
    would not see another's writes, so a folder has one engine at a time."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        raise DataFolderInUse(
            f"the data folder {str(path)!r} is open in another engine "
            f"(process {holder or 'unknown'}); one engine at a time may open it"
        ) from None
    if note_pid:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _config(
    name: str,
    dim: object,
    metric: Metric | str,
    index: Any,
    embedder: str | None,
    store_source: bool,
    thumbnails: bool = False,
) -> CollectionConfig:
    if dim is None:
        raise InvalidInput("dim is required for a collection without an embedder")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65_536:
        raise InvalidInput(f"dim must be an integer from 1 to 65536, got {dim!r}")
    try:
        metric = Metric(metric)
    except ValueError:
        raise InvalidInput(f"unknown metric {metric!r}; use cosine, dot or l2") from None
    return CollectionConfig(
        name=name,
        dim=dim,
        metric=metric,
        index=IndexSpec.parse(index).for_dim(dim),
        embedder=embedder,
        store_source=store_source,
        thumbnails=thumbnails,
    )


def _differences(existing: CollectionConfig, asked: CollectionConfig) -> str:
    """What ``asked`` sets otherwise than ``existing``, e.g. ``dim is 384, not 128``."""
    have, want = existing.model_dump(mode="json"), asked.model_dump(mode="json")
    return "; ".join(
        f"{field} is {_shown(have[field])}, not {_shown(want[field])}"
        for field in have
        if have[field] != want[field]
    )


def _shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, dict) or value is None else str(value)
