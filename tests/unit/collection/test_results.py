"""Search results as hits: ids, scores, payloads and vectors, row by row."""

from __future__ import annotations

import numpy as np

from indexer.collection.results import hits, vector
from indexer.points import Hit


def ids_of(labels: np.ndarray) -> list[int | str]:
    return [f"p{label}" for label in labels.tolist()]


def test_rows_short_of_k_give_shorter_lists() -> None:
    scores = np.array([[0.9, 0.5], [0.7, -1.0]], dtype=np.float32)
    labels = np.array([[3, 1], [2, -1]])
    assert hits(scores, labels, ids_of, None, False) == [
        [Hit("p3", 0.8999999761581421), Hit("p1", 0.5)],
        [Hit("p2", 0.699999988079071)],
    ]


def test_payloads_and_vectors_are_read_once_per_label() -> None:
    asked: list[list[int]] = []
    blob = np.array([1.0, 2.0], dtype=np.float32).tobytes()

    def rows(labels: np.ndarray) -> dict[int, tuple[str, bytes | None]]:
        asked.append(labels.tolist())
        return {label: (f'{{"n": {label}}}', blob) for label in labels.tolist()}

    found = hits(np.ones((2, 1)), np.array([[4], [4]]), ids_of, rows, True)
    assert asked == [[4]]
    assert [h.payload for row in found for h in row] == [{"n": 4}, {"n": 4}]
    first = found[0][0].vector
    assert first is not None
    assert first.tolist() == [1.0, 2.0]
    without_payload = hits(np.ones((1, 1)), np.array([[4]]), ids_of, rows, False)
    assert without_payload[0][0].payload is None


def test_a_stored_vector_is_a_writable_copy() -> None:
    blob = np.arange(3, dtype=np.float32).tobytes()
    decoded = vector(blob)
    assert decoded is not None
    assert decoded.flags.writeable
    assert vector(None) is None
