"""Exact search: every vector compared with every query."""

from __future__ import annotations

from typing import ClassVar

import faiss
import numpy as np

from indexer.indexes.base import FaissIndex
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

    def _physical_labels(self) -> np.ndarray:
        return np.sort(faiss.vector_to_array(self.cpu_index().id_map))
