"""Server settings, from the environment (``VECSERVE_*``) or arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the server can be told. Limits bound each request so that one client
    cannot exhaust the server; each is checked with a clear 413 or 422 error."""

    model_config = SettingsConfigDict(env_prefix="VECSERVE_", extra="forbid")

    data_dir: Path = Path("./data")
    device: Literal["auto", "cpu"] = "auto"
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_points_per_upsert: int = Field(default=10_000, ge=1)
    max_queries_per_batch: int = Field(default=1_024, ge=1)
    max_k: int = Field(default=1_000, ge=1, le=10_000)
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
