"""Collections on the GPU agree with the same collections on the CPU.

Marked ``gpu``: they skip where FAISS sees no GPU (CI). The data are clustered, like real
embeddings, so IVF recall means something.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer import Collection, Engine, Hit, PointId
from indexer.devices import GPU_MAX_K, Placement, gpu_memory

pytestmark = pytest.mark.gpu

DIM = 64


def clustered(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dim)).astype(np.float32)
    points = centres[rng.integers(0, 200, n)] + 0.35 * rng.normal(size=(n, dim))
    return points.astype(np.float32)


def fill(col: Collection, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), 10_000):
        part = vectors[start : start + 10_000]
        ids = list(range(start, start + len(part)))
        col.upsert(ids, part, payloads=[{"even": i % 2 == 0} for i in ids])


def ids_of(hits_per_query: list[list[Hit]]) -> list[list[PointId]]:
    return [[h.id for h in hits] for hits in hits_per_query]


def recall(found: list[list[PointId]], truth: list[list[PointId]]) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


Engines = tuple[Engine, Engine]


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Engines]:
    with (
        Engine(tmp_path / "gpu", device="auto", background=False) as gpu,
        Engine(tmp_path / "cpu", device="cpu", background=False) as cpu,
    ):
        yield gpu, cpu


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_flat_on_gpu_returns_the_cpu_ids(engines: Engines, metric: str) -> None:
    gpu, cpu = engines
    data, queries = clustered(20_000, 0), clustered(200, 1)
    on_gpu = gpu.create_collection("c", dim=DIM, metric=metric, index="flat")
    on_cpu = cpu.create_collection("c", dim=DIM, metric=metric, index="flat")
    fill(on_gpu, data)
    fill(on_cpu, data)
    assert on_gpu.index_info["device"] == "gpu"
    assert on_cpu.index_info["device"] == "cpu"
    g, c = on_gpu.search(queries, k=10), on_cpu.search(queries, k=10)
    assert ids_of(g) == ids_of(c)
    g_scores = np.array([[h.score for h in hits] for hits in g])
    c_scores = np.array([[h.score for h in hits] for hits in c])
    np.testing.assert_allclose(g_scores, c_scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["ivf_flat", "ivf_pq"])
def test_ivf_on_gpu_has_the_cpu_recall(engines: Engines, family: str) -> None:
    gpu, cpu = engines
    data, queries = clustered(40_000, 2), clustered(300, 3)
    spec = {"kind": family, "nlist": 256} | ({"pq_m": 16} if family == "ivf_pq" else {})
    truth_col = cpu.create_collection("truth", dim=DIM, metric="l2", index="flat")
    fill(truth_col, data)
    truth = ids_of(truth_col.search(queries, k=10))
    recalls = {}
    for name, engine in (("gpu", gpu), ("cpu", cpu)):
        col = engine.create_collection(family, dim=DIM, metric="l2", index=spec)
        fill(col, data)
        col.optimize()
        assert col.index_info["family"] == family
        assert col.index_info["device"] == name
        found = ids_of(col.search(queries, k=10, params={"nprobe": 16}))
        recalls[name] = recall(found, truth)
    # IVF-Flat computes the same distances on both; the GPU's IVF-PQ sums its lookup
    # tables in another order and rounding, which moves PQ recall by about a point.
    tolerance = 0.01 if family == "ivf_flat" else 0.02
    assert abs(recalls["gpu"] - recalls["cpu"]) <= tolerance, recalls


def test_writes_on_the_gpu_are_searchable(engines: Engines) -> None:
    gpu, _ = engines
    data = clustered(20_000, 4)
    for family in ("flat", "ivf_flat"):
        col = gpu.create_collection(family, dim=DIM, metric="l2", index=family)
        fill(col, data)
        col.optimize()
        assert col.index_info["device"] == "gpu"
        col.delete(ids=list(range(100)))
        moved = clustered(1, 99)[0] * 10  # far from everything else
        col.upsert([150], moved[None, :])
        col.upsert(["new"], (moved + 0.001)[None, :])
        hits = col.search(data[:100], k=5)
        assert all(h.id not in range(100) for row in hits for h in row)
        near = [h.id for h in col.search(moved[None, :], k=2)[0]]
        assert sorted(near, key=str) == [150, "new"]
        assert col.count() == 20_000 - 100 + 1


def test_filtered_search_on_gpu_equals_cpu(engines: Engines) -> None:
    gpu, cpu = engines
    data, queries = clustered(20_000, 5), clustered(50, 6)
    cols = []
    for engine in (gpu, cpu):
        col = engine.create_collection("f", dim=DIM, metric="cosine", index="flat")
        fill(col, data)
        cols.append(col)
    g = cols[0].search(queries, k=10, filter={"even": True})
    c = cols[1].search(queries, k=10, filter={"even": True})
    assert ids_of(g) == ids_of(c)
    assert all(h.id % 2 == 0 for row in g for h in row)


def test_k_beyond_the_gpu_limit_is_answered(engines: Engines) -> None:
    gpu, cpu = engines
    data, queries = clustered(5_000, 7), clustered(3, 8)
    g = gpu.create_collection("k", dim=DIM, metric="l2", index="flat")
    c = cpu.create_collection("k", dim=DIM, metric="l2", index="flat")
    fill(g, data)
    fill(c, data)
    k = GPU_MAX_K + 500
    g_hits, c_hits = g.search(queries, k=k), c.search(queries, k=k)
    assert [len(row) for row in g_hits] == [k] * 3
    assert [set(r) for r in ids_of(g_hits)] == [set(r) for r in ids_of(c_hits)]


def test_saved_on_gpu_opens_on_cpu_and_back(tmp_path: Path) -> None:
    data, queries = clustered(30_000, 9), clustered(100, 10)
    folder = tmp_path / "data"
    with Engine(folder, device="auto", background=False) as engine:
        col = engine.create_collection("m", dim=DIM, metric="l2", index="ivf_flat")
        fill(col, data[:20_000])
        col.optimize()
        assert col.index_info["device"] == "gpu"
        before = ids_of(col.search(queries, k=10, params={"nprobe": 32}))
    with Engine(folder, device="cpu", background=False) as engine:
        col = engine.get_collection("m")
        assert col.index_info == col.index_info | {"device": "cpu", "family": "ivf_flat"}
        assert ids_of(col.search(queries, k=10, params={"nprobe": 32})) == before
        col.upsert(list(range(20_000, 30_000)), data[20_000:])
        after = ids_of(col.search(queries, k=10, params={"nprobe": 32}))
    with Engine(folder, device="auto", background=False) as engine:
        col = engine.get_collection("m")
        assert col.index_info["device"] == "gpu"
        assert col.count() == 30_000
        again = ids_of(col.search(queries, k=10, params={"nprobe": 32}))
        assert recall(again, after) >= 0.99


def test_a_collection_too_large_for_the_gpu_stays_on_the_cpu(tmp_path: Path) -> None:
    data, queries = clustered(20_000, 11), clustered(20, 12)
    with Engine(tmp_path / "d", device="auto", background=False, gpu_memory_limit=1 << 20) as e:
        col = e.create_collection("big", dim=DIM, metric="l2", index="flat")
        fill(col, data[:100])  # 100 x 64 floats fit in 1 MiB
        assert col.index_info["device"] == "gpu"
        fill(col, data)  # 20,000 x 64 floats do not fit: maintenance moves it off
        col.optimize()
        assert col.index_info["device"] == "cpu"
        assert len(col.search(queries, k=10)[0]) == 10
    with Engine(tmp_path / "d", device="auto", background=False, gpu_memory_limit=1 << 20) as e:
        col = e.get_collection("big")  # opened when too large: it never goes to the GPU
        info = col.index_info
        assert info["device"] == "cpu"
        assert "GPU memory limit" in info["placement_note"]
        assert ids_of(col.search(queries, k=10)) == ids_of(
            e.get_collection("big").search(queries, k=10, params={"exact": True})
        )


def test_placement_refuses_more_than_the_gpu_has_free() -> None:
    memory = gpu_memory(0)
    assert memory is not None, "NVML or torch should report GPU memory on a GPU machine"
    free, total = memory
    assert 0 < free <= total
    placement = Placement.detect("auto")
    owner = object()
    refused = placement.reserve(owner, total + 1)
    assert refused is not None
    assert "free" in refused
    assert placement.reserve(owner, 1 << 20) is None
    placement.release(owner)
    assert placement.reserved == 0


def test_float16_storage_on_gpu_round_trips(tmp_path: Path) -> None:
    data, queries = clustered(10_000, 13), clustered(50, 14)
    spec = {"kind": "flat", "storage": "float16"}
    with Engine(tmp_path / "d", device="auto", background=False) as engine:
        col = engine.create_collection("h", dim=DIM, metric="cosine", index=spec)
        fill(col, data)
        assert col.index_info["device"] == "gpu"
        on_gpu = ids_of(col.search(queries, k=10))
    with Engine(tmp_path / "d", device="cpu", background=False) as engine:
        col = engine.get_collection("h")
        assert col.index_info["storage"] == "float16"
        assert recall(ids_of(col.search(queries, k=10)), on_gpu) >= 0.98
