"""Hybrid retrieval: quality of dense, BM25 and each fusion on WordNet, and latency at 100k.

    python -m bench.hybrid [--docs 20000] [--queries 2000] [--latency-docs 100000] [--out PREFIX]

Data: WordNet 3.0 from the Debian package ``wordnet-base`` (``apt-get install -y
wordnet-base``; the ``data.noun``, ``data.verb``, ``data.adj`` and ``data.adv`` files of its
dict folder). A document is one synset, ``"lemma: definition"`` (its first lemma, and its
gloss without the quoted examples); a query is one of the example sentences quoted in a
gloss (they use the word), and the relevant document is that synset's.

Quality: ``--docs`` synsets (seeded sample, each with at least one example among them),
embedded by the default text model (all-MiniLM-L6-v2, shipped in the venv), and
``--queries`` of their examples. R@10 (the relevant document in the top 10) and MRR@10 for
dense alone, BM25 alone (the collection's FTS5, one field, unicode61), each fusion at its
defaults and a few alpha values, and, beside BM25, ``bm25s`` on the same documents, the
same tokens (lower-cased runs of letters and digits, as unicode61 splits them) and the same
BM25 parameters (k1 1.2, b 0.75, Robertson IDF, as FTS5's bm25()).

Latency: ``--latency-docs`` synsets with random unit vectors (384-d; the point is the cost
of the pipeline, not the model), single queries in this process: dense alone, BM25 alone
and hybrid (RRF of both), and bm25s's single-query retrieval on the same corpus; upsert
throughput with and without a full-text field.

Saves ``bench/results/hybrid.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from indexer import Engine
from indexer.query.fusion import Ranking, fuse
from indexer.query.plan import Fusion

WORDNET = Path("/usr/share/wordnet")
FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
K = 10
SEED = 0
DEFAULT_OUT = Path(__file__).parent / "results" / "hybrid"
LATENCY_QUERIES = 200
UPSERT_BATCH = 5000
DIM = 384
_TOKEN = re.compile(r"\w+")
_ADJ_MARKER = re.compile(r"\((a|p|ip)\)$")


@dataclass(frozen=True)
class Synset:
    key: str  # "offset-pos", unique
    lemma: str
    definition: str
    examples: tuple[str, ...]

    @property
    def document(self) -> str:
        return f"{self.lemma}: {self.definition}"


def read_wordnet(folder: Path = WORDNET) -> list[Synset]:
    """Every synset of the four data files, in file order."""
    synsets = []
    for name in FILES:
        path = next(iter(folder.rglob(name)), None)
        if path is None:
            raise SystemExit(f"{name} not found under {folder}: apt-get install -y wordnet-base")
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue  # the licence header
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            lemma = _ADJ_MARKER.sub("", fields[4]).replace("_", " ")
            examples = tuple(e.strip() for e in re.findall(r'"([^"]+)"', gloss) if e.strip())
            definition = re.sub(r'"[^"]*"', "", gloss)
            definition = re.sub(r"(\s*;\s*)+$", "", definition.strip()).strip()
            synsets.append(Synset(f"{fields[0]}-{fields[2]}", lemma, definition, examples))
    return synsets


def tokens(text: str) -> list[str]:
    """unicode61's tokens, near enough: lower-cased runs of letters, digits and _."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class StageRun:
    """One stage's ranking for one query, as the pipeline produced it."""

    ids: list[int]
    scores: list[float]

    @property
    def labels_as_ids(self) -> list[int]:
        return self.ids


# (name, fusion body or None for the default, (dense weight, lexical weight))
FUSIONS: list[tuple[str, dict[str, Any] | None, tuple[float, float]]] = [
    ("default fusion (no fusion field)", None, (1.0, 1.0)),
    ("rrf k=60", {"method": "rrf"}, (1.0, 1.0)),
    ("rrf k=10", {"method": "rrf", "k": 10}, (1.0, 1.0)),
    ("rrf k=60, lexical weight 0.5", {"method": "rrf"}, (1.0, 0.5)),
    ("dbsf", {"method": "dbsf"}, (1.0, 1.0)),
    ("relative_score alpha=0.3", {"method": "relative_score", "alpha": 0.3}, (1.0, 1.0)),
    ("relative_score alpha=0.5", {"method": "relative_score", "alpha": 0.5}, (1.0, 1.0)),
    ("relative_score alpha=0.7", {"method": "relative_score", "alpha": 0.7}, (1.0, 1.0)),
]
CHECKED_QUERIES = 50
STAGE_LIMIT = 100  # the pipeline's default candidates per stage


def dense_stage(vector: np.ndarray) -> dict[str, Any]:
    return {"dense": {"vector": vector.tolist()}, "limit": STAGE_LIMIT}


def lexical_stage(text: str) -> dict[str, Any]:
    return {"lexical": {"text": text}, "limit": STAGE_LIMIT}


def ranking(collection: Any, stage: dict[str, Any]) -> StageRun:
    hits = collection.query({"prefetch": [stage], "limit": STAGE_LIMIT, "with_payload": False}).hits
    return StageRun([int(h.id) for h in hits], [h.score for h in hits])


def fuse_ids(
    dense: StageRun, lexical: StageRun, fusion: dict[str, Any] | None, weights: tuple[float, float]
) -> list[int]:
    """The engine's fusion of two stage rankings (ids stand in for labels)."""
    spec = Fusion.model_validate(fusion or {})
    if spec.alpha is not None:
        weights = (spec.alpha, 1 - spec.alpha)
    runs = [
        Ranking(np.array(r.ids, dtype=np.int64), np.array(r.scores, dtype=np.float64))
        for r in (dense, lexical)
    ]
    fused = fuse(runs, list(weights), spec.method, k=spec.k)
    return [int(x) for x in fused.labels[:K]]


def metrics(ranked: Sequence[Sequence[int]], relevant: Sequence[int]) -> dict[str, float]:
    recall, rr = 0.0, 0.0
    for found, want in zip(ranked, relevant, strict=True):
        top = list(found)[:K]
        if want in top:
            recall += 1
            rr += 1 / (top.index(want) + 1)
    n = len(relevant)
    return {"R@10": recall / n, "MRR@10": rr / n}


def quality(
    synsets: list[Synset], n_docs: int, n_queries: int, data: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(SEED)
    with_examples = [s for s in synsets if s.examples]
    chosen = rng.permutation(len(synsets))[:n_docs].tolist()
    docs = [synsets[i] for i in chosen]
    query_pool = [(e, i) for i, s in enumerate(docs) for e in s.examples]
    picks = rng.permutation(len(query_pool))[:n_queries].tolist()
    queries = [query_pool[i][0] for i in picks]
    relevant = [query_pool[i][1] for i in picks]
    print(
        f"quality: {len(docs)} documents ({sum(bool(s.examples) for s in docs)} with examples,"
        f" of {len(with_examples)} in WordNet), {len(queries)} queries",
        flush=True,
    )
    with Engine(data, background=False) as engine:
        c = engine.create_collection(
            "wordnet", embedder="minilm", store_source=True, full_text=["_source.text"]
        )
        started = time.perf_counter()
        for start in range(0, len(docs), 1000):
            part = docs[start : start + 1000]
            c.upsert(list(range(start, start + len(part))), texts=[s.document for s in part])
        embed_s = time.perf_counter() - started
        print(f"  embedded and indexed in {embed_s:.0f}s", flush=True)
        c.optimize()
        query_vectors = c.embed(texts=queries)

        # Each stage runs once per query through the pipeline (as a one-stage query, with
        # a fused query's default stage limit); each fusion is then the engine's own fuse()
        # over those rankings, and a sample of queries checks that query() with that
        # fusion returns the same hits.
        dense_runs, lexical_runs = [], []
        for i in range(len(queries)):
            dense_runs.append(ranking(c, dense_stage(query_vectors[i])))
            lexical_runs.append(ranking(c, lexical_stage(queries[i])))
        rows = [
            {"method": "dense", **metrics([r.labels_as_ids for r in dense_runs], relevant)},
            {"method": "bm25", **metrics([r.labels_as_ids for r in lexical_runs], relevant)},
        ]
        for name, fusion, weights in FUSIONS:
            fused = [
                fuse_ids(d, lx, fusion, weights)
                for d, lx in zip(dense_runs, lexical_runs, strict=True)
            ]
            rows.append({"method": name, **metrics(fused, relevant)})
            for i in range(0, len(queries), len(queries) // CHECKED_QUERIES):
                plan = {
                    "prefetch": [
                        {**dense_stage(query_vectors[i]), "weight": weights[0]},
                        {**lexical_stage(queries[i]), "weight": weights[1]},
                    ],
                    "limit": K,
                    "with_payload": False,
                }
                if fusion is not None:
                    plan["fusion"] = fusion
                got = [int(h.id) for h in c.query(plan).hits]
                assert got == fused[i][:K], (name, i, got, fused[i][:K])
        for row in rows:
            print(
                f"  {row['method']:36s} R@10 {row['R@10']:.3f}  MRR@10 {row['MRR@10']:.3f}",
                flush=True,
            )

    retriever = bm25s.BM25(method="robertson", k1=1.2, b=0.75)
    retriever.index([tokens(s.document) for s in docs], show_progress=False)
    found = []
    for q in queries:
        qt = [t for t in tokens(q) if t in retriever.vocab_dict] or ["\x00"]
        if qt == ["\x00"]:
            found.append([])
            continue
        results, _ = retriever.retrieve([qt], k=K, show_progress=False, n_threads=1)
        found.append([int(x) for x in results[0]])
    figures = metrics(found, relevant)
    rows.append({"method": "bm25s (same tokens, k1 1.2, b 0.75)", **figures})
    print(f"  {'bm25s':36s} R@10 {figures['R@10']:.3f}  MRR@10 {figures['MRR@10']:.3f}", flush=True)
    setup = {
        "documents": len(docs),
        "queries": len(queries),
        "embed_and_index_s": embed_s,
        "model": "all-MiniLM-L6-v2",
    }
    return setup, rows


def latency(synsets: list[Synset], n_docs: int, data: Path) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    docs = synsets[:n_docs]
    vectors = rng.standard_normal((len(docs), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [{"text": s.document} for s in docs]
    examples = [e for s in docs for e in s.examples]
    queries = [examples[i] for i in rng.permutation(len(examples))[:LATENCY_QUERIES].tolist()]
    query_vectors = rng.standard_normal((len(queries), DIM)).astype(np.float32)
    out: dict[str, Any] = {"documents": len(docs), "queries": len(queries), "dim": DIM}
    with Engine(data, background=False) as engine:
        for label, full_text in (
            ("upsert_per_s_vectors_only", None),
            ("upsert_per_s_full_text", ["text"]),
        ):
            c = engine.create_collection(f"up-{len(out)}", DIM, full_text=full_text)
            started = time.perf_counter()
            for start in range(0, len(docs), UPSERT_BATCH):
                end = start + UPSERT_BATCH
                c.upsert(
                    list(range(start, min(end, len(docs)))), vectors[start:end], payloads[start:end]
                )
            out[label] = len(docs) / (time.perf_counter() - started)
            print(f"  {label}: {out[label]:,.0f}/s", flush=True)
        c.optimize()
        out["index"] = c.index_info["family"]

        def timed(plan_of: Callable[[int], dict[str, Any]]) -> dict[str, float]:
            c.query({**plan_of(0), "limit": K})  # warm
            times = []
            for i in range(len(queries)):
                started = time.perf_counter()
                c.query({**plan_of(i), "limit": K, "with_payload": False})
                times.append(time.perf_counter() - started)
            t = np.array(times) * 1000
            return {
                "p50_ms": float(np.percentile(t, 50)),
                "p99_ms": float(np.percentile(t, 99)),
                "qps": len(t) / (t.sum() / 1000),
            }

        def dense(i: int) -> dict[str, Any]:
            return {"dense": {"vector": query_vectors[i].tolist()}}

        def lexical(i: int) -> dict[str, Any]:
            return {"lexical": {"text": queries[i]}}

        out["dense"] = timed(lambda i: {"prefetch": [dense(i)]})
        out["bm25"] = timed(lambda i: {"prefetch": [lexical(i)]})
        out["hybrid_rrf"] = timed(lambda i: {"prefetch": [dense(i), lexical(i)]})
    retriever = bm25s.BM25(method="robertson", k1=1.2, b=0.75)
    retriever.index([tokens(s.document) for s in docs], show_progress=False)
    times = []
    for q in queries:
        qt = [t for t in tokens(q) if t in retriever.vocab_dict]
        started = time.perf_counter()
        if qt:
            retriever.retrieve([qt], k=K, show_progress=False, n_threads=1)
        times.append(time.perf_counter() - started)
    t = np.array(times) * 1000
    out["bm25s"] = {
        "p50_ms": float(np.percentile(t, 50)),
        "p99_ms": float(np.percentile(t, 99)),
        "qps": len(t) / (t.sum() / 1000),
    }
    for name in ("dense", "bm25", "hybrid_rrf", "bm25s"):
        print(f"  {name:12s} {out[name]}", flush=True)
    return out


def markdown(report: dict[str, Any]) -> str:
    q, lat = report["quality"], report["latency"]
    lines = [
        "# Hybrid retrieval (bench/hybrid.py)",
        "",
        f'WordNet: {q["setup"]["documents"]:,} documents ("lemma: definition"),'
        f" {q['setup']['queries']:,} queries (the glosses' example sentences), relevant ="
        f" the same synset. Dense: {q['setup']['model']}. {report['machine']}.",
        "",
        "| method | R@10 | MRR@10 |",
        "|---|---|---|",
    ]
    lines += [f"| {r['method']} | {r['R@10']:.3f} | {r['MRR@10']:.3f} |" for r in q["rows"]]
    lines += ["", f"Default fusion: {report['default_fusion']}."]
    lines += [
        "",
        f"Latency, {lat['documents']:,} documents, {lat['dim']}-d random vectors ({lat['index']}"
        f" index), {lat['queries']} single queries in-process, k={K}:",
        "",
        "| pipeline | p50 ms | p99 ms | QPS |",
        "|---|---|---|---|",
    ]
    for name in ("dense", "bm25", "hybrid_rrf", "bm25s"):
        r = lat[name]
        lines.append(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['qps']:,.0f} |")
    lines += [
        "",
        f"Hybrid QPS / dense QPS: {lat['hybrid_rrf']['qps'] / lat['dense']['qps']:.2f};"
        f" BM25 QPS / bm25s QPS: {lat['bm25']['qps'] / lat['bm25s']['qps']:.2f}.",
        f"Upserts (batches of {UPSERT_BATCH:,}): {lat['upsert_per_s_vectors_only']:,.0f}/s vectors"
        f" only, {lat['upsert_per_s_full_text']:,.0f}/s with a full-text field"
        f" ({lat['upsert_per_s_full_text'] / lat['upsert_per_s_vectors_only']:.2f}x).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--latency-docs", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    synsets = read_wordnet()
    print(f"WordNet: {len(synsets):,} synsets", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        setup, rows = quality(synsets, args.docs, args.queries, Path(tmp) / "quality")
        lat = latency(synsets, args.latency_docs, Path(tmp) / "latency")
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "quality": {"setup": setup, "rows": rows},
        "default_fusion": Fusion().model_dump(),
        "latency": lat,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
