"""The engine against raw FAISS: add throughput, recall@10 and search QPS per index family.

    python -m bench.engine [--quick] [--fashion-dir DIR] [--out PREFIX]

Datasets: GloVe 6B (400k x 50, cosine; 1,000 vectors held out as queries) and Fashion-MNIST
(60k x 784, l2; 1,000 test images as queries). For each family the engine builds and
calibrates a collection; raw FAISS then builds the same index (same factory string, nlist,
PQ and HNSW settings, same training sample; see POLYSEMOUS_NOTE for IVF-PQ) and both are
searched with the engine's calibrated parameter. Timings are the best of ``REPEATS`` runs,
engine and raw taking turns. Raw FAISS runs in the same process, so it shares the engine's
global BLAS threshold and FAISS's thread count.

``--quick`` runs small subsets as a smoke test and saves nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/engine.py): import bench.* from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from bench._datasets import Dataset, fashion_mnist, glove_held_out
from bench._measures import best_seconds, exact_neighbours, hit_ids, recall
from bench._report import Run, add_output_options, describe, output_prefix, table, table_row
from indexer import Engine
from service.sample_data import FASHION_MNIST_DIR

K = 10
REPEATS = 10  # best of: other jobs share the machine, and the fastest run is the least disturbed
N_QUERIES = 1000
UPSERT_BATCH = 50_000
FLAT_SINGLE = 50  # single queries for exact search, which scans every vector each time
FAMILIES = ("flat", "ivf_flat", "ivf_pq", "hnsw")
# The engine's training sample rule (Collection._build): every vector up to this many,
# else a seeded random choice of this many.
ENGINE_TRAIN_SEED = 0
POLYSEMOUS_NOTE = (
    "IVF-PQ is built without polysemous training (factory suffix 'np') by the engine, and "
    "so by raw FAISS, which copies the engine's factory string: that training only "
    "reorders each codebook for Hamming pre-filtering, which neither side searches with "
    "(polysemous_ht = 0), and takes minutes for PQ196 whatever the data size."
)

COLUMNS = (
    "dataset",
    "family",
    "params",
    "engine add/s",
    "raw add/s",
    "engine recall",
    "raw recall",
    "engine QPS batched",
    "raw QPS batched",
    "ratio",
    "engine QPS single",
    "raw QPS single",
    "ratio",
    "engine QPS batched + payload",
)


@dataclass
class Result:
    dataset: str
    family: str
    spec: dict[str, Any]  # the collection's index spec
    n_base: int
    dim: int
    factory: str
    search_params: dict[str, int]
    ef_construction: int | None
    n_train: int | None
    engine_add_s: float
    raw_add_s: float
    engine_recall: float
    raw_recall: float
    engine_batched_s: float
    raw_batched_s: float
    engine_single_s: float
    raw_single_s: float
    engine_payload_batched_s: float
    n_queries: int
    n_single: int
    rates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rates = {
            "engine_add_per_s": self.n_base / self.engine_add_s,
            "raw_add_per_s": self.n_base / self.raw_add_s,
            "engine_qps_batched": self.n_queries / self.engine_batched_s,
            "raw_qps_batched": self.n_queries / self.raw_batched_s,
            "batched_ratio": self.raw_batched_s / self.engine_batched_s,
            "engine_qps_single": self.n_single / self.engine_single_s,
            "raw_qps_single": self.n_single / self.raw_single_s,
            "single_ratio": self.raw_single_s / self.engine_single_s,
            "engine_qps_batched_payload": self.n_queries / self.engine_payload_batched_s,
        }

    def row(self) -> list[str]:
        r = self.rates
        knobs = " ".join(f"{k}={v}" for k, v in self.search_params.items())
        return [
            self.dataset,
            self.family,
            f"`{self.factory}` {knobs}".strip(),
            f"{r['engine_add_per_s']:,.0f}",
            f"{r['raw_add_per_s']:,.0f}",
            f"{self.engine_recall:.3f}",
            f"{self.raw_recall:.3f}",
            f"{r['engine_qps_batched']:,.0f}",
            f"{r['raw_qps_batched']:,.0f}",
            f"{r['batched_ratio']:.2f}",
            f"{r['engine_qps_single']:,.0f}",
            f"{r['raw_qps_single']:,.0f}",
            f"{r['single_ratio']:.2f}",
            f"{r['engine_qps_batched_payload']:,.0f}",
        ]


# -- the two sides -----------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How raw FAISS rebuilds the engine's index, read off the engine's FAISS object."""

    factory: str
    ef_construction: int | None
    n_train: int | None


def recipe_of(family: str, engine_index: Any, n_train: int) -> Recipe:
    if family == "flat":
        return Recipe("IDMap,Flat", None, None)
    if family == "hnsw":
        hnsw = faiss.downcast_index(engine_index.index).hnsw
        return Recipe(f"IDMap,HNSW{hnsw.nb_neighbors(1)}", int(hnsw.efConstruction), None)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(engine_index))
    if family == "ivf_flat":
        return Recipe(f"IVF{ivf.nlist},Flat", None, n_train)
    if ivf.polysemous_ht:
        raise RuntimeError("the engine's IVF-PQ searches with polysemous filtering")
    suffix = "" if ivf.do_polysemous_training else "np"
    return Recipe(f"IVF{ivf.nlist},PQ{ivf.pq.M}x{ivf.pq.nbits}{suffix}", None, n_train)


def search_parameters(family: str, params: dict[str, int]) -> Any:
    """FAISS search parameters equal to what the engine passes for ``params``."""
    if family == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=params["ef_search"])
    if family.startswith("ivf"):
        return faiss.SearchParametersIVF(nprobe=params["nprobe"])
    return None


def bench_family(
    dataset: Dataset, spec: dict[str, Any], truth: np.ndarray, n_single: int
) -> Result:
    family: str = spec["kind"]
    n, dim = dataset.base.shape
    if family == "flat":
        n_single = min(n_single, FLAT_SINGLE)
    queries = dataset.prepared_queries
    single_rows = [queries[i : i + 1] for i in range(n_single)]
    with tempfile.TemporaryDirectory(prefix="vecserve-bench-") as tmp:
        engine = Engine(tmp, device="cpu", background=False)
        col = engine.create_collection("bench", dim=dim, metric=dataset.metric, index=spec)
        started = time.perf_counter()
        for start in range(0, n, UPSERT_BATCH):
            stop = min(start + UPSERT_BATCH, n)
            col.upsert(
                list(range(start, stop)), dataset.base[start:stop], dataset.payloads[start:stop]
            )
        col.optimize()
        engine_add_s = time.perf_counter() - started
        info = col.index_info
        if info["family"] != family:
            raise RuntimeError(f"the engine built {info['family']}, not {family}")
        params: dict[str, int] = info["default_params"]
        recipe = recipe_of(family, col._index._index, col._index.trained_on)
        raw, raw_add_s = build_raw(dataset, recipe)
        faiss_params = search_parameters(family, params)
        _, raw_found = raw.search(queries, K, params=faiss_params)
        found = hit_ids(col.search(dataset.queries, k=K, with_payload=False), K)
        batched = best_seconds(
            {
                "engine": lambda: col.search(dataset.queries, k=K, with_payload=False),
                "raw": lambda: raw.search(queries, K, params=faiss_params),
                "payload": lambda: col.search(dataset.queries, k=K, with_payload=True),
            },
            REPEATS,
        )
        single = best_seconds(
            {
                "engine": lambda: [
                    col.search(q, k=K, with_payload=False) for q in dataset.queries[:n_single]
                ],
                "raw": lambda: [raw.search(q, K, params=faiss_params) for q in single_rows],
            },
            REPEATS,
        )
        engine.close()
    return Result(
        dataset=dataset.name,
        family=family,
        spec=spec,
        n_base=n,
        dim=dim,
        factory=recipe.factory,
        search_params=params,
        ef_construction=recipe.ef_construction,
        n_train=recipe.n_train,
        engine_add_s=engine_add_s,
        raw_add_s=raw_add_s,
        engine_recall=recall(found, truth),
        raw_recall=recall(raw_found, truth),
        engine_batched_s=batched["engine"],
        raw_batched_s=batched["raw"],
        engine_single_s=single["engine"],
        raw_single_s=single["raw"],
        engine_payload_batched_s=batched["payload"],
        n_queries=len(queries),
        n_single=n_single,
    )


def build_raw(dataset: Dataset, recipe: Recipe) -> tuple[Any, float]:
    """Raw FAISS's index (ids = base positions) and its train + add time in seconds.

    Vectors are prepared (normalised for cosine) outside the timing. Training uses the
    engine's sample: every vector, or ``n_train`` of them chosen as the engine chooses.
    """
    vectors = dataset.prepared_base
    n, dim = vectors.shape
    metric = faiss.METRIC_INNER_PRODUCT if dataset.metric == "cosine" else faiss.METRIC_L2
    train = vectors
    if recipe.n_train is not None and recipe.n_train < n:
        rng = np.random.default_rng(ENGINE_TRAIN_SEED)
        train = vectors[rng.choice(n, recipe.n_train, replace=False)]
    started = time.perf_counter()
    index = faiss.index_factory(dim, recipe.factory, metric)
    if recipe.ef_construction is not None:
        faiss.downcast_index(index.index).hnsw.efConstruction = recipe.ef_construction
    if not index.is_trained:
        index.train(train)
    index.add_with_ids(vectors, np.arange(n, dtype=np.int64))
    return index, time.perf_counter() - started


# -- output ------------------------------------------------------------------------------


def markdown(report: dict[str, Any], results: list[Result]) -> list[str]:
    settings = report["settings"]
    return [
        "# Engine vs raw FAISS",
        "",
        describe(report),
        "",
        *table(COLUMNS, [r.row() for r in results]),
        "",
        *(f"- {d['name']}: {d['metric']}, {d['note']}." for d in report["datasets"]),
        f"- QPS: best of {settings['repeats']} runs, engine and raw taking turns; batched = "
        f"all {N_QUERIES:,} queries in one call, single = {settings['n_single']} queries "
        f"({FLAT_SINGLE} for flat) one call each. Ratio = engine / raw; the engine's figures "
        "include its own work (validation, normalising queries, building hits).",
        "- add/s: engine = upserts in batches of "
        f"{UPSERT_BATCH:,} (SQLite store included) + optimize() (build, calibration, "
        "save); raw = index_factory + train + add_with_ids on prepared vectors.",
        "- Raw FAISS uses the engine's factory string, training sample and calibrated "
        "search parameter, in the same process: faiss.cvar.distance_compute_blas_threshold "
        f"= {settings['blas_threshold']} (set by Engine) for both.",
        f"- ivf_pq: {POLYSEMOUS_NOTE}",
        "- recall = recall@10 against exact search (inner product on unit vectors for "
        "cosine, L2 for Fashion-MNIST).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion-dir", type=Path, default=FASHION_MNIST_DIR)
    add_output_options(parser, "engine", quick="small subsets, a smoke test")
    args = parser.parse_args()
    out = output_prefix(args, "engine")
    n_single = 100 if args.quick else 300
    run = Run("bench.engine")
    datasets = [
        glove_held_out(50_000 if args.quick else None, N_QUERIES),
        fashion_mnist(args.fashion_dir, 20_000 if args.quick else None, N_QUERIES),
    ]
    results: list[Result] = []
    print("\n".join(table(COLUMNS, [])), flush=True)
    for dataset in datasets:
        truth = exact_neighbours(dataset.base, dataset.queries, K, dataset.metric)
        for family in FAMILIES:
            result = bench_family(dataset, {"kind": family}, truth, n_single)
            results.append(result)
            print(table_row(result.row()), flush=True)
    run.finish(
        out,
        {
            "settings": {
                "k": K,
                "repeats": REPEATS,
                "timing": "best of repeats, engine and raw runs taking turns",
                "n_queries": N_QUERIES,
                "n_single": n_single,
                "n_single_flat": min(n_single, FLAT_SINGLE),
                "upsert_batch": UPSERT_BATCH,
                "blas_threshold": int(faiss.cvar.distance_compute_blas_threshold),
                "blas_threshold_note": "set by Engine.__init__; raw FAISS runs in the same "
                "process and shares it",
                "ivf_pq_note": POLYSEMOUS_NOTE,
            },
            "datasets": [d.describe() for d in datasets],
            "results": [asdict(r) for r in results],
        },
        lambda report: markdown(report, results),
    )


if __name__ == "__main__":
    main()
