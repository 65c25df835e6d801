"""The search parameters that set an index family's knob: real FAISS objects."""

from __future__ import annotations

import faiss
import numpy as np

from indexer.indexes.knob import KnobParameters


def test_unfiltered_parameters_are_built_once_a_value() -> None:
    parameters = KnobParameters(faiss.SearchParametersHNSW, "efSearch")
    first = parameters(64, None)
    assert first.efSearch == 64
    assert parameters(64, None) is first
    assert parameters(128, None).efSearch == 128


def test_filtered_parameters_carry_their_selector_and_are_never_kept() -> None:
    parameters = KnobParameters(faiss.SearchParametersIVF, "nprobe")
    selector = faiss.IDSelectorBatch(np.array([1, 2], dtype=np.int64))
    filtered = parameters(8, selector)
    assert filtered.nprobe == 8
    assert filtered.sel is not None
    assert parameters(8, selector) is not filtered
    assert parameters(8, None).sel is None
