"""The engine: a data folder holding named collections, each in its own folder."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Literal

import faiss

from indexer import devices
from indexer.collection import Collection, CollectionConfig
from indexer.errors import CollectionExists, CollectionNotFound, InvalidInput, InvalidName
from indexer.metric import Metric
from indexer.spec import IndexSpec
from indexer.store import SqliteStore

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_STORE_FILE = "store.sqlite3"
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
    keeps them on the CPU. ``background``: rebuild, compact and save indexes in a
    background thread as collections grow (else only on :meth:`Collection.optimize`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: Literal["auto", "cpu"] = "auto",
        background: bool = True,
    ) -> None:
        self.path = Path(path)
        self._root = self.path / "collections"
        self._root.mkdir(parents=True, exist_ok=True)
        self._gpus = devices.gpu_count() if device == "auto" else 0
        self._background = background
        self._lock = threading.Lock()
        self._open: dict[str, Collection] = {}
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
        for leftover in self._root.glob(".*"):
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted create or drop

    @property
    def gpus(self) -> int:
        return self._gpus

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        return sorted(p.name for p in self._root.iterdir() if NAME_PATTERN.match(p.name))

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: Metric | str = Metric.COSINE,
        index: IndexSpec | str | dict[str, Any] | None = None,
        *,
        embedder: str | None = None,
        exist_ok: bool = False,
    ) -> Collection:
        """Create a collection. With ``exist_ok``, an identical existing one is returned;
        an existing one with another configuration raises :class:`CollectionExists`."""
        config = _config(validate_name(name), dim, metric, index, embedder)
        with self._lock:
            folder = self._root / name
            if folder.exists():
                existing = self._get(name)
                if exist_ok and existing.config == config:
                    return existing
                raise CollectionExists(
                    f"collection {name!r} already exists"
                    + ("" if existing.config == config else " with another configuration")
                )
            staging = self._root / f".new-{uuid.uuid4().hex}"
            staging.mkdir()
            store = SqliteStore(staging / _STORE_FILE)
            store.set_meta("config", config.model_dump(mode="json"))
            store.close()
            os.rename(staging, folder)  # the collection appears whole, or not at all
            return self._get(name)

    def get_collection(self, name: str) -> Collection:
        """An existing collection; raises :class:`CollectionNotFound`."""
        with self._lock:
            return self._get(validate_name(name))

    def drop_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""
        with self._lock:
            folder = self._root / validate_name(name)
            if not folder.exists():
                raise CollectionNotFound(f"collection {name!r} does not exist")
            collection = self._open.pop(name, None)
            if collection is not None:
                collection.close()
            trash = self._root / f".dropped-{uuid.uuid4().hex}"
            os.rename(folder, trash)  # gone at once for readers; removed at leisure
            shutil.rmtree(trash, ignore_errors=True)

    def open_all(self) -> None:
        """Open every collection now (rebuilding indexes where needed)."""
        for name in self.list_collections():
            self.get_collection(name)

    def close(self) -> None:
        """Save what needs saving and close every open collection."""
        with self._lock:
            for collection in self._open.values():
                collection.close()
            self._open.clear()

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
            store = SqliteStore(folder / _STORE_FILE)
            collection = Collection(folder, store, gpus=self._gpus, background=self._background)
            self._open[name] = collection
        return collection


def _config(
    name: str, dim: object, metric: Metric | str, index: Any, embedder: str | None
) -> CollectionConfig:
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65_536:
        raise InvalidInput(f"dim must be an integer from 1 to 65536, got {dim!r}")
    try:
        metric = Metric(metric)
    except ValueError:
        raise InvalidInput(f"unknown metric {metric!r}; use cosine, dot or l2") from None
    return CollectionConfig(
        name=name, dim=dim, metric=metric, index=IndexSpec.parse(index), embedder=embedder
    )
