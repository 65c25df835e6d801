"""Where FAISS indexes live: on the GPUs when FAISS sees any, on the CPU otherwise.

A :class:`Placement` decides, index by index, whether it goes to the GPU: it estimates the
index's size, checks it against what the GPU has free (and against an optional budget), and
says why when an index stays on the CPU. GPU work from all collections goes through one
lock: FAISS's GPU resources (streams, scratch memory) must not be used by two threads at
once.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import faiss

log = logging.getLogger(__name__)

# FAISS GPU k-selection and nprobe stop at 2048; larger k is answered on the CPU.
GPU_MAX_K = 2048
# Scratch memory FAISS reserves per GPU, and a margin for CUDA itself and fragmentation.
GPU_HEADROOM_BYTES = 2 * 1024**3
GPU_FREE_FRACTION = 0.9

gpu_lock = threading.RLock()
_resources: list[Any] = []


def gpu_count() -> int:
    """GPUs visible to FAISS; 0 with the CPU build."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def gpu_memory(device: int = 0) -> tuple[int, int] | None:
    """(free, total) bytes of one GPU, or None when nothing can tell (no NVML, no torch)."""
    try:
        pynvml: Any = importlib.import_module("pynvml")  # nvidia-ml-py, where installed
        pynvml.nvmlInit()
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(device))
        return int(info.free), int(info.total)
    except Exception:  # NVML missing or not usable here: try torch if it is loaded
        pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total)
    return None


def has_cagra() -> bool:
    """Whether this FAISS build has CAGRA (only builds with cuVS do)."""
    return gpu_count() > 0 and hasattr(faiss, "GpuIndexCagra")


@dataclass
class Placement:
    """The GPU policy of an engine: how many GPUs, how an index spreads over several
    (``replicate``: each GPU holds a copy and takes part of the queries; ``shard``: each holds
    part of the vectors), and how many bytes vecserve may use per GPU (``None``: what is
    free, less a margin)."""

    gpus: int = 0
    mode: Literal["replicate", "shard"] = "replicate"
    memory_limit: int | None = None
    _reserved: dict[int, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def detect(
        cls,
        device: str = "auto",
        *,
        mode: Literal["replicate", "shard"] = "replicate",
        memory_limit: int | None = None,
    ) -> Placement:
        return cls(gpus=gpu_count() if device != "cpu" else 0, mode=mode, memory_limit=memory_limit)

    @property
    def reserved(self) -> int:
        with self._lock:
            return sum(self._reserved.values())

    def reserve(self, owner: object, nbytes: int) -> str | None:
        """Book ``nbytes`` per GPU for ``owner``; None if it fits, else why it does not."""
        per_gpu = nbytes // self.gpus if self.mode == "shard" and self.gpus > 1 else nbytes
        with self._lock:
            others = sum(v for k, v in self._reserved.items() if k != id(owner))
            if self.memory_limit is not None and others + per_gpu > self.memory_limit:
                return (
                    f"needs ~{_gib(per_gpu)} per GPU; the GPU memory limit is "
                    f"{_gib(self.memory_limit)} and {_gib(others)} is taken"
                )
            memory = gpu_memory(0)
            if memory is not None:
                free, _ = memory
                room = int(free * GPU_FREE_FRACTION) - GPU_HEADROOM_BYTES
                if per_gpu > room:
                    return f"needs ~{_gib(per_gpu)} per GPU; {_gib(max(room, 0))} is free"
            self._reserved[id(owner)] = per_gpu
            return None

    def release(self, owner: object) -> None:
        with self._lock:
            self._reserved.pop(id(owner), None)

    def to_gpu(self, index: Any, *, float16: bool = False) -> Any:
        """A GPU copy of a CPU index, on one GPU or spread over all of them."""
        options: Any
        with gpu_lock:
            if self.gpus == 1:
                options = faiss.GpuClonerOptions()
                options.useFloat16 = float16
                return faiss.index_cpu_to_gpu(_gpu_resources()[0], 0, index, options)
            options = faiss.GpuMultipleClonerOptions()
            options.useFloat16 = float16
            options.shard = self.mode == "shard"
            return faiss.index_cpu_to_gpu_multiple_py(_gpu_resources(), index, options)


def to_cpu(index: Any) -> Any:
    with gpu_lock:
        return faiss.index_gpu_to_cpu(index)


def _gpu_resources() -> list[Any]:
    if not _resources:
        _resources.extend(faiss.StandardGpuResources() for _ in range(gpu_count()))
    return _resources


def _gib(nbytes: int) -> str:
    if nbytes < 1024**3:
        return f"{nbytes / 1024**2:.1f} MiB"
    return f"{nbytes / 1024**3:.2f} GiB"
