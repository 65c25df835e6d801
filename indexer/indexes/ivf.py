"""Inverted-file indexes: vectors bucketed by a trained coarse quantizer.

``ivf_flat`` keeps the vectors (optionally as fp16 or int8), ``ivf_pq`` compresses them with
product quantisation. Both need training data: the collection serves from a flat index
until there is enough of it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import faiss
import numpy as np

from indexer.indexes.base import FaissIndex
from indexer.spec import IndexSpec, SearchParams

_STORAGE = {"float32": "Flat", "float16": "SQfp16", "int8": "SQ8"}
MIN_POINTS_PER_LIST = 39  # below this FAISS k-means warns and clusters poorly


def choose_nlist(spec: IndexSpec, n: int) -> int:
    if spec.nlist is not None:
        return spec.nlist
    return max(1, min(int(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


class IvfIndex(FaissIndex):
    family: ClassVar[str] = "ivf_flat"
    gpu_capable: ClassVar[bool] = True
    knob: ClassVar[str | None] = "nprobe"
    knob_values: ClassVar[tuple[int, ...]] = (
        1,
        2,
        4,
        8,
        12,
        16,
        24,
        32,
        48,
        64,
        96,
        128,
        192,
        256,
        384,
        512,
        1024,
    )

    @classmethod
    def min_points(cls, spec: IndexSpec, dim: int) -> int:
        return max(10_000, MIN_POINTS_PER_LIST * (spec.nlist or 0))

    @classmethod
    def factory_string(cls, dim: int, spec: IndexSpec, n_train: int) -> str:
        return f"IVF{choose_nlist(spec, n_train)},{_STORAGE[spec.storage]}"

    def search_parameters(self, params: SearchParams, selector: Any) -> Any:
        nprobe = params.nprobe or self.default_knob or 16
        return faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)

    def knob_applies(self, value: int) -> bool:
        return value <= int(faiss.extract_index_ivf(self._index).nlist)

    def _physical_labels(self) -> np.ndarray:
        invlists = faiss.extract_index_ivf(self.cpu_index()).invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(invlists.nlist)
            if invlists.list_size(i)
        ]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


class IvfPqIndex(IvfIndex):
    family: ClassVar[str] = "ivf_pq"

    @classmethod
    def factory_string(cls, dim: int, spec: IndexSpec, n_train: int) -> str:
        m = spec.pq_m or choose_pq_m(dim)
        return f"IVF{choose_nlist(spec, n_train)},PQ{m}x{spec.pq_bits}"


def choose_pq_m(dim: int) -> int:
    """The divisor of ``dim`` nearest dim/4: about four dimensions per one-byte code."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: abs(m - dim / 4))
