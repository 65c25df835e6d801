"""Typed dependencies: what a route needs, taken from the app's state.

They are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, and a
thread hop per dependency per request costs more than a small search.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from indexer import Collection, Engine
from service.batching import MicroBatcher
from service.settings import Settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_batcher(request: Request) -> MicroBatcher:
    batcher: MicroBatcher = request.app.state.batcher
    return batcher


async def get_collection(name: str, engine: EngineDep) -> Collection:
    collection = engine.opened_collection(name)
    if collection is not None:
        return collection
    # Not open (or no such collection): opening reads the disk and may wait on the engine.
    return await run_in_threadpool(engine.get_collection, name)


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CollectionDep = Annotated[Collection, Depends(get_collection)]
BatcherDep = Annotated[MicroBatcher, Depends(get_batcher)]
