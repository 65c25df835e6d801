"""Micro-batching: concurrent searches to one collection are embedded and searched together.

A batch of queries costs little more than one query (FAISS scans with BLAS or on the GPU,
a model embeds a batch in one forward pass), so the HTTP layer does not search request by
request. Each request puts its queries in its collection's lane:

- a request that finds the lane idle (nothing waiting, nothing running) goes once the event
  loop has taken the requests that arrived with it (its current turn), so a lone request
  never waits and requests that arrive together go together;
- otherwise its queries wait until the window (``batch_window_ms``, counted from the oldest
  waiting query) has closed and the lane's running batch is done, or until ``max_batch``
  queries wait; then all that wait go as one batch.

Waiting for the running batch makes batches grow with the load: where a batch takes longer
than the window (a text model on a CPU), flushing on the window alone would queue many small
batches behind it. A window of 0 turns batching off: every request goes at once, alone.

A batch runs in a worker thread, so the event loop reads the next requests meanwhile, with
two exceptions. A batch that embeds (texts or images) always runs in the same thread, the
model thread: PyTorch's CPU kernels run on an OpenMP team per calling thread, and teams of
two threads taking turns spin against each other (a lone MiniLM query took 11 ms
alternating over two threads, 7 ms always on one); the embedder runs one batch at a time
anyway, so one thread loses nothing. A batch of plain vector searches (no filter, no search
parameters) that recent ones say will take under ``INLINE_BUDGET_S`` runs on the event loop
itself: handing it to a thread and back costs more than it does (two thread wake-ups, and
the worker and the loop taking the GIL from each other at every row SQLite returns). Each batch:

1. texts are embedded in one call; images are decoded one by one, then embedded in one call;
2. vectors are checked one by one, so a wrong dimension fails only its own request;
3. queries with the same filter and params are searched as one batch, with the largest k
   among them; each answer is then cut to its own k (and stripped of the payloads or
   vectors it did not ask for);
4. searches by point id ("more like this point") are recommendations and run one by one.

A step that fails for a whole batch is retried query by query, so an error reaches only
the request that caused it.

With an HNSW index, a query searched with a larger k than it asked for may find slightly
better neighbours than it would alone (the search breadth grows with k); exact and IVF
indexes answer the same either way.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from typing import Any

import numpy as np

from indexer import Collection, Hit
from indexer.embedders import Embedder
from indexer.threads import use_cores_for
from service import batch_work
from service.batch_work import Item, Query, Target, Work

__all__ = ["MicroBatcher", "Query"]


# A batch of vector searches expected to take at most this long runs on the event loop.
INLINE_BUDGET_S = 0.002
# How much each batch's cost moves the estimate of the next (exponential average).
_COST_WEIGHT = 0.2


class _Lane:
    """The queries waiting for one collection, and its batches running."""

    __slots__ = ("due", "pending", "running", "timer", "work")

    def __init__(self, work: Work) -> None:
        self.work = work  # chosen once: a protocol isinstance check costs tens of µs
        self.pending: list[Item] = []
        self.running = 0
        self.timer: asyncio.Handle | None = None  # the window, or the end of the turn
        self.due = False  # the window of the waiting queries has closed


class MicroBatcher:
    """Gathers concurrent searches per collection into batches; see the module docstring.

    ``window_ms`` 0 turns batching off: every request is searched on its own, at once
    (the queries of one request still go together). ``observe`` is told the size of each
    batch (the service passes its Prometheus histogram). ``workers`` threads run the
    batches.
    """

    def __init__(
        self,
        window_ms: float,
        max_batch: int,
        *,
        workers: int = 2,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self._window = window_ms / 1000
        self._max_batch = max_batch
        self._observe = observe
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="vecserve-batch")
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="vecserve-model")
        self._lanes: dict[Target, _Lane] = {}
        self._running = 0  # batches submitted and not yet back, over all lanes
        # Seconds per query of each collection's recent vector batches; weak, so that a
        # dropped collection is not kept. The lanes themselves go when idle.
        self._costs: weakref.WeakKeyDictionary[Target, float] = weakref.WeakKeyDictionary()

    async def search(self, collection: Collection, queries: Sequence[Query]) -> list[list[Hit]]:
        """The hits of each query, in order; raises the first query's error if any fails."""
        return await self._submit(
            collection, batch_work.on_collection, [(q, True) for q in queries]
        )

    async def embed_texts(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """Vectors of texts by an embedder of the allowlist with no collection (the
        OpenAI-compatible embeddings route), [n, dim], in order, embedded together with
        the other requests for that embedder."""
        queries = [(Query(text=t), False) for t in texts]
        vectors = await self._submit(embedder, batch_work.embed_texts, queries)
        return np.stack(vectors) if vectors else np.empty((0, embedder.dim), np.float32)

    async def embed(self, collection: Collection, sources: Sequence[str | bytes]) -> np.ndarray:
        """Vectors of texts (``str``) and encoded images (``bytes``), [n, dim], in order,
        embedded together with whatever else the collection is embedding now."""
        queries = [Query(text=s) if isinstance(s, str) else Query(image=s) for s in sources]
        vectors = await self._submit(
            collection, batch_work.on_collection, [(q, False) for q in queries]
        )
        return np.stack(vectors) if vectors else np.empty((0, collection.dim), np.float32)

    def close(self) -> None:
        """Wait for running batches to finish; call once no more requests arrive."""
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
        self._executor.shutdown(wait=True)
        self._model_thread.shutdown(wait=True)

    async def _submit(
        self, target: Target, work: Work, queries: list[tuple[Query, bool]]
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        items = [Item(q, search, loop.create_future()) for q, search in queries]
        lane = self._lanes.get(target)
        if lane is None:
            lane = self._lanes[target] = _Lane(work)
        idle = not lane.pending and lane.running == 0
        lane.pending.extend(items)
        if self._window <= 0 or len(lane.pending) >= self._max_batch:
            self._flush(target, lane)
        elif idle:  # at the end of this turn of the loop, with the requests read with it
            lane.timer = loop.call_soon(self._window_closed, target, lane)
        elif lane.timer is None and not lane.due:
            lane.timer = loop.call_later(self._window, self._window_closed, target, lane)
        if len(items) == 1:  # most requests: one query, no gathering
            return [await items[0].future]
        results = await asyncio.gather(*(item.future for item in items), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def _window_closed(self, target: Target, lane: _Lane) -> None:
        lane.timer = None
        lane.due = True
        if not lane.running:
            self._flush(target, lane)

    def _flush(self, target: Target, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        lane.due = False
        loop = asyncio.get_running_loop()
        while lane.pending:
            batch = lane.pending[: self._max_batch]
            del lane.pending[: self._max_batch]
            lane.running += 1
            self._running += 1
            # A batch alone may spread over the cores; beside others (the workers already
            # busy) it searches on its worker's core, or OpenMP threads would outnumber the
            # cores and spin against each other and against the event loop.
            alone = self._running == 1
            if self._runs_inline(target, batch):
                started = time.perf_counter()
                try:
                    results = _execute(lane.work, target, batch, False)
                except Exception as exc:  # a bug in the batch's own error handling
                    results = [exc] * len(batch)
                self._learn(target, batch, time.perf_counter() - started)
                self._settle(target, lane, batch, results)
                continue
            executor = self._model_thread if _embeds(batch) else self._executor
            try:
                running = executor.submit(_timed, lane.work, target, batch, alone)
            except RuntimeError as exc:  # the executor is shut down: fail the batch
                self._settle(target, lane, batch, [exc] * len(batch))
                continue
            # Back on the loop when done: a plain callback, not a task awaiting a wrapped
            # future (which costs more than a small search).
            running.add_done_callback(partial(self._back_to_loop, loop, target, lane, batch))

    def _runs_inline(self, target: Target, batch: list[Item]) -> bool:
        """Whether ``batch`` is vector searches that should take under the budget, on an
        engine's collection (a cluster's asks its shards: a blocking call, which Ray
        refuses on an event loop) that no write holds (the loop would wait for it)."""
        if not isinstance(target, Collection) or target.writing:
            return False
        try:
            cost = self._costs.get(target)
        except TypeError:  # a target that takes no weak reference: never inline
            return False
        return (
            cost is not None
            and cost * len(batch) <= INLINE_BUDGET_S
            and all(_plain_vector_search(item) for item in batch)
        )

    def _learn(self, target: Target, batch: list[Item], seconds: float) -> None:
        """Fold a plain vector batch's cost into ``target``'s estimate."""
        if not all(_plain_vector_search(item) for item in batch):
            return  # embedding, recommending, a filter or a knob: not what it estimates
        per_query = seconds / len(batch)
        with suppress(TypeError):
            cost = self._costs.get(target)
            self._costs[target] = (
                per_query if cost is None else cost + _COST_WEIGHT * (per_query - cost)
            )

    def _back_to_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        target: Target,
        lane: _Lane,
        items: list[Item],
        done: Future[tuple[list[Any], float]],
    ) -> None:
        """In the worker thread: hand the finished batch to the event loop."""
        # A closed loop (RuntimeError): the server has stopped, and nobody waits.
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finished, target, lane, items, done)

    def _finished(
        self,
        target: Target,
        lane: _Lane,
        items: list[Item],
        done: Future[tuple[list[Any], float]],
    ) -> None:
        if done.cancelled():  # at shutdown, before it ran
            for item in items:
                item.future.cancel()
            results: list[Any] = [None] * len(items)
        else:
            try:
                results, seconds = done.result()
                self._learn(target, items, seconds)
            except Exception as exc:  # a bug in the batch's own error handling
                results = [exc] * len(items)
        self._settle(target, lane, items, results)

    def _settle(self, target: Target, lane: _Lane, items: list[Item], results: list[Any]) -> None:
        lane.running -= 1
        self._running -= 1
        for item, result in zip(items, results, strict=True):
            if item.future.done():
                continue  # the request was cancelled meanwhile
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
        if not lane.running:
            if lane.due and lane.pending:
                self._flush(target, lane)  # they waited for this batch
            elif not lane.pending and self._lanes.get(target) is lane:
                del self._lanes[target]
        if self._observe is not None:
            self._observe(len(items))


# -- which batches go where -----------------------------------------------------------------


def _plain_vector_search(item: Item) -> bool:
    """Whether ``item`` searches by a vector with no filter and no search parameters: what
    the cost estimate of the inline path is about. A filter never seen before can read
    every payload, and a knob (``exact``, a large ``ef_search``) can scan every vector:
    seconds on a large collection, which must not stop the event loop."""
    query = item.query
    return (
        item.search and query.vector is not None and query.filter is None and query.params is None
    )


def _embeds(items: Sequence[Item]) -> bool:
    """Whether a batch runs a model: any text or image among its queries."""
    return any(item.query.text is not None or item.query.image is not None for item in items)


def _execute(work: Work, target: Target, items: Sequence[Item], alone: bool) -> list[Any]:
    """Each item's result (hits, or a vector for embed-only items) or its exception;
    ``alone``: no other batch runs, so a large one may use every core."""
    use_cores_for(len(items) if alone else 1)
    return work(target, items)


def _timed(
    work: Work, target: Target, items: Sequence[Item], alone: bool
) -> tuple[list[Any], float]:
    """:func:`_execute`'s results, and the seconds it took."""
    started = time.perf_counter()
    results = _execute(work, target, items, alone)
    return results, time.perf_counter() - started
