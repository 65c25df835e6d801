"""Distance metrics, and what a hit's ``score`` means under each."""

from __future__ import annotations

import math
from array import array
from enum import StrEnum

import faiss
import numpy as np

from indexer.errors import InvalidVector

# Cosine queries whose sum of squares lies in this range are searched unnormalised; see
# Metric.prepare_queries. (A length from 1/16 to 1,024: embedding models give 1.)
_UNNORMALISED_SQUARES = (1.0 / 256.0, 1024.0**2)


class Metric(StrEnum):
    """How vectors are compared.

    - ``cosine``: score is the cosine similarity, in [-1, 1], higher is nearer. Vectors are
      stored as written and normalised for the index; a zero vector is refused.
    - ``dot``: score is the inner product, higher is nearer.
    - ``l2``: score is the Euclidean distance (not squared), lower is nearer.
    """

    COSINE = "cosine"
    DOT = "dot"
    L2 = "l2"

    @property
    def faiss_metric(self) -> int:
        return int(faiss.METRIC_L2 if self is Metric.L2 else faiss.METRIC_INNER_PRODUCT)

    @property
    def higher_is_better(self) -> bool:
        return self is not Metric.L2

    def prepare(self, vectors: np.ndarray, squares: np.ndarray | None = None) -> np.ndarray:
        """The vectors as the index holds them: unit length for cosine, as they are otherwise.

        ``squares``: each row's sum of squares, where the caller has them already."""
        if self is not Metric.COSINE:
            return vectors
        if squares is None:
            squares = np.einsum("ij,ij->i", vectors, vectors)
        if not squares.all():
            row = int(np.flatnonzero(squares == 0)[0])
            raise InvalidVector(f"vector {row} is all zeros, which has no cosine direction")
        if np.isfinite(squares).all():
            scale = (1.0 / np.sqrt(squares)).astype(np.float32, copy=False)
        else:  # a finite vector whose squares overflow float32: take its norm in float64
            scale = (1.0 / np.linalg.norm(vectors.astype(np.float64), axis=1)).astype(np.float32)
        return np.asarray(np.multiply(vectors, scale[:, None], dtype=np.float32, order="C"))

    def prepare_queries(
        self, queries: np.ndarray, squares: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Queries as the index takes them, and a factor per query for its distances
        (None: leave them as they are); ``squares`` are the rows' sums of squares.

        Cosine queries of a moderate length are not normalised: the inner products of a
        query with the (unit) stored vectors rank the same at any length, so the search
        takes the query as it is and its distances are divided by its length afterwards,
        which saves a pass over the batch (a third of the engine's own time on a batch of
        1,024 768-d queries). Short or long ones are normalised first, which keeps float16
        GPU storage and PQ lookup tables in range.
        """
        if self is not Metric.COSINE:
            return queries, None
        low, high = _UNNORMALISED_SQUARES
        if len(squares) == 1:  # a single query: a float compares faster than reductions
            moderate = low <= float(squares[0]) <= high
        else:
            moderate = low <= np.minimum.reduce(squares) and np.maximum.reduce(squares) <= high
        if moderate:
            scale: np.ndarray = 1.0 / np.sqrt(squares)  # float32, as squares are
            return queries, scale
        return self.prepare(queries, squares), None

    def scores(self, distances: np.ndarray) -> np.ndarray:
        """FAISS distances to scores: FAISS gives squared L2, we give the distance; a
        cosine is clamped to [-1, 1], which float32 rounding oversteps (a vector's cosine
        with itself comes out as 1.0000005)."""
        # Ufuncs rather than np.clip, whose Python wrapper costs more than the work on the
        # few distances of a single query.
        if self is Metric.L2:
            lengths: np.ndarray = np.sqrt(np.maximum(distances, 0.0))
            return lengths
        if self is Metric.COSINE:
            cosines: np.ndarray = np.minimum(np.maximum(distances, -1.0), 1.0)
            return cosines
        return distances

    def query_factor(self, squares: float) -> float | None:
        """:meth:`prepare_queries` for one query of sum of squares ``squares`` (a float),
        in plain Python: the factor for its distances (as float32 computes it) where the
        query is searched as it is; None where it must be normalised first (a cosine
        query short or long). 1.0 for the metrics that take queries as they are."""
        if self is not Metric.COSINE:
            return 1.0
        low, high = _UNNORMALISED_SQUARES
        if not low <= squares <= high:
            return None
        # float32's square root and quotient, each computed in double precision and
        # rounded once to float32 (double carries enough bits for that to be exact).
        return _float32(1.0 / _float32(math.sqrt(squares)))

    def score_list(self, distances: list[float], factor: float = 1.0) -> list[float]:
        """:meth:`scores` of a few float32 distances as Python floats, without numpy, the
        distances multiplied first by ``factor`` (a float32 value: see
        :meth:`query_factor`) as float32 would: the same values to the bit (the product
        of two float32 values is exact in double precision, and rounding it to float32
        is the float32 product; the square root of a float32 taken in double precision,
        then rounded to float32, is the float32 square root; clamping is exact).
        A single query's hits take this way: after an index search has streamed through
        the CPU caches, each numpy call costs microseconds of cache misses."""
        if self is Metric.L2:
            if distances and min(distances) > 0.0:  # the usual case; NaN first says no
                return array("f", map(math.sqrt, distances)).tolist()
            # Negative (rounding) and zero distances give 0.0, NaN stays NaN: np.maximum.
            lengths = [math.sqrt(d) if d > 0.0 else 0.0 if d <= 0.0 else d for d in distances]
            return array("f", lengths).tolist()
        if factor != 1.0:
            distances = array("f", map(factor.__mul__, distances)).tolist()
        # Clamped only where some value is out of bounds (min and max skip a NaN but the
        # first, whose comparisons then fail and send it the clamping way).
        if self is Metric.COSINE and not (
            min(distances, default=0.0) >= -1.0 and max(distances, default=0.0) <= 1.0
        ):
            return [1.0 if d > 1.0 else -1.0 if d < -1.0 else d for d in distances]
        return distances

    def similarities(self, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """A [nq, n] matrix where larger always means nearer (negated distance for l2)."""
        if self is Metric.L2:
            sq = (
                (queries**2).sum(1)[:, None]
                - 2.0 * queries @ vectors.T
                + (vectors**2).sum(1)[None, :]
            )
            return np.asarray(-np.sqrt(np.maximum(sq, 0.0)))
        return np.asarray(queries @ vectors.T)


def _float32(value: float) -> float:
    """``value`` rounded to the nearest float32."""
    return array("f", (value,))[0]
