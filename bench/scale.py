"""A bulk load at scale, against raw FAISS building the same index in the same run.

    python -m bench.scale [--quick] [--sizes 100000 300000] [--dim 384] [--out PREFIX]
    python -m bench.scale --kind ivf_flat --storage int8 --sizes 1000000 5000000

Data: unit vectors around 1,000 random centres (``--dim``, default 384, cosine), generated
batch by batch from a seed so that no side holds more than one batch of them, each point
with a catalogue payload (sku, category, brand, price, stock). Each size runs three child
processes, one after the other, so that each phase's peak memory (the kernel's high-water
mark of its resident set) is its own:

- **raw**: FAISS ``IndexHNSWFlat`` (inner product, the engine's M and efConstruction), or
  for ``--kind ivf_flat`` / ``ivf_pq`` the engine's IVF index of ``--storage``, fed the
  same batches; build seconds, peak memory, and recall@10 at a few efSearch (nprobe)
  values;
- **load**: a new vecserve collection (``--kind``, default ``auto``) in an engine with
  background maintenance, fed with ``upsert`` in batches of ``--batch`` (10,000), then
  ``optimize()``; meanwhile a prober thread sends one single-vector search every
  ``PROBE_EVERY`` seconds and records how long each took. Reported: ingest rate, load plus
  optimize seconds (and its ratio to the raw build), peak memory (and its ratio to raw),
  the probes' latency percentiles (and their waits for the collection's read lock: the
  wait for maintenance and writes, apart from CPU contention), disk size, recall@10 and
  single-query QPS at the calibrated default, and how long ``close()`` takes;
- **reopen**: a new process opens the folder and answers one search (time to the first
  answer, and the index file's size), then times single-id updates and deletes and
  ``close()``.

``--storage`` (float16, int8) runs the engine with that storage for the index; for HNSW
the raw side keeps float32 (``IndexHNSWFlat``), whose memory is the reference. The
large-collection option is ``--kind ivf_flat --storage int8``: IVF lists of 8-bit codes
(about 0.4 KB a 384-d point, 2 GB for 5,000,000) with nprobe calibrated to recall@10 0.95;
an HNSW graph over millions of points takes hours to build on 2 cores. ``--memory-cap-gb``
limits each child's address space. ``--quick`` runs 20,000 points once as a smoke test
and saves nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/scale.py): import bench.* from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench._measures import percentiles_ms, recall
from bench._report import Run, add_output_options, describe, publish, table

K = 10
N_QUERIES = 200
CENTRES = 1000
NOISE = 0.6
SEED = 0
PROBE_EVERY = 0.1  # seconds between the prober's searches during a load
SINGLE_WRITES = 50  # single-id updates (and as many deletes) timed after a reopen
RAW_EF = (16, 32, 64, 128, 256)
RAW_NPROBE = (8, 16, 32, 64, 128, 256)
CATEGORIES = ("shoes", "shirts", "bags", "hats", "coats", "socks", "belts", "watches")
BRANDS = tuple(f"brand-{i}" for i in range(40))


# -- the data ------------------------------------------------------------------------------


def _centres(dim: int) -> np.ndarray:
    return np.random.default_rng(SEED).standard_normal((CENTRES, dim), dtype=np.float32)


def _around(centres: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    part = centres[rng.integers(0, CENTRES, n)]
    part += NOISE * rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    return part / np.linalg.norm(part, axis=1, keepdims=True)


def batches(n: int, dim: int, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first position, unit vectors) batch by batch: the same for every phase."""
    centres = _centres(dim)
    for number, start in enumerate(range(0, n, size)):
        rng = np.random.default_rng([SEED, number, size])
        yield start, _around(centres, rng, min(size, n - start))


def queries(dim: int) -> np.ndarray:
    return _around(_centres(dim), np.random.default_rng([SEED, 1 << 30]), N_QUERIES)


def payload(position: int) -> dict[str, Any]:
    return {
        "sku": f"SKU-{position:08d}",
        "category": CATEGORIES[position % len(CATEGORIES)],
        "brand": BRANDS[(position * 7) % len(BRANDS)],
        "price": round(5 + (position * 37 % 20_000) / 100, 2),
        "in_stock": position % 5 != 0,
    }


def truth(n: int, dim: int, batch: int) -> np.ndarray:
    """Exact top-K positions of the queries over the n points (inner product, streamed)."""
    import faiss

    q = queries(dim)
    best_d = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.full((len(q), 0), -1, dtype=np.int64)
    for start, vecs in batches(n, dim, batch):
        d, i = faiss.knn(q, vecs, K, metric=faiss.METRIC_INNER_PRODUCT)
        best_d = np.concatenate([best_d, d], axis=1)
        best_i = np.concatenate([best_i, i + start], axis=1)
        order = np.argsort(-best_d, axis=1, kind="stable")[:, :K]
        best_d = np.take_along_axis(best_d, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
    return best_i


def peak_rss_mb() -> float:
    """The process's resident-set high-water mark (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


# -- the phases, each in its own process ----------------------------------------------------


def phase_raw(args: argparse.Namespace) -> dict[str, Any]:
    """Raw FAISS building what the engine serves: ``IndexHNSWFlat`` for ``auto`` and
    ``hnsw`` (float32, whatever ``--storage``: its memory is the reference), or the IVF
    index of ``--kind`` and ``--storage`` made from the engine's own factory string,
    trained on as many points as the engine trains on (the first ones here)."""
    import faiss

    from indexer.collection.upkeep import TRAIN_SAMPLE_MAX
    from indexer.indexes import FAMILIES
    from indexer.spec import IndexSpec

    ivf = args.kind.startswith("ivf")
    spec = IndexSpec(kind=args.kind, storage=args.storage)
    n_train = min(args.n, TRAIN_SAMPLE_MAX)
    started = time.perf_counter()
    if ivf:
        factory = FAMILIES[args.kind].factory_string(args.dim, spec, n_train)
        index = faiss.index_factory(args.dim, factory, faiss.METRIC_INNER_PRODUCT)
        train = np.concatenate([vecs for _, vecs in batches(n_train, args.dim, args.batch)])
        index.train(train)
        del train
    else:
        index = faiss.IndexHNSWFlat(args.dim, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
    for _, vecs in batches(args.n, args.dim, args.batch):
        index.add(vecs)
    build_s = time.perf_counter() - started
    expected = truth(args.n, args.dim, args.batch)
    recalls = {}
    for value in RAW_NPROBE if ivf else RAW_EF:
        params = (
            faiss.SearchParametersIVF(nprobe=value)
            if ivf
            else faiss.SearchParametersHNSW(efSearch=value)
        )
        _, found = index.search(queries(args.dim), K, params=params)
        recalls[str(value)] = recall(found, expected)
    return {"build_s": build_s, "peak_rss_mb": peak_rss_mb(), "recall_at_knob": recalls}


def phase_load(args: argparse.Namespace) -> dict[str, Any]:
    from indexer import Engine

    folder = Path(args.folder)
    engine = Engine(folder, background=True)
    spec = {"kind": args.kind, "storage": args.storage}
    col = engine.create_collection("scale", dim=args.dim, metric="cosine", index=spec)
    probe_q = queries(args.dim)
    probes: list[tuple[float, float]] = []  # (seconds since the start, latency)
    lock_waits: list[float] = []  # the probes' waits for the collection's read lock
    loading = threading.Event()
    loading.set()
    # The wait for the read lock is the wait for maintenance and writes; the rest of a
    # probe's latency is its own search, slowed by whatever else shares the CPUs.
    read_side = col._rw.read()

    class TimedReadSide:
        def __enter__(self) -> None:
            t0 = time.perf_counter()
            read_side.__enter__()
            if threading.current_thread() is prober:
                lock_waits.append(time.perf_counter() - t0)

        def __exit__(self, *exc: object) -> None:
            read_side.__exit__(*exc)

    col._rw._read = TimedReadSide()  # type: ignore[assignment]

    def probe() -> None:
        i = 0
        while loading.is_set():
            t0 = time.perf_counter()
            col.search(probe_q[i % len(probe_q)], k=K, with_payload=False)
            probes.append((t0 - started, time.perf_counter() - t0))
            i += 1
            time.sleep(PROBE_EVERY)

    started = time.perf_counter()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    batch_s = []
    for start, vecs in batches(args.n, args.dim, args.batch):
        t0 = time.perf_counter()
        ids = list(range(start, start + len(vecs)))
        col.upsert(ids, vecs, [payload(i) for i in ids])
        batch_s.append(time.perf_counter() - t0)
    ingest_s = time.perf_counter() - started
    col.optimize()
    total_s = time.perf_counter() - started
    loading.clear()
    prober.join()
    peak = peak_rss_mb()
    info = col.index_info
    expected = truth(args.n, args.dim, args.batch)
    q = queries(args.dim)
    found = np.array([[h.id for h in row] for row in col.search(q, k=K, with_payload=False)])
    single_started = time.perf_counter()
    for row in q:
        col.search(row, k=K, with_payload=False)
    qps = len(q) / (time.perf_counter() - single_started)
    latencies = [lat for _, lat in probes]
    t0 = time.perf_counter()
    engine.close()
    close_s = time.perf_counter() - t0
    p50, p99, worst = percentiles_ms(latencies, 50, 99, 100)
    wait_p99, wait_max = percentiles_ms(lock_waits, 99, 100)
    return {
        "ingest_s": ingest_s,
        "ingest_per_s": args.n / ingest_s,
        "slowest_batch_s": max(batch_s),
        "load_and_optimize_s": total_s,
        "peak_rss_mb": peak,
        "probes": len(latencies),
        "probe_p50_ms": p50,
        "probe_p99_ms": p99,
        "probe_max_ms": worst,
        "probe_lock_wait_p99_ms": wait_p99,
        "probe_lock_wait_max_ms": wait_max,
        "index": {k: info[k] for k in ("family", "storage", "size", "default_params")},
        "recall_at_10": recall(found, expected),
        "single_query_qps": qps,
        "close_s": close_s,
        "disk_mb": folder_mb(folder),
    }


def phase_reopen(args: argparse.Namespace) -> dict[str, Any]:
    from indexer import Engine

    folder = Path(args.folder)
    q = queries(args.dim)
    started = time.perf_counter()
    engine = Engine(folder, background=True)
    col = engine.get_collection("scale")
    col.search(q[0], k=K, with_payload=False)
    first_answer_s = time.perf_counter() - started
    index_file = folder / "collections" / "scale" / "index.vsi"
    rng = np.random.default_rng(1)
    targets = rng.choice(args.n, 2 * SINGLE_WRITES, replace=False).tolist()
    update_s, delete_s = [], []
    for point in targets[:SINGLE_WRITES]:
        vec = q[point % len(q)]
        t0 = time.perf_counter()
        col.upsert([point], vec[None, :], [payload(point)])
        update_s.append(time.perf_counter() - t0)
    for point in targets[SINGLE_WRITES:]:
        t0 = time.perf_counter()
        col.delete([point])
        delete_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    engine.close()
    close_s = time.perf_counter() - t0
    return {
        "first_answer_s": first_answer_s,
        "index_file_mb": index_file.stat().st_size / 2**20,
        "update_ms": percentiles_ms(update_s, 50)[0],
        "delete_ms": percentiles_ms(delete_s, 50)[0],
        "close_s": close_s,
        "peak_rss_mb": peak_rss_mb(),
    }


PHASES = {"raw": phase_raw, "load": phase_load, "reopen": phase_reopen}


def run_phase(phase: str, n: int, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.scale",
        "--phase",
        phase,
        "--n",
        str(n),
        "--folder",
        str(folder),
        "--dim",
        str(args.dim),
        "--batch",
        str(args.batch),
        "--kind",
        args.kind,
        "--storage",
        args.storage,
    ]
    if args.memory_cap_gb:
        command += ["--memory-cap-gb", str(args.memory_cap_gb)]
    print(f"  {phase} ...", flush=True)
    done = subprocess.run(
        command, check=True, capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {phase}: {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--kind", default="auto")
    parser.add_argument("--storage", default="float32", choices=("float32", "float16", "int8"))
    parser.add_argument("--memory-cap-gb", type=float, default=None)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    add_output_options(parser, "scale", quick="20,000 points once, as a smoke test")
    args = parser.parse_args()
    if args.memory_cap_gb:
        cap = int(args.memory_cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)), flush=True)
        return

    run = Run("bench.scale")
    sizes = [20_000] if args.quick else args.sizes
    results = []
    for n in sizes:
        print(f"{n:,} points x {args.dim}", flush=True)
        with tempfile.TemporaryDirectory(prefix="vecserve-scale-") as tmp:
            folder = Path(tmp) / "data"
            raw = run_phase("raw", n, folder, args)
            load = run_phase("load", n, folder, args)
            reopen = run_phase("reopen", n, folder, args)
        results.append({"n": n, "raw": raw, "load": load, "reopen": reopen})

    report = {
        **run.header(),
        "dim": args.dim,
        "batch": args.batch,
        "kind": args.kind,
        "storage": args.storage,
        "results": results,
    }
    rows = [
        [
            f"{r['n']:,}",
            f"{r['load']['ingest_per_s']:,.0f}",
            f"{r['load']['load_and_optimize_s']:.0f} s / {r['raw']['build_s']:.0f} s"
            f" ({r['load']['load_and_optimize_s'] / r['raw']['build_s']:.2f}x)",
            f"{r['load']['peak_rss_mb']:,.0f} / {r['raw']['peak_rss_mb']:,.0f} MiB"
            f" ({r['load']['peak_rss_mb'] / r['raw']['peak_rss_mb']:.2f}x)",
            f"{r['load']['probe_p99_ms']:.0f} / {r['load']['probe_max_ms']:.0f} ms"
            f" ({r['load']['probe_lock_wait_p99_ms']:.0f} / "
            f"{r['load']['probe_lock_wait_max_ms']:.0f} ms)",
            f"{r['load']['recall_at_10']:.3f} @ {r['load']['index']['default_params']}",
            f"{r['load']['single_query_qps']:,.0f}",
            f"{r['load']['disk_mb']:,.0f} MiB",
            f"{r['reopen']['first_answer_s']:.2f} s ({r['reopen']['index_file_mb']:,.0f} MiB)",
            f"{r['reopen']['update_ms']:.1f} / {r['reopen']['delete_ms']:.1f} ms",
            f"{r['reopen']['close_s']:.2f} s",
        ]
        for r in results
    ]
    markdown = [
        f"# Bulk load at scale ({args.kind}, {args.storage}, {args.dim}-d, batches of "
        f"{args.batch:,})",
        "",
        describe(report),
        "",
        *table(
            [
                "points",
                "ingest/s",
                "load+optimize / raw build",
                "peak memory / raw",
                "search p99 / max during load (lock wait)",
                "recall@10",
                "QPS (1 query)",
                "disk",
                "reopen to 1st answer",
                "1-id update / delete",
                "close()",
            ],
            rows,
        ),
        "",
        f"Raw FAISS recall@10 by {'nprobe' if args.kind.startswith('ivf') else 'efSearch'}: "
        + "; ".join(f"{r['n']:,}: {r['raw']['recall_at_knob']}" for r in results),
    ]
    publish(args, "scale", report, markdown)


if __name__ == "__main__":
    main()
