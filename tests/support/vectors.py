"""Random test vectors that are the same run after run."""

from __future__ import annotations

import numpy as np


class NormalVectors:
    """Float32 vectors drawn from a standard normal by one seeded generator: a module's,
    shared by its tests, which draw in the order they run."""

    def __init__(self, seed: int, dim: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.dim = dim

    def __call__(self, n: int, dim: int | None = None) -> np.ndarray:
        """``n`` vectors of ``dim`` (by default the module's) dimensions, as rows."""
        return self.rng.standard_normal((n, dim or self.dim)).astype(np.float32)
