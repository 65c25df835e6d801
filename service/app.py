"""The FastAPI application: ``create_app(settings)``, with no import-time globals."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from indexer import Engine
from indexer.embedders import EmbedderRegistry
from indexer.query import RerankerRegistry
from service import console, docs
from service.batching import MicroBatcher
from service.errors import install_error_handlers
from service.gateway import Gateway
from service.hot_routes import HotRoutes
from service.metrics import Metrics, collection_gpu_bytes, collection_sizes
from service.openapi import install_openapi
from service.responses import Json
from service.routes import (
    collections,
    embeddings_openai,
    health,
    metrics,
    points,
    query,
    search,
    snapshots,
)
from service.routing import RouteTable
from service.settings import Settings
from service.warmup import warm_embedders


def create_app(
    settings: Settings | None = None, *, engine: Callable[[], Engine] | None = None
) -> FastAPI:
    """The vecserve HTTP API over the collections in ``settings.data_dir``, or over the
    engine that ``engine`` makes (a cluster router's, whose collections live on shards)."""
    settings = settings or Settings()
    # Before torch loads (with the first embedder): its OpenMP threads then sleep between
    # parallel regions instead of spinning, as under `vecserve serve`, which sets this
    # before faiss loads too. A server started by uvicorn directly gets it here. On 2
    # cores busy with other work, a lone MiniLM query took 100-400 ms spinning, 7-14 ms
    # passive; on idle cores the two are within noise.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    def open_engine() -> Engine:
        if engine is not None:
            return engine()
        return Engine(
            settings.data_dir,
            device=settings.device,
            embedders=EmbedderRegistry(settings.embedders),
            rerankers=RerankerRegistry(settings.rerankers),
            on_index_build=app_metrics.observe_index_build,
        )

    def open_collections(opened: Engine) -> None:
        for name in opened.list_collections():  # all open (indexes loaded) before ready
            with app_metrics.collection_open_seconds.time():
                opened.get_collection(name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_engine()
        app.state.engine = engine
        batcher = MicroBatcher(
            settings.batch_window_ms, settings.max_batch, observe=app_metrics.batch_size.observe
        )
        app.state.batcher = batcher
        # In a thread: a cluster router's engine asks its shards, a blocking call that Ray
        # refuses on an event loop.
        await run_in_threadpool(open_collections, engine)
        if settings.warm_embedders:
            await run_in_threadpool(warm_embedders, engine)
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            batcher.close()
            engine.close()  # finishes background work and saves indexes

    app = FastAPI(
        title="vecserve",
        summary="Vector search with embedding, on CPU or GPU.",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=Json,
        docs_url=None,  # served by service.docs, with local assets
        redoc_url=None,
    )
    app_metrics = Metrics(
        lambda: collection_sizes(app.state.engine) if app.state.ready else {},
        lambda: collection_gpu_bytes(app.state.engine) if app.state.ready else {},
    )
    app.state.settings = settings
    app.state.metrics = app_metrics
    app.state.ready = False
    install_error_handlers(app)
    routers = (health, collections, points, search, query, metrics, snapshots, embeddings_openai)
    for module in (*routers, docs, console):
        app.include_router(module.router)
    install_openapi(app, settings)
    # Outermost last: the gateway (request id, metrics, API keys and the body size limit,
    # before the body is read); innermost, the hot routes, served without FastAPI's
    # per-request machinery.
    table = RouteTable(app.routes)
    hot = (search.search, search.search_batch, points.upsert_points)
    app.add_middleware(HotRoutes, api=app, endpoints=hot)
    app.add_middleware(Gateway, settings=settings, metrics=app_metrics, routes=table)
    return app
