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
from indexer.query.plan import Fusion

WORDNET = Path("/usr/share/wordnet")
FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
K = 10
SEED = 0
DEFAULT_OUT = Path(__file__).parent / "results" / "hybrid"
LATENCY_QUERIES = 300
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

        def run(plan_of: Callable[[int], dict[str, Any]]) -> list[list[int]]:
            out = []
            for i in range(len(queries)):
                hits = c.query({**plan_of(i), "limit": K, "with_payload": False}).hits
                out.append([int(h.id) for h in hits])
            return out

        dense = {"dense": {"vector": None}}
        lexical = {"lexical": {"text": None}}

        def stages(i: int, *kinds: dict[str, Any]) -> list[dict[str, Any]]:
            out = []
            for kind in kinds:
                if "dense" in kind:
                    out.append({"dense": {"vector": query_vectors[i].tolist()}})
                else:
                    out.append({"lexical": {"text": queries[i]}})
            return out

        variants: dict[str, Callable[[int], dict[str, Any]]] = {
            "dense": lambda i: {"prefetch": stages(i, dense)},
            "bm25": lambda i: {"prefetch": stages(i, lexical)},
            "default fusion (no fusion field)": lambda i: {"prefetch": stages(i, dense, lexical)},
            "rrf k=60": lambda i: {
                "prefetch": stages(i, dense, lexical),
                "fusion": {"method": "rrf"},
            },
            "dbsf": lambda i: {
                "prefetch": stages(i, dense, lexical),
                "fusion": {"method": "dbsf"},
            },
        }
        for alpha in (0.3, 0.5, 0.7, 0.75):
            variants[f"relative_score alpha={alpha}"] = lambda i, a=alpha: {
                "prefetch": stages(i, dense, lexical),
                "fusion": {"method": "relative_score", "alpha": a},
            }
        for k in (10, 30):
            variants[f"rrf k={k}"] = lambda i, k=k: {
                "prefetch": stages(i, dense, lexical),
                "fusion": {"method": "rrf", "k": k},
            }
        variants["rrf k=60, lexical weight 0.5"] = lambda i: {
            "prefetch": [*stages(i, dense), {**stages(i, lexical)[0], "weight": 0.5}],
            "fusion": {"method": "rrf"},
        }
        rows = []
        for name, plan_of in variants.items():
            started = time.perf_counter()
            figures = metrics(run(plan_of), relevant)
            rows.append({"method": name, **figures, "seconds": time.perf_counter() - started})
            print(
                f"  {name:36s} R@10 {figures['R@10']:.3f}  MRR@10 {figures['MRR@10']:.3f}",
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
