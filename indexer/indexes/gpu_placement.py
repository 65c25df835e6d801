"""Where an index lives: on the CPU, or copied to the GPU(s) when the family has a GPU form
in FAISS and the GPU memory booked for it fits; an index that grows past its booking is
flagged for the collection to move back to the CPU."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from indexer import devices
from indexer.spec import IndexSpec

log = logging.getLogger(__name__)


class GpuPlacement:
    """The GPU side of an index family (a base of :class:`FaissIndex`, which gives the
    FAISS index ``_index``, its ``family`` and its ``storage``)."""

    family: ClassVar[str]
    gpu_capable: ClassVar[bool] = False
    storage: str
    _index: Any
    on_gpu = False
    gpu_bytes = 0  # estimated GPU memory held, 0 on the CPU
    placement_note: str | None = None  # why it stays on the CPU, when GPUs exist
    over_budget = False  # grew past its GPU booking: the collection moves it off
    _placement: devices.Placement | None = None
    _spec: IndexSpec | None = None

    @classmethod
    def gpu_bytes_for(cls, dim: int, spec: IndexSpec, n: int) -> int:
        """Estimated GPU memory for ``n`` vectors (codes, ids and the family's structures)."""
        bytes_per_value = {"float32": 4, "float16": 2, "int8": 1}[spec.storage]
        return n * (dim * bytes_per_value + 8)

    def place_on_gpu(self, placement: devices.Placement, spec: IndexSpec) -> bool:
        """Move the index to the GPU(s) if the family can live there and it fits; else say
        why in :attr:`placement_note`. Returns whether it is on the GPU now."""
        if self.on_gpu or not placement.gpus:
            return self.on_gpu
        if not self.gpu_capable:
            self.placement_note = f"{self.family} indexes have no GPU form in FAISS"
            return False
        dim = int(self._index.d)
        nbytes = self.gpu_bytes_for(dim, spec, int(self._index.ntotal))
        refused = placement.reserve(self, nbytes)
        if refused is not None:
            self.placement_note = f"kept on the CPU: {refused}"
            log.warning("%s index %s", self.family, self.placement_note)
            return False
        try:
            self._index = placement.to_gpu(self.gpu_source(), float16=self.gpu_float16)
        except RuntimeError as exc:  # out of GPU memory, or a form the GPU lacks
            placement.release(self)
            self.placement_note = f"kept on the CPU: FAISS could not place it ({exc})"
            log.warning("%s index %s", self.family, self.placement_note)
            return False
        self.on_gpu, self.gpu_bytes, self.placement_note = True, nbytes, None
        self._placement, self._spec = placement, spec
        return True

    def _rebook(self) -> None:
        """After growing on the GPU, book the extra memory, or flag the index to move off."""
        if self._placement is None or self._spec is None:
            return
        nbytes = self.gpu_bytes_for(int(self._index.d), self._spec, int(self._index.ntotal))
        if nbytes <= self.gpu_bytes:
            return
        refused = self._placement.reserve(self, nbytes)
        if refused is None:
            self.gpu_bytes = nbytes
        else:
            self.over_budget = True
            self.placement_note = f"moving to the CPU: {refused}"

    @property
    def gpu_float16(self) -> bool:
        """Whether the GPU copy computes in float16 (the cloner's ``useFloat16``)."""
        return self.storage == "float16"

    def gpu_source(self) -> Any:
        """The CPU index to copy to the GPU (the index itself unless a family converts)."""
        return self._index

    def release(self) -> None:
        """Give back the GPU memory booked for this index (when it is replaced)."""
        if self._placement is not None:
            self._placement.release(self)

    def cpu_index(self) -> Any:
        return devices.to_cpu(self._index) if self.on_gpu else self._index
