"""Fusion of stage rankings and MMR: exact values on small cases."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.query.fusion import Ranking, fuse
from indexer.query.mmr import mmr_order


def ranking(labels: list[int], scores: list[float]) -> Ranking:
    return Ranking(np.array(labels, dtype=np.int64), np.array(scores, dtype=np.float64))


def test_rrf_sums_weighted_reciprocal_ranks() -> None:
    fused = fuse([ranking([1, 2, 3], [0.9, 0.8, 0.1]), ranking([3, 4], [12.0, 5.0])], [1, 2], k=60)
    expected = {1: 1 / 61, 2: 1 / 62, 3: 1 / 63 + 2 / 61, 4: 2 / 62}
    assert fused.labels.tolist() == [3, 4, 1, 2]
    assert fused.scores == pytest.approx([expected[i] for i in fused.labels.tolist()])
    row = fused.labels.tolist().index(3)
    assert fused.ranks[row].tolist() == [3, 1]
    assert fused.stage_scores[row].tolist() == [0.1, 12.0]
    assert fused.ranks[fused.labels.tolist().index(4)].tolist() == [0, 2]


def test_rrf_k_flattens_the_head_of_each_ranking() -> None:
    # Point 1 heads one ranking; point 3 is third in both.
    dense, lexical = ranking([1, 2, 3], [3, 2, 1]), ranking([4, 5, 3], [3, 2, 1])
    assert fuse([dense, lexical], [1, 1], k=0.5).labels.tolist()[0] == 1  # 1/1.5 > 2/3.5
    assert fuse([dense, lexical], [1, 1], k=60).labels.tolist()[0] == 3  # 1/61 < 2/63


def test_dbsf_maps_mean_plus_minus_three_std_to_zero_and_one() -> None:
    scores = [10.0, 6.0, 2.0]
    fused = fuse([ranking([1, 2, 3], scores)], [1.0], "dbsf")
    mean, std = np.mean(scores), np.std(scores)
    assert fused.scores == pytest.approx([(s - mean + 3 * std) / (6 * std) for s in scores])
    assert fuse([ranking([1, 2], [3.0, 3.0])], [1.0], "dbsf").scores.tolist() == [0.5, 0.5]


def test_relative_score_min_max_scales_each_stage() -> None:
    fused = fuse(
        [ranking([1, 2, 3], [0.9, 0.7, 0.5]), ranking([3, 1], [20.0, 10.0])],
        [0.25, 0.75],
        "relative_score",
    )
    expected = {1: 0.25 * 1.0 + 0.75 * 0.0, 2: 0.25 * 0.5, 3: 0.25 * 0.0 + 0.75 * 1.0}
    assert dict(zip(fused.labels.tolist(), fused.scores.tolist(), strict=True)) == pytest.approx(
        expected
    )
    assert fused.labels.tolist() == [3, 1, 2]


def test_fusion_of_empty_rankings_is_empty() -> None:
    empty = ranking([], [])
    for method in ("rrf", "dbsf", "relative_score"):
        assert len(fuse([empty, empty], [1, 1], method).labels) == 0  # type: ignore[arg-type]


def test_mmr_with_lambda_one_keeps_the_score_order() -> None:
    vectors = np.array([[1, 0], [1, 0.01], [0, 1]], dtype=np.float32)
    order, _ = mmr_order(np.array([3.0, 2.0, 1.0]), vectors, 1.0)
    assert order.tolist() == [0, 1, 2]


def test_mmr_moves_near_duplicates_behind_a_different_item() -> None:
    vectors = np.array([[1, 0], [1, 0.01], [1, 0.02], [0, 1]], dtype=np.float32)
    order, values = mmr_order(np.array([4.0, 3.9, 3.8, 3.0]), vectors, 0.5)
    assert order.tolist()[:2] == [0, 3]
    assert values[0] == pytest.approx(0.5)
    assert sorted(order.tolist()) == [0, 1, 2, 3]
