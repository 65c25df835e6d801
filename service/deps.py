"""Typed dependencies: what a route needs, taken from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from indexer import Collection, Engine
from service.batching import MicroBatcher
from service.settings import Settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_batcher(request: Request) -> MicroBatcher:
    batcher: MicroBatcher = request.app.state.batcher
    return batcher


def get_collection(name: str, engine: EngineDep) -> Collection:
    return engine.get_collection(name)


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CollectionDep = Annotated[Collection, Depends(get_collection)]
BatcherDep = Annotated[MicroBatcher, Depends(get_batcher)]
