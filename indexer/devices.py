"""Where FAISS indexes live: on the GPUs when FAISS sees any, on the CPU otherwise."""

from __future__ import annotations

import threading
from typing import Any

import faiss

_lock = threading.Lock()
_resources: list[Any] = []


def gpu_count() -> int:
    """GPUs visible to FAISS; 0 with the CPU build."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def to_gpu(index: Any, *, shard: bool = False) -> Any:
    """A GPU copy of a CPU index: on the one GPU, or across all of them (replicas or shards)."""
    n = gpu_count()
    if n == 1:
        return faiss.index_cpu_to_gpu(_gpu_resources()[0], 0, index)
    options = faiss.GpuMultipleClonerOptions()
    options.shard = shard
    return faiss.index_cpu_to_all_gpus(index, co=options, ngpu=n)


def to_cpu(index: Any) -> Any:
    return faiss.index_gpu_to_cpu(index)


def _gpu_resources() -> list[Any]:
    with _lock:
        if not _resources:
            _resources.extend(faiss.StandardGpuResources() for _ in range(gpu_count()))
        return _resources
