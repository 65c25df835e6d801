"""Filtered search: cold and warm latency and recall by selectivity, beside numpy.

    python -m bench.filters [--sizes 100000,300000] [--queries 40] [--index SPEC]
                            [--data FOLDER] [--build-threads N] [--quick] [--out PREFIX]

Data: 384-d unit vectors around 1,000 random centres (``bench._datasets.clustered``) with
synthetic catalogue payloads: ``category`` (one of 50), ``brand`` (one of 1,000),
``price`` (uniform in [0, 1000)), ``tags`` (one to three of 100) and ``in_stock`` (true
for 80%). Filters at five selectivities, each query with constants of its own, so that
no filter is ever seen twice unless asked to be:

- 50%: ``price < p`` (p near 500); 10%: ``category $in`` 5 categories;
- 1%: ``brand $in`` 10 brands; 0.1%: ``brand == b``;
- 0.01%: ``brand == b and price < p`` (p near 100).

For each size, one collection (``--index``, cosine) is searched one query at a time, k=10:

- **sql cold**: the filter never seen before, on payload fields not indexed (the engine
  reads every payload with SQLite's JSON functions, as before payload indexes);
- **sql warm**: the same filter again (the engine caches the labels it matched);
- **sql after write**: a one-point upsert, then a filter seen before (a write brings the
  cached labels up to date: the rows written since are read, not every payload);
- **indexed cold / warm / after write**: the same, once the fields are declared as payload
  indexes (``keyword`` for category, brand and tags; ``number`` for price);
- **numpy**: the lower bound, timed on the same query right after the indexed search: a
  numpy mask over prebuilt columns of the same values, then an exact scan of the matching
  vectors in memory (a matrix product and a partial sort);
- **recall@10** of the indexed search against the exact filtered top 10;
- **plan**: how the engine ran the indexed searches (``Collection.search_plans``: an
  exact scan of the matches, the index with its knob widened, an over-fetch), with the
  share of the row's searches that took each.

At ``--filter-only-sizes`` (1M by default), where no vector index is built, only the
filter's part: labels and FAISS ID selector from the payload indexes, beside the numpy mask.

The HNSW graph of 1M points takes tens of minutes to build on two cores: ``--data FOLDER``
keeps each size's collection (store and saved index) in ``FOLDER/<size>`` and later runs
open it instead (a few seconds), so that the searches of a run at 1M take minutes::

    python -m bench.filters --sizes 100000,300000,1000000 --filter-only-sizes "" \
        --data DATA_FOLDER

Latencies are medians in milliseconds. The SQL path reads every payload per cold query, so
it runs on fewer queries (``--sql-queries``). Saves ``bench/results/filters.json`` and
``.md``.
"""

from __future__ import annotations

import os

# Queries come one at a time: OpenMP and OpenBLAS threads woken for each call gain nothing
# on one vector and, on a shared two-core machine, cost tens of milliseconds per call
# (FAISS's HNSW search of one query: 0.4 ms on one thread, 70 ms on two under load). One
# thread each, set before numpy and faiss load; the report records it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench._datasets import clustered
from bench._report import Run, add_output_options, describe, output_prefix, save, table
from indexer import Engine
from indexer.collection.search import PlanCounts
from indexer.indexes import LabelSet
from indexer.payload_index import PayloadIndexes
from indexer.spec import IndexSpec
from indexer.threads import cores

K = 10
DIM = 384
SELECTIVITIES = (0.5, 0.1, 0.01, 0.001, 0.0001)
INDEXES = {"category": "keyword", "brand": "keyword", "price": "number", "tags": "keyword"}


class Catalogue:
    """The payload columns as numpy arrays (the lower bound's prebuilt columns)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.category = rng.integers(0, 50, n)
        self.brand = rng.integers(0, 1000, n)
        self.price = np.round(rng.random(n) * 1000, 2)
        self.n_tags = rng.integers(1, 4, n)
        self.tags = rng.integers(0, 100, (n, 3))
        self.in_stock = rng.random(n) < 0.8

    def payloads(self, start: int, stop: int) -> list[dict[str, Any]]:
        return [
            {
                "category": f"c{self.category[i]}",
                "brand": f"b{self.brand[i]}",
                "price": float(self.price[i]),
                "tags": [f"t{t}" for t in self.tags[i, : self.n_tags[i]]],
                "in_stock": bool(self.in_stock[i]),
            }
            for i in range(start, stop)
        ]


def query_filter(selectivity: float, i: int) -> tuple[dict[str, Any], Callable[[Catalogue], Any]]:
    """The ``i``-th filter at a selectivity (its constants its own), and its numpy mask."""
    drift = (i % 1000) * 0.001  # a constant of its own, the selectivity all but unchanged
    if selectivity == 0.5:
        p = 500 + drift
        return {"price": {"$lt": p}}, lambda c: c.price < p
    if selectivity == 0.1:
        cats = [(5 * i + j) % 50 for j in range(5)]
        return {"category": {"$in": [f"c{x}" for x in cats]}}, lambda c: np.isin(c.category, cats)
    if selectivity == 0.01:
        brands = [(10 * i + j) % 1000 for j in range(10)]
        return {"brand": {"$in": [f"b{x}" for x in brands]}}, lambda c: np.isin(c.brand, brands)
    if selectivity == 0.001:
        b = i % 1000
        return {"brand": f"b{b}"}, lambda c: c.brand == b
    b, p = i % 1000, 100 + drift
    return {"brand": f"b{b}", "price": {"$lt": p}}, lambda c: (c.brand == b) & (c.price < p)


def numpy_search(
    base: np.ndarray, catalogue: Catalogue, mask_of: Callable[[Catalogue], Any], query: np.ndarray
) -> np.ndarray:
    """The lower bound: mask, then an exact top k of the matches (cosine on unit rows): a
    product with the matching rows, or past an eighth of them with every row (a copy of
    the matching rows costs more then)."""
    mask = mask_of(catalogue)
    if mask.sum() * 8 > len(base):
        scores = np.where(mask, base @ query, -np.inf)
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])]
    matches = np.flatnonzero(mask)
    scores = base[matches] @ query
    top = np.argpartition(-scores, min(K, len(scores) - 1))[:K] if len(scores) > K else None
    chosen = matches if top is None else matches[top]
    return chosen[np.argsort(-(base[chosen] @ query))]


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def measure(
    col: Any,
    queries: np.ndarray,
    selectivity: float,
    offset: int,
    count: int,
    catalogue: Catalogue,
    base: np.ndarray,
    n: int,
) -> dict[str, Any]:
    """Cold, warm and after-a-write latency of ``count`` queries, recall@10, and the
    plans the engine took."""
    plans_before = col.search_plans
    cold, warm, after_write, found, truth, masks, scans, matches = ([] for _ in range(8))
    for i in range(count):
        spec, mask_of = query_filter(selectivity, offset + i)
        query = queries[i % len(queries)]

        def search(spec: dict[str, Any] = spec, query: np.ndarray = query) -> Any:
            return col.search(query, k=K, filter=spec, with_payload=False)

        seconds, hits = timed(search)
        cold.append(seconds)
        warm.append(timed(search)[0])
        # A write (a point that matches nothing asked here), then the same filter again.
        col.upsert([f"w{i}"], query[None, :], [{"brand": "none", "price": -1.0}])
        after_write.append(timed(search)[0])
        col.delete([f"w{i}"])
        found.append([h.id for h in hits[0]])
        # The lower bound, on the same query at the same moment (others' load alike).
        seconds, mask = timed(lambda m=mask_of: np.flatnonzero(m(catalogue)))  # type: ignore[misc]
        masks.append(seconds)
        matches.append(len(mask))
        seconds, best = timed(lambda m=mask_of, q=query: numpy_search(base, catalogue, m, q))  # type: ignore[misc]
        scans.append(seconds)
        truth.append(best.tolist())
    plans = {
        plan: taken - plans_before.get(plan, 0)
        for plan, taken in col.search_plans.items()
        if taken > plans_before.get(plan, 0)
    }
    hits_found = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    wanted = sum(min(K, len(t)) for t in truth)
    return {
        "cold_ms": median_ms(cold),
        "warm_ms": median_ms(warm),
        "after_write_ms": median_ms(after_write),
        "recall": hits_found / max(1, wanted),
        "queries": count,
        "matches": float(statistics.median(matches)),
        "numpy_mask_ms": median_ms(masks),
        "numpy_ms": median_ms(scans),
        "plans": plans,
    }


def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    data = clustered(n, args.queries, DIM)
    base, queries = data.base, data.queries
    catalogue = Catalogue(n)
    result: dict[str, Any] = {"n": n, "index": args.index, "rows": []}
    with ExitStack() as stack:
        if args.data is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            folder = args.data / str(n)
            folder.mkdir(parents=True, exist_ok=True)
        engine = stack.enter_context(Engine(folder, background=False))
        col = collection(engine, n, args, base, catalogue, result)
        print(f"{n:,} points, {result['serving']}: {built(result)}", flush=True)
        sql = {
            s: measure(col, queries, s, 0, args.sql_queries, catalogue, base, n)
            for s in SELECTIVITIES
        }
        started = time.perf_counter()
        for field, kind in INDEXES.items():
            col.create_payload_index(field, kind)  # no background work: built now
        result["payload_index_build_s"] = time.perf_counter() - started
        indexed = {
            s: measure(col, queries, s, 5000, args.queries, catalogue, base, n)
            for s in SELECTIVITIES
        }
        for field in INDEXES:  # a folder kept for the next run opens without them
            col.drop_payload_index(field)
        for s in SELECTIVITIES:
            result["rows"].append({"selectivity": s, "sql": sql[s], "indexed": indexed[s]})
            print(
                f"  {s:>7.2%}: sql cold {sql[s]['cold_ms']:8.1f} ms, indexed cold "
                f"{indexed[s]['cold_ms']:6.1f} ms (recall {indexed[s]['recall']:.3f}), numpy "
                f"{indexed[s]['numpy_ms']:6.1f} ms",
                flush=True,
            )
    return result


def collection(
    engine: Engine,
    n: int,
    args: argparse.Namespace,
    base: np.ndarray,
    catalogue: Catalogue,
    result: dict[str, Any],
) -> Any:
    """The collection of ``n`` points: the one a kept folder holds when it has them all
    in the index asked for (its graph saved with it), else a new one, loaded and built
    with every core (the searches then run on one)."""
    spec = IndexSpec.parse(json.loads(args.index) if args.index.startswith("{") else args.index)
    if "items" in engine.list_collections():
        col = engine.get_collection("items")
        # The data depend on the query count too (bench._datasets.clustered): the last
        # point tells whether the stored ones are those of this run.
        last = col.get([n - 1])
        same = bool(last) and np.array_equal(last[0].vector, base[n - 1])
        if col.config.index == spec and col.count() == n and same:
            for field in col.payload_fields:  # left by a run that stopped half-way
                col.drop_payload_index(field)
            result.update(reused=True, load_s=0.0, optimize_s=0.0)
            result["serving"] = col.index_info["family"]
            return col
        engine.drop_collection("items")
    col = engine.create_collection("items", dim=DIM, metric="cosine", index=spec)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(args.build_threads)
    try:
        result["load_s"] = timed(lambda: load(col, base, catalogue))[0]
        result["optimize_s"] = timed(col.optimize)[0]
    finally:
        faiss.omp_set_num_threads(threads)
    result["reused"] = False
    result["serving"] = col.index_info["family"]
    return col


def filter_only(n: int, count: int) -> dict[str, Any]:
    """At sizes too large to build a vector index here: the filter's part of a search
    alone, from the engine's payload indexes (labels, and the ID selector FAISS takes),
    beside the numpy mask over the same columns."""
    catalogue = Catalogue(n)
    indexes = PayloadIndexes(np.empty(0, dtype=np.int64))
    indexes.declare(INDEXES)
    started = time.perf_counter()
    for start in range(0, n, 50_000):
        stop = min(n, start + 50_000)
        labels = np.arange(start + 1, stop + 1, dtype=np.int64)
        indexes.upserted(labels, catalogue.payloads(start, stop), np.empty(0, dtype=np.int64))
    rows = []
    for s in SELECTIVITIES:
        engine_times, numpy_times, matches = [], [], []
        for i in range(count):
            spec, mask_of = query_filter(s, 20_000 + i)
            seconds, labels = timed(lambda spec=spec: LabelSet(indexes.select(spec)))  # type: ignore[misc]
            seconds += timed(lambda labels=labels: labels.selector)[0]  # type: ignore[misc]
            engine_times.append(seconds)
            numpy_times.append(timed(lambda m=mask_of: np.flatnonzero(m(catalogue)))[0])  # type: ignore[misc]
            matches.append(len(labels))
        rows.append(
            {
                "selectivity": s,
                "matches": float(statistics.median(matches)),
                "engine_ms": median_ms(engine_times),
                "numpy_mask_ms": median_ms(numpy_times),
            }
        )
        print(
            f"  {n:,} filter only, {s:>7.2%}: engine {rows[-1]['engine_ms']:.2f} ms, numpy mask "
            f"{rows[-1]['numpy_mask_ms']:.2f} ms",
            flush=True,
        )
    return {"n": n, "build_s": time.perf_counter() - started, "rows": rows}


def load(col: Any, base: np.ndarray, catalogue: Catalogue) -> None:
    for start in range(0, len(base), 10_000):
        stop = min(len(base), start + 10_000)
        col.upsert(list(range(start, stop)), base[start:stop], catalogue.payloads(start, stop))


def built(size: dict[str, Any]) -> str:
    if size.get("reused"):
        return "the collection of an earlier run, reopened"
    return f"loaded in {size['load_s']:.0f} s, index built in {size['optimize_s']:.0f} s"


def plan_shares(plans: dict[str, int]) -> str:
    """The plans a row's searches took, most taken first, as shares of its searches."""
    searches = sum(n for plan, n in plans.items() if plan != PlanCounts.SHORT)
    return "; ".join(
        f"{plan} {n / max(1, searches):.0%}"
        for plan, n in sorted(plans.items(), key=lambda item: -item[1])
    )


def markdown(report: dict[str, Any]) -> list[str]:
    lines = ["# Filtered search by selectivity", "", describe(report), ""]
    for size in report["sizes"]:
        lines += [
            f"## {size['n']:,} points, {size['serving']} ({built(size)}; payload indexes on "
            f"4 fields built in {size['payload_index_build_s']:.1f} s)",
            "",
        ]
        rows = []
        for row in size["rows"]:
            sql, idx = row["sql"], row["indexed"]
            rows.append(
                [
                    f"{row['selectivity']:.2%}",
                    f"{idx['matches']:,.0f}",
                    f"{sql['cold_ms']:.1f}",
                    f"{sql['warm_ms']:.1f}",
                    f"{sql['after_write_ms']:.1f}",
                    f"{idx['cold_ms']:.1f}",
                    f"{idx['warm_ms']:.1f}",
                    f"{idx['after_write_ms']:.1f}",
                    f"{idx['recall']:.3f}",
                    f"{idx['numpy_mask_ms']:.2f} + {idx['numpy_ms'] - idx['numpy_mask_ms']:.2f}",
                    f"{idx['cold_ms'] / idx['numpy_ms']:.1f}x",
                    plan_shares(idx["plans"]),
                ]
            )
        lines += table(
            [
                "selectivity",
                "matches",
                "sql cold ms",
                "sql warm ms",
                "sql after write ms",
                "indexed cold ms",
                "indexed warm ms",
                "indexed after write ms",
                "recall@10",
                "numpy mask + scan ms",
                "indexed cold / numpy",
                "plan (indexed)",
            ],
            rows,
        )
        lines.append("")
    for size in report["filter_only"]:
        lines += [
            f"## {size['n']:,} points: the filter alone (payload indexes built from "
            f"{size['n']:,} payloads in {size['build_s']:.1f} s)",
            "",
            "Labels and ID selector from the engine's payload indexes, against the numpy "
            "mask over the same prebuilt columns (no vectors: no index built at this size "
            "here).",
            "",
        ]
        lines += table(
            ["selectivity", "matches", "engine ms", "numpy mask ms"],
            [
                [
                    f"{r['selectivity']:.2%}",
                    f"{r['matches']:,.0f}",
                    f"{r['engine_ms']:.2f}",
                    f"{r['numpy_mask_ms']:.2f}",
                ]
                for r in size["rows"]
            ],
        )
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,300000")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--sql-queries", type=int, default=5)
    parser.add_argument(
        "--filter-only-sizes",
        default="1000000",
        help="sizes at which only the filter's part is measured (no vectors)",
    )
    parser.add_argument(
        "--index",
        default='{"kind": "hnsw", "hnsw_m": 16, "ef_construction": 64}',
        help="an index kind, or a spec as JSON (default: a small HNSW graph, built in "
        "minutes on two cores)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="keep each size's collection in DATA/<size> and reuse it in later runs (the "
        "HNSW graph of 1M points takes minutes to build on two cores); default: a "
        "temporary folder",
    )
    parser.add_argument(
        "--build-threads",
        type=int,
        default=cores(),
        help="OpenMP threads for the load and the index build (default: every core)",
    )
    add_output_options(parser, "filters", quick="20,000 points, 10 queries")
    args = parser.parse_args()
    run = Run("bench.filters")
    sizes = [int(s) for s in args.sizes.split(",")]
    filter_sizes = [int(s) for s in args.filter_only_sizes.split(",") if s]
    if args.quick:
        sizes, filter_sizes, args.queries, args.sql_queries = [20_000], [100_000], 10, 3
    results = [run_size(n, args) for n in sizes]
    filter_only_results = [filter_only(n, args.queries) for n in filter_sizes]
    report = {**run.header(), "sizes": results, "filter_only": filter_only_results}
    out = output_prefix(args, "filters")
    if out is not None:
        save(out, report, markdown(report))
    else:
        print("\n".join(markdown(report)))


if __name__ == "__main__":
    main()
