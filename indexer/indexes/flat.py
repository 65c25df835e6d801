"""Exact search: every vector compared with every query."""

from __future__ import annotations

from typing import Any, ClassVar

import faiss
import numpy as np

from indexer import devices
from indexer.indexes.base import FaissIndex
from indexer.indexes.labels import float_vectors, id_map_view
from indexer.spec import IndexSpec

_STORAGE = {"float32": "Flat", "float16": "SQfp16", "int8": "SQ8"}


class FlatIndex(FaissIndex):
    family: ClassVar[str] = "flat"
    gpu_capable: ClassVar[bool] = True

    @classmethod
    def min_points(cls, spec: IndexSpec, dim: int) -> int:
        return 1000 if spec.storage == "int8" else 0  # SQ8 learns value ranges

    @classmethod
    def factory_string(cls, dim: int, spec: IndexSpec, n_train: int) -> str:
        return "IDMap," + _STORAGE[spec.storage]

    def place_on_gpu(self, placement: devices.Placement, spec: IndexSpec) -> bool:
        if self.storage == "int8" and placement.gpus:
            self.placement_note = "int8 flat storage has no GPU form in FAISS; use float16"
            return False
        return super().place_on_gpu(placement, spec)

    def gpu_source(self) -> Any:
        """float16 storage becomes a float32 flat here, stored as float16 on the GPU."""
        if self.storage == "float32":
            return self._index
        inner = faiss.downcast_index(self._index.index)
        return _with_ids(faiss.IndexFlat(inner.d, inner.metric_type), inner, self._index)

    def cpu_index(self) -> Any:
        """The CPU form, in the storage the collection asked for (saved files keep it)."""
        if not self.on_gpu or self.storage == "float32":
            return super().cpu_index()
        copy = devices.to_cpu(self._index)  # owns ``flat``: keep it alive while reading
        flat = faiss.downcast_index(copy.index)
        encoded = faiss.IndexScalarQuantizer(
            flat.d, faiss.ScalarQuantizer.QT_fp16, flat.metric_type
        )
        return _with_ids(encoded, flat, self._index)

    def _float_storage(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.on_gpu or self.storage != "float32":
            return None
        return id_map_view(self._index), float_vectors(faiss.downcast_index(self._index.index))

    def _physical_labels(self) -> np.ndarray:
        # The id map of an IndexIDMap stays on the host when its index is on a GPU.
        return np.sort(faiss.vector_to_array(self._index.id_map))


def _with_ids(empty: Any, source: Any, like: Any) -> Any:
    """An IndexIDMap over ``empty`` holding the vectors of ``source`` under the ids of the
    IndexIDMap ``like`` (``source`` is ``like``'s inner index, in another storage)."""
    wrapped = faiss.IndexIDMap(empty)
    wrapped.own_fields = True
    empty.this.disown()
    if source.ntotal:
        ids = faiss.vector_to_array(like.id_map)
        wrapped.add_with_ids(source.reconstruct_n(0, source.ntotal), ids)
    return wrapped
