"""Where a job's points go: a collection in a local data folder, or one on a running
vecserve service (:mod:`indexer.jobs.remote`).

A target also says where the job keeps its checkpoint and reject file: a collection's own
folder for a local one (so dropping the collection drops them), a local state folder for a
remote one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.collection import Collection
from indexer.engine import Engine
from indexer.errors import CollectionExists, CollectionNotFound, DimensionMismatch
from indexer.points import PointId

__all__ = ["LocalTarget", "Refused", "Target"]

Refused = list[tuple[int, str]]
"""Points a target would not take, each as its index in the upsert and the reason."""


class Target(Protocol):
    """A collection that a job fills."""

    def existing(self) -> Path | None:
        """The folder of the job's checkpoints if the collection exists, else None.

        Raises:
            CollectionExists: the collection holds vectors of another embedder.
        """
        ...

    def points(self) -> int:
        """Points the collection held when :meth:`existing` looked (0 if it did not
        exist): a checkpoint that counts indexed points in a collection holding none was
        written for another collection of that name, dropped since."""
        ...

    def count(self) -> int:
        """Points the collection holds now (0 before :meth:`prepare` made it)."""
        ...

    def uid(self) -> str | None:
        """The collection's identity once :meth:`existing` found it or :meth:`prepare`
        made it (None before, or from a service without identities)."""
        ...

    def prepare(self, dim: int | None) -> Path:
        """Create the collection if it is missing, or check that it takes vectors of
        dimension ``dim``; the folder of the job's checkpoints. ``dim`` is None for a job
        that writes only vectors the collection holds, which :meth:`existing` found.

        Raises:
            DimensionMismatch: the collection has another dimension.
        """
        ...

    def vectors(self, ids: list[PointId]) -> list[np.ndarray | None]:
        """The vectors of points ``ids`` as the collection holds them (None for an id it
        does not hold)."""
        ...

    def upsert(
        self, ids: list[PointId], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> Refused:
        """Write a batch of points; it is durable when this returns, except the refused."""
        ...

    def finish(self) -> None:
        """The job wrote its last batch: build what searches need."""
        ...

    def close(self) -> None: ...


class LocalTarget:
    """A collection in a data folder, written through an :class:`Engine`. It is created
    with the job's embedder, and only a collection of that embedder is filled."""

    def __init__(self, engine: Engine, name: str, embedder: str) -> None:
        self._engine = engine
        self._name = name
        self._embedder = embedder
        self._collection: Collection | None = None
        self._points = 0

    def existing(self) -> Path | None:
        try:
            collection = self._engine.get_collection(self._name)
        except CollectionNotFound:
            return None
        made_by = collection.config.embedder
        if made_by != self._embedder:
            holds = f"vectors of embedder {made_by!r}" if made_by else "vectors of no embedder"
            raise CollectionExists(
                f"collection {self._name!r} already exists and holds {holds}; this job embeds "
                f"with {self._embedder!r}: index into another collection"
            )
        self._collection = collection
        self._points = collection.count()
        return collection.folder

    def points(self) -> int:
        return self._points

    def count(self) -> int:
        return self._collection.count() if self._collection is not None else 0

    def uid(self) -> str | None:
        return self._collection.uid if self._collection is not None else None

    def prepare(self, dim: int | None) -> Path:
        if self._collection is None:
            assert dim is not None, "a collection to make needs the model's dimension"
            self._collection = self._engine.create_collection(
                self._name, dim, "cosine", embedder=self._embedder, exist_ok=True
            )
        elif dim is not None and self._collection.dim != dim:
            raise DimensionMismatch(
                f"collection {self._name!r} has dimension {self._collection.dim}, but embedder "
                f"{self._embedder!r} makes vectors of dimension {dim}"
            )
        return self._collection.folder

    def upsert(
        self, ids: list[PointId], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> Refused:
        assert self._collection is not None, "prepare() first"
        self._collection.upsert(ids, vectors, payloads)
        return []

    def vectors(self, ids: list[PointId]) -> list[np.ndarray | None]:
        assert self._collection is not None, "prepare() first"
        found = {(type(p.id), p.id): p.vector for p in self._collection.get(ids)}
        return [found.get((type(i), i)) for i in ids]

    def finish(self) -> None:
        if self._collection is not None:
            self._collection.optimize()  # build the index the collection's size calls for

    def close(self) -> None:
        """Nothing to release: the engine belongs to the caller."""
