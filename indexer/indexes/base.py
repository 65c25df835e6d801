"""What every index family shares: labels in, (distances, labels) out, over one FAISS index.

Families that cannot remove vectors (HNSW, and any index while it lives on a GPU) keep
*tombstones*: labels that stay in the FAISS structure but are excluded from every search
by an ID selector until the collection compacts the index by rebuilding it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import faiss
import numpy as np

from indexer import devices
from indexer.metric import Metric
from indexer.spec import IndexSpec, SearchParams

# Calibration aims a little above the target: it measures on a sample of queries.
CALIBRATION_MARGIN = 0.02
CALIBRATION_QUERIES = 256


class LabelSet:
    """A sorted set of labels, with its FAISS selector built once on first use."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self._selector: Any = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def selector(self) -> Any:
        if self._selector is None:
            self._selector = faiss.IDSelectorBatch(self.labels)
        return self._selector

    def contains(self, labels: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``labels`` are in the set."""
        if not len(self.labels):
            return np.zeros(labels.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(self.labels, labels), len(self.labels) - 1)
        return np.asarray(self.labels[pos] == labels)


class FaissIndex(ABC):
    """One index family. Subclasses say how to build, search, list and tune it."""

    family: ClassVar[str]
    can_remove: ClassVar[bool] = True
    gpu_capable: ClassVar[bool] = False
    knob: ClassVar[str | None] = None  # the SearchParams field that trades speed for recall
    knob_values: ClassVar[tuple[int, ...]] = ()

    def __init__(self, index: Any, metric: Metric, meta: dict[str, Any] | None = None) -> None:
        meta = meta or {}
        self._index = index
        self.metric = metric
        self.default_knob: int | None = meta.get("default_knob")
        self.trained_on: int = meta.get("trained_on", 0)
        self.storage: str = meta.get("storage", "float32")
        self.calibrated_on: int = meta.get("calibrated_on", 0)
        self._dead = np.asarray(meta.get("dead", []), dtype=np.int64)
        self._dead_set: LabelSet | None = None
        self.on_gpu = False

    # -- building ------------------------------------------------------------------------

    @classmethod
    def min_points(cls, spec: IndexSpec, dim: int) -> int:
        """How many points the family needs before it can be built (training data)."""
        return 0

    @classmethod
    def build(cls, dim: int, metric: Metric, spec: IndexSpec, train: np.ndarray) -> Self:
        """A new, empty index; trained on ``train`` if the family needs training."""
        index = faiss.index_factory(
            dim, cls.factory_string(dim, spec, len(train)), metric.faiss_metric
        )
        cls.configure(index, spec)
        if not index.is_trained:
            index.train(train)
        return cls(index, metric, {"trained_on": len(train), "storage": spec.storage})

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
        """Live vectors (tombstones excluded)."""
        return int(self._index.ntotal) - len(self._dead)

    @property
    def dead_fraction(self) -> float:
        total = int(self._index.ntotal)
        return len(self._dead) / total if total else 0.0

    @property
    def supports_selector(self) -> bool:
        return not self.on_gpu

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        if len(labels):
            self._index.add_with_ids(vectors, labels)

    def remove(self, labels: np.ndarray) -> None:
        if not len(labels):
            return
        if self.can_remove and not self.on_gpu:
            self._index.remove_ids(np.ascontiguousarray(labels, dtype=np.int64))
        else:
            present = labels[np.isin(labels, self._physical_labels())]
            self._dead = np.union1d(self._dead, present)
            self._dead_set = None

    def labels(self) -> np.ndarray:
        """Sorted live labels."""
        return np.setdiff1d(self._physical_labels(), self._dead)

    def search(
        self, queries: np.ndarray, k: int, params: SearchParams, allowed: LabelSet | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS distances and labels [nq, k]; -1 labels where fewer were found."""
        selector = None
        if self.supports_selector:
            if allowed is not None:
                selector = allowed.selector  # allowed labels come from the store: all live
            elif len(self._dead):
                if self._dead_set is None:
                    self._dead_set = LabelSet(self._dead)
                selector = faiss.IDSelectorNot(self._dead_set.selector)
        search_params = self.search_parameters(params, selector)
        distances, labels = self._index.search(queries, k, params=search_params)
        return distances, labels

    def search_parameters(self, params: SearchParams, selector: Any) -> Any:
        if selector is None:
            return None
        return faiss.SearchParameters(sel=selector)

    # -- calibration ----------------------------------------------------------------------

    def calibrate(self, queries: np.ndarray, truth: np.ndarray, target: float) -> float:
        """Pick the smallest knob value whose recall@k on ``queries`` reaches ``target``.

        ``queries`` must not be in the index (held out, like real queries); ``truth`` are
        their exact neighbours [nq, k]. Returns the recall reached at the chosen value.
        """
        if self.knob is None:
            return 1.0
        goal = min(1.0, target + CALIBRATION_MARGIN)
        best_value, best_recall = self.knob_values[0], -1.0
        for value in self.knob_values:
            if not self.knob_applies(value):
                break
            params = SearchParams.model_validate({self.knob: value})
            _, found = self.search(queries, truth.shape[1], params, None)
            hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
            recall = hits / truth.size
            if recall > best_recall + 0.002:
                best_value, best_recall = value, recall
            if recall >= goal:
                break
        self.default_knob = best_value
        self.calibrated_on = self.size
        return best_recall

    def knob_applies(self, value: int) -> bool:
        return True

    # -- placement and persistence ------------------------------------------------------

    def place_on_gpu(self) -> bool:
        """Move the index to the GPU(s) if the family can live there; say whether it moved."""
        if not self.gpu_capable or self.on_gpu or devices.gpu_count() == 0:
            return False
        self._index = devices.to_gpu(self._index)
        self.on_gpu = True
        return True

    def cpu_index(self) -> Any:
        return devices.to_cpu(self._index) if self.on_gpu else self._index

    def meta(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "default_knob": self.default_knob,
            "trained_on": self.trained_on,
            "storage": self.storage,
            "calibrated_on": self.calibrated_on,
            "dead": self._dead.tolist(),
        }

    @abstractmethod
    def _physical_labels(self) -> np.ndarray:
        """Every label in the FAISS structure, tombstones included."""
