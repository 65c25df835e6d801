"""HNSW graphs: fast and accurate on the CPU, but FAISS cannot remove from them."""

from __future__ import annotations

from typing import Any, ClassVar

import faiss
import numpy as np

from indexer.indexes.base import FaissIndex
from indexer.indexes.knob import KnobParameters
from indexer.indexes.labels import float_vectors, id_map_view
from indexer.metric import Metric
from indexer.spec import IndexSpec, SearchParams

EF_SEARCH_MAX = 32768  # SearchParams' bound
# What comparing the query with one neighbour costs in a filtered graph search, against a
# comparison in a scan of contiguous vectors (measured 2-10 times, 0.2-0.6 us, 384-d,
# 300,000 points, ef_search 1,024 to 25,600).
GRAPH_STEP_COST = 5
_STORAGE = {"float32": "", "float16": "_SQfp16", "int8": "_SQ8"}


class HnswIndex(FaissIndex):
    family: ClassVar[str] = "hnsw"
    can_remove: ClassVar[bool] = False
    knob: ClassVar[str | None] = "ef_search"
    knob_values: ClassVar[tuple[int, ...]] = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    knob_fallback: ClassVar[int] = 64

    @classmethod
    def min_points(cls, spec: IndexSpec, dim: int) -> int:
        return 1000 if spec.storage == "int8" else 0

    def __init__(self, index: Any, metric: Metric, meta: dict[str, Any] | None = None) -> None:
        super().__init__(index, metric, meta)
        self._parameters = KnobParameters(faiss.SearchParametersHNSW, "efSearch")
        self._orphans = int((self._id_map() < 0).sum())

    @classmethod
    def factory_string(cls, dim: int, spec: IndexSpec, n_train: int) -> str:
        return f"IDMap,HNSW{spec.hnsw_m}{_STORAGE[spec.storage]}"

    @classmethod
    def configure(cls, index: Any, spec: IndexSpec) -> None:
        faiss.downcast_index(index.index).hnsw.efConstruction = spec.ef_construction

    def search_parameters(self, params: SearchParams, selector: Any) -> Any:
        return self._parameters(self.knob_for(params), selector)

    @property
    def knob_max(self) -> int:
        return EF_SEARCH_MAX

    def search_cost(self, params: SearchParams) -> float:
        """A search keeps ef_search candidates and compares the query with the neighbours
        of each (2M of them on the bottom layer), each a random read of a vector and a
        step of the graph's bookkeeping: GRAPH_STEP_COST comparisons of a contiguous scan."""
        neighbours = faiss.downcast_index(self._index.index).hnsw.nb_neighbors(0)
        return float(self.knob_for(params) * neighbours * GRAPH_STEP_COST)

    def unstage(self) -> None:
        """FAISS cannot remove from a graph, and the store will hand the batch's labels
        out again (its transaction rolled back): the staged vectors lose their labels
        instead (-1, which no search serves and no label equals) and count as dead."""
        if self._staged_from is None:
            return
        ids = self._id_map()
        staged = ids >= self._staged_from
        # Not tombstones: those would outlive the batch and hide the next one, which the
        # store gives the same labels (tests/unit/test_index_follows_the_store.py).
        ids[staged] = -1
        self._orphans += int(staged.sum())
        self.publish()

    def _id_map(self) -> np.ndarray:
        """The labels by position, a view on FAISS's own array (writes go through)."""
        return id_map_view(self._index)

    def _float_storage(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.storage != "float32":
            return None
        storage = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)
        return self._id_map(), float_vectors(storage)

    def _physical_labels(self) -> np.ndarray:
        return np.sort(faiss.vector_to_array(self._index.id_map))
