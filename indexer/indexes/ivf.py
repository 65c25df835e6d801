"""Inverted-file indexes: vectors bucketed by a trained coarse quantizer.

``ivf_flat`` keeps the vectors (optionally as fp16 or int8), ``ivf_pq`` compresses them with
product quantisation. Both need training data: the collection serves from a flat index
until there is enough of it.

On the CPU an IVF index keeps a hash table from label to its place in the lists (FAISS's
direct map): removing a point then costs a lookup, where without one FAISS scans every
list (23 ms a delete at 100,000 points, growing with the index). It costs about 40 bytes
a point in memory, a tenth of an int8 384-d point, and 16 in the file.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import faiss
import numpy as np

from indexer import devices
from indexer.indexes.base import FaissIndex
from indexer.indexes.knob import KnobParameters
from indexer.metric import Metric
from indexer.spec import IndexSpec, SearchParams

_STORAGE = {"float32": "Flat", "float16": "SQfp16", "int8": "SQ8"}
MIN_POINTS_PER_LIST = 39
FLOAT32_LUT_MAX_M = 48  # below this FAISS k-means warns and clusters poorly


def choose_nlist(spec: IndexSpec, n: int) -> int:
    if spec.nlist is not None:
        return spec.nlist
    return max(1, min(int(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


class IvfIndex(FaissIndex):
    family: ClassVar[str] = "ivf_flat"
    gpu_capable: ClassVar[bool] = True
    knob: ClassVar[str | None] = "nprobe"
    knob_fallback: ClassVar[int] = 16
    # A chunk staged in a 10 ms hold (hundreds of points) gains little from more cores,
    # and on a busy machine a core that is late to FAISS's parallel step stretched such
    # holds to 200-600 ms; a build's chunks (SCAN_ROWS) still use every core.
    add_parallel_from: ClassVar[int] = 2048
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

    def __init__(self, index: Any, metric: Metric, meta: dict[str, Any] | None = None) -> None:
        super().__init__(index, metric, meta)
        ivf = faiss.extract_index_ivf(index)
        self.nlist = int(ivf.nlist)
        self._parameters = KnobParameters(faiss.SearchParametersIVF, "nprobe")
        if ivf.direct_map.type != faiss.DirectMap.Hashtable:  # a new index, or an older file
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)

    @classmethod
    def factory_string(cls, dim: int, spec: IndexSpec, n_train: int) -> str:
        return f"IVF{choose_nlist(spec, n_train)},{_STORAGE[spec.storage]}"

    @classmethod
    def train(cls, index: Any, train: np.ndarray, placement: devices.Placement | None) -> None:
        """Train; with GPUs, k-means assigns on a GPU (the index itself stays here)."""
        if placement is None or not placement.gpus:
            index.train(train)
            return
        ivf = faiss.extract_index_ivf(index)
        assign = placement.to_gpu(faiss.IndexFlat(ivf.d, ivf.metric_type))
        ivf.clustering_index = assign  # ``assign`` must outlive training: it owns the memory
        try:
            with devices.gpu_lock:
                index.train(train)
        finally:
            ivf.clustering_index = None

    @classmethod
    def gpu_bytes_for(cls, dim: int, spec: IndexSpec, n: int) -> int:
        centroids = choose_nlist(spec, n) * dim * 4
        return super().gpu_bytes_for(dim, spec, n) + centroids

    def search_parameters(self, params: SearchParams, selector: Any) -> Any:
        return self._parameters(self.knob_for(params), selector)

    def knob_applies(self, value: int) -> bool:
        return value <= self.nlist

    @property
    def knob_max(self) -> int:
        return self.nlist

    def search_cost(self, params: SearchParams) -> float:
        """The query meets every centroid, then the vectors of its nprobe nearest lists."""
        nprobe = min(self.knob_for(params), self.nlist)
        return self.nlist + nprobe * self.size / self.nlist

    def _remove_ids(self, labels: np.ndarray) -> None:
        """Through the direct map, which FAISS consults only for a selector of this kind
        (any other scans every list, and with a hash table FAISS refuses it)."""
        if faiss.extract_index_ivf(self._index).direct_map.type != faiss.DirectMap.Hashtable:
            super()._remove_ids(labels)
            return
        self._index.remove_ids(faiss.IDSelectorArray(len(labels), faiss.swig_ptr(labels)))

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
    approximate_distances: ClassVar[bool] = True

    @classmethod
    def factory_string(cls, dim: int, spec: IndexSpec, n_train: int) -> str:
        m = spec.pq_m or choose_pq_m(dim)
        # "np": no polysemous training. It only reorders each codebook for Hamming
        # pre-filtering, which searches never use (polysemous_ht stays 0), and it takes
        # minutes for large m whatever the data size.
        return f"IVF{choose_nlist(spec, n_train)},PQ{m}x{spec.pq_bits}np"

    @classmethod
    def gpu_bytes_for(cls, dim: int, spec: IndexSpec, n: int) -> int:
        m = spec.pq_m or choose_pq_m(dim)
        codes = n * (m * spec.pq_bits // 8 + 8)
        codebooks = 2 ** int(spec.pq_bits) * dim * 4
        return int(codes + choose_nlist(spec, n) * dim * 4 + codebooks)

    @property
    def gpu_float16(self) -> bool:
        # float16 lookup tables, which FAISS GPU needs past 48 sub-quantizers of 8 bits
        # (their float32 tables would overflow a block's shared memory).
        ivf = faiss.downcast_index(faiss.extract_index_ivf(self.cpu_index()))
        return int(ivf.pq.M) > FLOAT32_LUT_MAX_M


def choose_pq_m(dim: int) -> int:
    """The divisor of ``dim`` nearest dim/4: about four dimensions per one-byte code."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: abs(m - dim / 4))
