"""A family's knob, the search parameter that trades speed for recall (``efSearch``,
``nprobe``): its calibration to a target recall, and FAISS search parameters at a value."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.spec import SearchParams

if TYPE_CHECKING:
    from indexer.indexes.base import FaissIndex

# Calibration aims a little above the target: it measures on a sample of queries.
CALIBRATION_MARGIN = 0.02
CALIBRATION_QUERIES = 256


def calibrate(
    index: FaissIndex,
    queries: np.ndarray,
    truth: np.ndarray,
    target: float,
    search: Callable[[np.ndarray, int, SearchParams], np.ndarray] | None = None,
) -> float:
    """Set the default knob of ``index`` to the smallest value whose recall@k on
    ``queries`` reaches ``target``.

    ``truth`` are the exact neighbours [nq, k] of ``queries``, which are not in the index
    (held out, like real queries), or which ``search`` (labels [nq, k] found at the given
    parameters; by default the index's own search) leaves out of their own results.
    Returns the recall reached at the chosen value.
    """
    if index.knob is None:
        return 1.0
    if search is None:
        search = lambda q, k, params: index.search(q, k, params, None)[1]  # noqa: E731
    goal = min(1.0, target + CALIBRATION_MARGIN)
    best_value, best_recall = index.knob_values[0], -1.0
    for value in index.knob_values:
        if not index.knob_applies(value):
            break
        params = SearchParams.model_validate({index.knob: value})
        found = search(queries, truth.shape[1], params)
        hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
        recall = hits / truth.size
        if recall > best_recall + 0.002:
            best_value, best_recall = value, recall
        if recall >= goal:
            break
    index.default_knob = best_value
    index.calibrated_on = index.size
    return best_recall


class KnobParameters:
    """FAISS search parameters that set a family's knob (``efSearch``, ``nprobe``) to a
    value: those without a selector are built once a value and kept, since building one
    costs a tenth of a single-query search."""

    def __init__(self, make: Callable[..., Any], knob: str) -> None:
        self._make = make
        self._knob = knob
        self._unfiltered: dict[int, Any] = {}

    def __call__(self, value: int, selector: Any) -> Any:
        if selector is not None:
            return self._make(**{self._knob: value}, sel=selector)
        if value not in self._unfiltered:
            self._unfiltered[value] = self._make(**{self._knob: value})
        return self._unfiltered[value]
