"""The micro-batcher: concurrent searches form batches, and each caller gets its own answer.

Every answer is compared with a direct search through the engine; the batcher runs on a
real event loop over real collections (a flat index, so answers are exact).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import (
    Collection,
    DimensionMismatch,
    Engine,
    Hit,
    InvalidFilter,
    InvalidK,
    SearchParams,
)
from indexer.collection import MAX_K
from indexer.embedders import EmbedderRegistry, default_embedder_configs
from indexer.errors import InvalidEmbedderInput
from service import batching
from service.batching import MicroBatcher, Query
from tests.support.corpora import SHORT_TEXTS

rng = np.random.default_rng(11)
DIM = 16


class Batches:
    """Records the size of every batch the batcher runs."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, size: int) -> None:
        self.sizes.append(size)


@pytest.fixture
def col(engine: Engine) -> Collection:
    c = engine.create_collection("items", dim=DIM, metric="cosine", index="flat")
    vectors = rng.standard_normal((500, DIM)).astype(np.float32)
    c.upsert(list(range(500)), vectors, [{"group": i % 3, "n": i} for i in range(500)])
    return c


def run_batcher(window_ms: float, max_batch: int, work: Any, *args: Any) -> tuple[Any, Batches]:
    """Run ``work(batcher, *args)`` on a fresh event loop; return its result and batches."""
    batches = Batches()
    batcher = MicroBatcher(window_ms, max_batch, observe=batches)
    try:
        return asyncio.run(work(batcher, *args)), batches
    finally:
        batcher.close()


def same_hits(got: list[Hit], expected: list[Hit]) -> None:
    assert [h.id for h in got] == [h.id for h in expected]
    np.testing.assert_allclose([h.score for h in got], [h.score for h in expected], atol=1e-5)
    assert [h.payload for h in got] == [h.payload for h in expected]
    assert [h.vector is None for h in got] == [h.vector is None for h in expected]


def direct(col: Collection, query: Query) -> list[Hit]:
    """What the engine answers for ``query`` on its own."""
    options: dict[str, Any] = {
        "k": query.k,
        "filter": query.filter,
        "with_payload": query.with_payload,
        "with_vectors": query.with_vectors,
    }
    if query.point_id is not None:
        return col.recommend([query.point_id], **options)
    return col.search(query.vector, params=query.params, **options)[0]


async def one_each(
    batcher: MicroBatcher, col: Collection, queries: list[Query]
) -> list[list[Hit] | BaseException]:
    """Each query as its own concurrent request; errors are returned, not raised."""
    searches = (batcher.search(col, [q]) for q in queries)
    answers = await asyncio.gather(*searches, return_exceptions=True)
    return [a if isinstance(a, BaseException) else a[0] for a in answers]


def test_concurrent_requests_are_searched_together_and_each_gets_its_own_answer(
    col: Collection,
) -> None:
    queries = [
        Query(
            vector=rng.standard_normal(DIM).astype(np.float32),
            k=[1, 5, 10, 3][i % 4],
            filter=[None, {"group": 1}][i % 2],
            with_payload=i % 3 != 0,
            with_vectors=i % 5 == 0,
        )
        for i in range(40)
    ]
    queries.append(Query(point_id=7, k=4))
    answers, batches = run_batcher(50, 256, one_each, col, queries)
    # They arrive in one turn of the event loop: the first finds the collection idle, and
    # all go together at the end of that turn, without waiting for the window.
    assert batches.sizes == [41]
    for query, answer in zip(queries, answers, strict=True):
        assert not isinstance(answer, BaseException)
        same_hits(answer, direct(col, query))


def test_requests_arriving_while_a_batch_runs_wait_for_it_and_go_together(
    col: Collection,
) -> None:
    queries = [Query(vector=rng.standard_normal(DIM).astype(np.float32)) for _ in range(11)]

    async def work(batcher: MicroBatcher) -> list[list[list[Hit]]]:
        first = asyncio.ensure_future(batcher.search(col, queries[:1]))
        for _ in range(2):  # the first is submitted, then sent to a worker
            await asyncio.sleep(0)
        rest = [batcher.search(col, [query]) for query in queries[1:]]
        return list(await asyncio.gather(first, *rest))

    answers, batches = run_batcher(50, 256, work)
    assert batches.sizes == [1, 10]
    for query, answer in zip(queries, answers, strict=True):
        same_hits(answer[0], direct(col, query))


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each batch runs on, in order."""
    names: list[str] = []
    execute = batching._execute

    def recorded(*args: Any, **kwargs: Any) -> list[Any]:
        names.append(threading.current_thread().name)
        return execute(*args, **kwargs)

    monkeypatch.setattr(batching, "_execute", recorded)
    return names


def test_a_cheap_vector_batch_runs_on_the_event_loop_and_others_in_a_worker(
    col: Collection, docs: Collection, threads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget no search of 500 points can exceed, however busy the machine.
    monkeypatch.setattr(batching, "INLINE_BUDGET_S", 1.0)
    vector = Query(vector=rng.standard_normal(DIM).astype(np.float32))

    async def work(batcher: MicroBatcher) -> list[list[list[Hit]]]:
        # No estimate yet (a worker), then a cheap batch (the loop); texts always go to
        # a worker (a model's forward pass is no small search).
        return [
            await batcher.search(col, [vector]),
            await batcher.search(col, [vector]),
            await batcher.search(docs, [Query(text="kitten")]),
            await batcher.search(docs, [Query(text="kitten")]),
        ]

    answers, _ = run_batcher(2, 256, work)
    loop_thread = threading.current_thread().name
    assert [name == loop_thread for name in threads] == [False, True, False, False]
    for answer in answers[:2]:
        same_hits(answer[0], direct(col, vector))
    same_hits(answers[2][0], docs.search(texts=["kitten"])[0])

    monkeypatch.setattr(batching, "INLINE_BUDGET_S", 0.0)  # nothing is cheap enough
    threads.clear()
    run_batcher(2, 256, work)
    assert loop_thread not in threads


def test_a_filtered_or_tuned_search_runs_in_a_worker_however_cheap_plain_searches_are(
    col: Collection, threads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A filter never seen before can read every payload, and a knob can scan every
    # vector: the cost of plain searches says nothing of theirs.
    monkeypatch.setattr(batching, "INLINE_BUDGET_S", 1.0)
    vector = rng.standard_normal(DIM).astype(np.float32)
    filtered = Query(vector=vector, filter={"group": 1})
    exact = Query(vector=vector, params=SearchParams(exact=True))

    async def work(batcher: MicroBatcher) -> list[list[list[Hit]]]:
        await batcher.search(col, [Query(vector=vector)])  # learns that plain ones are cheap
        await batcher.search(col, [Query(vector=vector)])  # on the loop
        return [await batcher.search(col, [filtered]), await batcher.search(col, [exact])]

    answers, _ = run_batcher(2, 256, work)
    loop_thread = threading.current_thread().name
    assert [name == loop_thread for name in threads] == [False, True, False, False]
    same_hits(answers[0][0], direct(col, filtered))
    same_hits(answers[1][0], direct(col, exact))


def test_a_search_that_would_wait_for_a_write_waits_in_a_worker_not_on_the_event_loop(
    col: Collection, threads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "INLINE_BUDGET_S", 1.0)
    vector = Query(vector=rng.standard_normal(DIM).astype(np.float32))
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with col._rw.write():  # as an upsert or a rebuild holds the index
            held.set()
            release.wait(30)

    async def work(batcher: MicroBatcher) -> bool:
        await batcher.search(col, [vector])  # learns that it is cheap
        holder = threading.Thread(target=writer)
        holder.start()
        held.wait(30)
        waiting = asyncio.ensure_future(batcher.search(col, [vector]))
        await asyncio.sleep(0.3)  # the loop runs meanwhile
        answered_during_write = waiting.done()
        release.set()
        await waiting
        holder.join()
        return answered_during_write

    answered_during_write, _ = run_batcher(2, 256, work)
    assert not answered_during_write
    loop_thread = threading.current_thread().name
    assert [name == loop_thread for name in threads] == [False, False]


def test_an_error_reaches_only_the_request_that_caused_it(col: Collection) -> None:
    good = [Query(vector=rng.standard_normal(DIM).astype(np.float32), k=3) for _ in range(6)]
    wrong_dim = Query(vector=np.ones(DIM + 1, dtype=np.float32))
    too_many = Query(vector=np.ones(DIM, dtype=np.float32), k=MAX_K + 1)
    bad_filter = Query(vector=np.ones(DIM, dtype=np.float32), filter={"n": {"$regex": "x"}})
    no_embedder = Query(text="a text for a collection without an embedder")
    queries = [good[0], wrong_dim, good[1], too_many, good[2], bad_filter, no_embedder, *good[3:]]
    answers, batches = run_batcher(50, 256, one_each, col, queries)
    assert sum(batches.sizes) == len(queries)
    assert isinstance(answers[1], DimensionMismatch)
    assert isinstance(answers[3], InvalidK)
    assert isinstance(answers[5], InvalidFilter)
    assert isinstance(answers[6], InvalidEmbedderInput)
    for query, answer in zip(queries, answers, strict=True):
        if any(query is g for g in good):
            assert not isinstance(answer, BaseException)
            same_hits(answer, direct(col, query))


def test_a_request_with_several_queries_fails_with_the_first_error(col: Collection) -> None:
    async def work(batcher: MicroBatcher) -> None:
        queries = [Query(vector=np.ones(DIM, np.float32)), Query(vector=np.ones(3, np.float32))]
        with pytest.raises(DimensionMismatch):
            await batcher.search(col, queries)

    run_batcher(5, 256, work)


def test_a_lone_request_does_not_wait_for_the_window(col: Collection) -> None:
    query = Query(vector=np.ones(DIM, dtype=np.float32))

    async def timed(batcher: MicroBatcher) -> float:
        await batcher.search(col, [query])  # warm up
        started = time.perf_counter()
        await batcher.search(col, [query])
        return time.perf_counter() - started

    took, _ = run_batcher(2_000, 256, timed)
    assert took < 1.0


def test_a_full_batch_goes_before_the_window_closes(col: Collection) -> None:
    queries = [Query(vector=rng.standard_normal(DIM).astype(np.float32)) for _ in range(16)]

    async def timed(batcher: MicroBatcher) -> float:
        started = time.perf_counter()
        await one_each(batcher, col, queries)
        return time.perf_counter() - started

    took, batches = run_batcher(60_000, 8, timed)
    # Each batch goes as soon as it is full, the second while the first runs.
    assert batches.sizes == [8, 8]
    assert took < 30


def test_a_zero_window_searches_every_request_on_its_own(col: Collection) -> None:
    queries = [Query(vector=rng.standard_normal(DIM).astype(np.float32)) for _ in range(10)]
    answers, batches = run_batcher(0, 256, one_each, col, queries)
    assert batches.sizes == [1] * 10
    for query, answer in zip(queries, answers, strict=True):
        assert not isinstance(answer, BaseException)
        same_hits(answer, direct(col, query))


def test_the_queries_of_one_request_go_in_one_batch(col: Collection) -> None:
    queries = [Query(vector=rng.standard_normal(DIM).astype(np.float32), k=2) for _ in range(64)]

    async def work(batcher: MicroBatcher) -> list[list[Hit]]:
        return await batcher.search(col, queries)

    answers, batches = run_batcher(0, 256, work)
    assert batches.sizes == [64]
    for query, answer in zip(queries, answers, strict=True):
        same_hits(answer, direct(col, query))


def test_a_large_batch_spreads_over_the_cores_only_when_no_other_batch_runs(
    col: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenMP threads of two batches at once would outnumber the cores and spin against
    # each other (and the event loop): the second batch is searched on its worker's core.
    asked: list[int] = []
    monkeypatch.setattr("service.batching.use_cores_for", asked.append)
    requests = [
        [Query(vector=rng.standard_normal(DIM).astype(np.float32)) for _ in range(200)]
        for _ in range(2)
    ]

    async def work(batcher: MicroBatcher) -> list[list[list[Hit]]]:
        return await asyncio.gather(*(batcher.search(col, queries) for queries in requests))

    answers, batches = run_batcher(0, 256, work)
    assert batches.sizes == [200, 200]
    assert asked == [200, 1] or asked == [1, 200]  # the first alone; the second beside it
    for queries, answer in zip(requests, answers, strict=True):
        same_hits(answer[0], direct(col, queries[0]))


# -- texts and images ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> EmbedderRegistry:
    pytest.importorskip("sentence_transformers")
    return EmbedderRegistry(default_embedder_configs())


@pytest.fixture
def docs(tmp_path: Path, registry: EmbedderRegistry) -> Iterator[Collection]:
    with Engine(tmp_path / "texts", background=False, embedders=registry) as engine:
        c = engine.create_collection("docs", embedder="minilm", index="flat")
        c.upsert(list(range(len(SHORT_TEXTS))), texts=SHORT_TEXTS)
        yield c


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_texts_are_embedded_together_and_answered_separately(docs: Collection) -> None:
    texts = ["kitten", "finance news", "soup", "soccer", "weather", "smartphone", "cats"]
    queries = [Query(text=t, k=2) for t in texts]
    queries.append(Query(image=png()))  # a text model embeds no images: only this one fails
    queries.append(Query(image=b"not an image"))
    answers, batches = run_batcher(50, 256, one_each, docs, queries)
    assert batches.sizes == [len(queries)]
    assert isinstance(answers[-2], InvalidEmbedderInput)
    assert isinstance(answers[-1], InvalidEmbedderInput)
    for text, answer in zip(texts, answers, strict=False):
        assert not isinstance(answer, BaseException)
        same_hits(answer, docs.search(texts=[text], k=2)[0])


def test_embedding_for_examples_shares_the_batch_and_keeps_order(docs: Collection) -> None:
    async def work(batcher: MicroBatcher) -> tuple[np.ndarray, list[list[Hit]]]:
        vectors, hits = await asyncio.gather(
            batcher.embed(docs, ["kitten", "soup"]), batcher.search(docs, [Query(text="rain")])
        )
        return vectors, hits

    (vectors, hits), batches = run_batcher(50, 256, work)
    np.testing.assert_allclose(vectors, docs.embed(texts=["kitten", "soup"]), atol=1e-5)
    same_hits(hits[0], docs.search(texts=["rain"])[0])
    assert sum(batches.sizes) == 3


def test_texts_for_an_embedder_alone_are_batched_and_answered_in_order(
    registry: EmbedderRegistry,
) -> None:
    minilm = registry.get("minilm")
    requests = [["kitten"], ["finance news", "soup"], ["weather"], ["cats", "dogs", "rain"]]

    async def work(batcher: MicroBatcher) -> list[np.ndarray]:
        return list(await asyncio.gather(*(batcher.embed_texts(minilm, t) for t in requests)))

    answers, batches = run_batcher(50, 256, work)
    assert batches.sizes == [7]  # they arrive together: one batch, at once
    for texts, vectors in zip(requests, answers, strict=True):
        np.testing.assert_allclose(vectors, minilm.embed_texts(texts), atol=1e-5)


def test_every_batch_that_embeds_runs_on_one_thread_while_vector_batches_use_the_workers(
    docs: Collection, col: Collection, registry: EmbedderRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyTorch runs an OpenMP team per calling thread; teams of two threads taking turns
    # spin against each other, so every model batch goes to the same thread.
    threads: list[tuple[bool, str]] = []
    execute = batching._execute

    def recorded(work: Any, target: Any, items: Any, alone: bool) -> list[Any]:
        embeds = any(item.query.text is not None for item in items)
        threads.append((embeds, threading.current_thread().name))
        return execute(work, target, items, alone)

    monkeypatch.setattr(batching, "_execute", recorded)
    monkeypatch.setattr(batching, "INLINE_BUDGET_S", 0.0)  # every batch in a thread
    minilm = registry.get("minilm")
    vector = Query(vector=rng.standard_normal(DIM).astype(np.float32))

    async def work(batcher: MicroBatcher) -> None:
        for _ in range(3):  # two model lanes and a vector lane at once, three times
            await asyncio.gather(
                batcher.search(docs, [Query(text="kitten")]),
                batcher.embed_texts(minilm, ["soup"]),
                batcher.search(col, [vector]),
            )

    run_batcher(2, 256, work)
    model_threads = {name for embeds, name in threads if embeds}
    vector_threads = {name for embeds, name in threads if not embeds}
    assert len(model_threads) == 1
    assert sum(embeds for embeds, _ in threads) == 6
    assert not model_threads & vector_threads
