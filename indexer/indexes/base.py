"""What every index family shares: labels in, (distances, labels) out, over one FAISS index.

Families that cannot remove vectors (HNSW, and any index while it lives on a GPU) keep
*tombstones*: labels that stay in the FAISS structure but are excluded from every search
(by an ID selector on the CPU; on a GPU, which takes no selector, by over-fetching and
dropping them) until the collection compacts the index by rebuilding it.

A batch can be *staged* on the CPU: added in chunks, each under its own short hold of the
collection's write lock so that searches run between them, while every search leaves out
the staged labels (the newest ones: labels only grow) until the batch is published whole.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import faiss
import numpy as np

from indexer import devices
from indexer.indexes.gpu_placement import GpuPlacement
from indexer.indexes.labels import LabelPositions, LabelSet, keep_labels
from indexer.indexes.tombstones import Tombstones
from indexer.metric import Metric
from indexer.spec import DEFAULT_SEARCH_PARAMS, IndexSpec, SearchParams
from indexer.threads import use_cores_from

LABEL_END = 1 << 62  # past every label the store hands out
_ptr = faiss.swig_ptr


class FaissIndex(GpuPlacement, ABC):
    """One index family. Subclasses say how to build, search, list and tune it."""

    family: ClassVar[str]
    can_remove: ClassVar[bool] = True
    knob: ClassVar[str | None] = None  # the SearchParams field that trades speed for recall
    knob_values: ClassVar[tuple[int, ...]] = ()
    knob_fallback: ClassVar[int] = 0  # the knob's value until calibration sets default_knob
    # Whether the distances it gives are approximations (compressed codes): its candidates
    # then need rescoring from the stored vectors to rank as exactly as the others.
    approximate_distances: ClassVar[bool] = False
    # Points from which an addition is spread over every core; fewer are added on the
    # calling thread alone (see indexer.threads). FAISS adds the points of an HNSW graph
    # level on several threads only past 100 of them.
    add_parallel_from: ClassVar[int] = 128

    def __init__(self, index: Any, metric: Metric, meta: dict[str, Any] | None = None) -> None:
        meta = meta or {}
        self._index = index
        self.metric = metric
        self.default_knob: int | None = meta.get("default_knob")
        # search_one()'s parameters, with the default knob they were made at
        self._plain: tuple[int | None, Any] | None = None
        self.trained_on: int = meta.get("trained_on", 0)
        self.storage: str = meta.get("storage", "float32")
        self.calibrated_on: int = meta.get("calibrated_on", 0)
        self._dead = Tombstones(np.asarray(meta.get("dead", []), dtype=np.int64))
        self._positions = LabelPositions()  # see held_vectors
        self._staged_from: int | None = None  # labels from here on are staged, not served
        self._staged_until = 0  # past the largest label staged
        self._staged = 0
        self._orphans = 0  # positions left without a label by a staged batch given up

    # -- building ------------------------------------------------------------------------

    @classmethod
    def min_points(cls, spec: IndexSpec, dim: int) -> int:
        """How many points the family needs before it can be built (training data)."""
        return 0

    @classmethod
    def build(
        cls,
        dim: int,
        metric: Metric,
        spec: IndexSpec,
        train: np.ndarray,
        placement: devices.Placement | None = None,
    ) -> Self:
        """A new, empty CPU index; trained on ``train`` if the family needs training (with
        the GPUs' help when ``placement`` has any)."""
        index = faiss.index_factory(
            dim, cls.factory_string(dim, spec, len(train)), metric.faiss_metric
        )
        cls.configure(index, spec)
        if not index.is_trained:
            cls.train(index, train, placement)
        return cls(index, metric, {"trained_on": len(train), "storage": spec.storage})

    @classmethod
    def train(cls, index: Any, train: np.ndarray, placement: devices.Placement | None) -> None:
        index.train(train)

    @classmethod
    def trains(cls, dim: int, spec: IndexSpec, n: int) -> bool:
        """Whether an index of ``spec`` for ``n`` points needs training data."""
        empty = faiss.index_factory(dim, cls.factory_string(dim, spec, n), faiss.METRIC_L2)
        return not empty.is_trained

    @classmethod
    @abstractmethod
    def factory_string(cls, dim: int, spec: IndexSpec, n_train: int) -> str: ...

    @classmethod
    def configure(cls, index: Any, spec: IndexSpec) -> None:
        """Build-time settings that the factory string cannot express (none by default)."""
        return

    # -- the index protocol -------------------------------------------------------------

    @property
    def size(self) -> int:
        """Live vectors (tombstones and a staged batch excluded)."""
        return int(self._index.ntotal) - len(self._dead) - self._staged - self._orphans

    @property
    def dead_fraction(self) -> float:
        total = int(self._index.ntotal)
        return (len(self._dead) + self._orphans) / total if total else 0.0

    @property
    def info(self) -> dict[str, Any]:
        """What serves: family, storage, device, default knob."""
        return {
            "family": self.family,
            "storage": self.storage,
            "device": "gpu" if self.on_gpu else "cpu",
            "gpu_bytes": self.gpu_bytes,
            "placement_note": self.placement_note,
            "size": self.size,
            "default_params": {self.knob: self.default_knob} if self.knob else {},
        }

    @property
    def supports_selector(self) -> bool:
        return not self.on_gpu

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        if not len(labels):
            return
        if self.on_gpu:
            with devices.gpu_lock:
                self._index.add_with_ids(vectors, labels)
            self._rebook()
        else:
            use_cores_from(len(labels), self.add_parallel_from)
            self._index.add_with_ids(vectors, labels)

    def remove(self, labels: np.ndarray) -> None:
        """Remove ``labels``, which the index holds: the collection passes labels of the
        store, which the index mirrors under the collection's write lock (checking them
        against the index's own labels would cost a pass over all of them a write).

        A tombstone for a label the index lacks would count against its size, and hide the
        point if the label came in later. Neither happens: only committed labels reach
        here (a batch is removed after its commit, deletes take committed rows), a batch
        whose commit failed is dropped without tombstones (its labels come back from the
        store: see ``unstage``), and tombstones are derived afresh from what the index
        holds whenever it is reconciled with the store (:meth:`restrict_to`)."""
        if not len(labels):
            return
        if self.can_remove and not self.on_gpu:
            self._remove_ids(np.ascontiguousarray(labels, dtype=np.int64))
            return
        self._dead.add(labels)

    def labels(self) -> np.ndarray:
        """Sorted live labels."""
        physical = self._physical_labels()
        live: np.ndarray = physical[(physical >= 0) & ~self._dead.contains(physical)]
        return live

    def restrict_to(self, live: np.ndarray) -> np.ndarray:
        """Drop from the index every label not in ``live`` (sorted: the store's) and
        return the live labels it lacks. Its tombstones are derived afresh from what it
        physically holds, so a label wrongly marked dead, or one marked dead that it does
        not hold, cannot outlive this."""
        physical = self._physical_labels()
        physical = physical[physical >= 0]  # orphans are no one's: see HnswIndex.unstage
        gone = np.setdiff1d(physical, live)
        if self.can_remove and not self.on_gpu:
            self._remove_ids(np.ascontiguousarray(gone, dtype=np.int64))
        else:
            self._dead = Tombstones(gone)
        missing: np.ndarray = np.setdiff1d(live, physical)
        return missing

    # -- staging a batch (CPU only: see the module's docstring) ---------------------------

    def stage(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add a chunk of a batch without serving it: ``labels`` are newer than every
        label served."""
        if not len(labels):
            return
        if self._staged_from is None:
            self._staged_from = int(labels.min())
        self._staged_until = max(self._staged_until, int(labels.max()) + 1)
        use_cores_from(len(labels), self.add_parallel_from)
        self._index.add_with_ids(vectors, labels)
        self._staged += len(labels)

    def publish(self) -> None:
        """Serve the staged batch."""
        self._staged_from, self._staged, self._staged_until = None, 0, 0

    def unstage(self) -> None:
        """Give up the staged batch (its write failed): remove it from the index."""
        if self._staged_from is None:
            return
        self._remove_ids(np.arange(self._staged_from, self._staged_until, dtype=np.int64))
        self.publish()

    def _remove_ids(self, labels: np.ndarray) -> None:
        """Remove ``labels`` (int64, C-contiguous) from the FAISS index (those it lacks
        are skipped)."""
        self._index.remove_ids(labels)

    @property
    def holds_vectors(self) -> bool:
        """Whether :meth:`held_vectors` can find vectors here."""
        return self._float_storage() is not None

    def held_vectors(self, labels: np.ndarray) -> np.ndarray | None:
        """The vectors of ``labels`` (sorted labels it serves) as the index holds them
        (prepared: unit length for cosine), read from its own memory; None where it holds
        them in no exact form it can hand out (compressed codes, inverted lists, a GPU),
        or cannot tell where they are: then the store has them.

        An exact scan of a filter's matches reads them here instead of from the store,
        where each costs a SQLite row (see :mod:`indexer.collection.search`)."""
        held = self.held_rows(labels)
        if held is None:
            return None
        vectors, positions = held
        found: np.ndarray = vectors[positions]
        return found

    def held_rows(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Where :meth:`held_vectors` finds them, without copying them: (every vector the
        index holds [n, dim], a view valid until it next changes; the positions of
        ``labels`` in it)."""
        held = self._float_storage()
        if held is None or not len(labels):
            return None
        ids, vectors = held
        for fresh in (False, True):
            positions = self._positions.of(labels, ids, fresh)
            if positions is not None:
                return vectors, positions
        return None

    def _float_storage(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(labels by position, float32 vectors by position [n, dim]) as views on the
        FAISS index's own arrays, valid until it next changes; None where it has none."""
        return None

    def search(
        self, queries: np.ndarray, k: int, params: SearchParams, allowed: LabelSet | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS distances and labels [nq, k]; -1 labels where fewer were found."""
        selector = None
        if self.supports_selector:
            # Allowed labels come from the store's committed rows: live, not staged.
            selector = allowed.selector if allowed is not None else self._served_selector()
        if self.on_gpu:
            return self._search_gpu(queries, k, params)
        search_params = self.search_parameters(params, selector)
        distances, labels = self._index.search(queries, k, params=search_params)
        return distances, labels

    def search_one(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The FAISS distances and labels [k] of one query [dim] (float32, C-contiguous) at
        the default parameters, without a filter, where that takes one FAISS call and
        nothing else: on the CPU, every label it holds served (no tombstones, no staged
        batch, no orphans), and k neighbours found. None otherwise: ask :meth:`search`.
        The most common search comes this way, in a few Python steps: after an index
        search has streamed through the CPU caches, each step costs microseconds."""
        if self.on_gpu or self._staged_from is not None or self._orphans or len(self._dead):
            return None
        # Made again whenever the knob differs from theirs: a recalibration sets it without
        # a lock, so it may land while they are made, which the next search then sees.
        knob, plain = self.default_knob, self._plain
        if plain is None or plain[0] != knob:
            plain = self._plain = (knob, self.search_parameters(DEFAULT_SEARCH_PARAMS, None))
        distances = np.empty(k, dtype=np.float32)
        labels = np.empty(k, dtype=np.int64)
        # The call behind FAISS's own Index.search, whose checks the caller has made.
        self._index.search_c(1, _ptr(query), k, _ptr(distances), _ptr(labels), plain[1])
        if labels.item(-1) < 0:  # fewer than k: search() answers the rest exactly, or k is too big
            return None
        return distances, labels

    def _search_gpu(
        self, queries: np.ndarray, k: int, params: SearchParams
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search on the GPU: no selector there, so tombstones are over-fetched and dropped
        (rows left short of k are answered exactly by the collection)."""
        fetch = min(k + len(self._dead), devices.GPU_MAX_K)
        with devices.gpu_lock:
            distances, labels = self._index.search(
                queries, fetch, params=self.search_parameters(params, None)
            )
        if not len(self._dead):
            return distances, labels
        return keep_labels(distances, labels, ~self._dead.contains(labels), k)

    def _served_selector(self) -> Any:
        """The selector of the labels served now (None: every label in the index): not
        dead, and below a staged batch and not an orphan (negative)."""
        parts = []
        if len(self._dead):
            parts.append(self._dead.alive_selector())
        if self._staged_from is not None or self._orphans:
            end = LABEL_END if self._staged_from is None else self._staged_from
            parts.append(faiss.IDSelectorRange(0, end))
        if len(parts) < 2:
            return parts[0] if parts else None
        both = faiss.IDSelectorAnd(*parts)
        both.referenced = parts  # the And does not own its operands
        return both

    def search_parameters(self, params: SearchParams, selector: Any) -> Any:
        if selector is None:
            return None
        return faiss.SearchParameters(sel=selector)

    # -- calibration ----------------------------------------------------------------------

    def knob_applies(self, value: int) -> bool:
        return True

    def knob_for(self, params: SearchParams) -> int:
        """The knob value a search with ``params`` runs at (0 for a family without one)."""
        if self.knob is None:
            return 0
        value: int = getattr(params, self.knob) or self.default_knob or self.knob_fallback
        return value

    @property
    def knob_max(self) -> int:
        """The largest knob value that still widens a search."""
        return 0

    def search_cost(self, params: SearchParams) -> float:
        """Vectors compared per query at ``params``, estimated: all of them, by default."""
        return float(self.size)

    # -- persistence -------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "default_knob": self.default_knob,
            "trained_on": self.trained_on,
            "storage": self.storage,
            "calibrated_on": self.calibrated_on,
            "dead": self._dead.labels().tolist(),
        }

    @abstractmethod
    def _physical_labels(self) -> np.ndarray:
        """Every label in the FAISS structure, tombstones included."""
