"""Server settings, from the environment (``VECSERVE_*``) or arguments."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from indexer.embedders import EmbedderConfig, default_embedder_configs
from indexer.query.rerank import RerankerConfig

ENV_PREFIX = "VECSERVE_"
API_KEYS_ENV = f"{ENV_PREFIX}API_KEYS"
"""The server's read-write API keys (``Settings.api_keys``), a JSON list or comma-separated;
a command that calls a server sends the first of them unless ``CLIENT_API_KEY_ENV`` is set."""
CLIENT_API_KEY_ENV = f"{ENV_PREFIX}API_KEY"
"""The one key a command sends to a server (``vecserve index --url``; ``--api-key`` wins)."""

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_KEY_LENGTH = 16

ApiKeys = Annotated[list[SecretStr], NoDecode]


class Settings(BaseSettings):
    """Everything the server can be told. Limits bound each request so that one client
    cannot exhaust the server; each is checked with a clear 413 or 422 error."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    data_dir: Path = Path("./data")
    device: Literal["auto", "cpu"] = "auto"
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_points_per_upsert: int = Field(default=10_000, ge=1)
    max_queries_per_batch: int = Field(default=1_024, ge=1)
    max_k: int = Field(default=1_000, ge=1, le=10_000)
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    max_dim: int = Field(default=8_192, ge=1, le=65_536)
    # Nesting of $and/$or/$not plus the segments of dotted paths; the engine stops at 16.
    max_filter_depth: int = Field(default=8, ge=1, le=16)
    # A snapshot upload (restore) is streamed to a file in the data folder, not held in
    # memory, so it has its own bound instead of max_body_bytes.
    max_snapshot_bytes: int = Field(default=16 * 1024**3, ge=1024)

    # The embedder allowlist: the models collections may embed with, as a JSON list of
    # {"name", "kind", "source", "device", "batch_size"}. Requests only ever name one.
    embedders: list[EmbedderConfig] = Field(default_factory=default_embedder_configs)
    # Load the embedders of the collections there are (and embed once with each) before
    # the server says it is ready, so that the first search does not wait for a model.
    warm_embedders: bool = True
    # The cross-encoder allowlist for query reranking, as a JSON list of {"name",
    # "source" (a local folder), "device", "batch_size", "max_length"}. None by default.
    rerankers: list[RerankerConfig] = Field(default_factory=list)
    # Micro-batching: searches to one collection that arrive within this window are
    # embedded and searched together (0 turns it off). A request that finds the
    # collection idle never waits. max_batch bounds the queries in one batch.
    batch_window_ms: float = Field(default=2.0, ge=0, le=1_000)
    max_batch: int = Field(default=256, ge=1, le=65_536)

    # Where `vecserve serve` listens.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    # API keys: a JSON list or comma-separated. With none, every client has full access,
    # which `vecserve serve` accepts only on a loopback address or with allow_no_auth.
    api_keys: ApiKeys = Field(default_factory=list)
    read_only_api_keys: ApiKeys = Field(default_factory=list)
    allow_no_auth: bool = False

    @field_validator("embedders", "rerankers")
    @classmethod
    def _unique_names(
        cls, configs: list[EmbedderConfig] | list[RerankerConfig], info: ValidationInfo
    ) -> list[EmbedderConfig] | list[RerankerConfig]:
        names = [config.name for config in configs]
        if len(set(names)) != len(names):
            what = "an embedder" if info.field_name == "embedders" else "a reranker"
            raise ValueError(f"{what} name is configured twice: {names}")
        return configs

    @field_validator("api_keys", "read_only_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return split_keys(value) if isinstance(value, str) else value

    @field_validator("api_keys", "read_only_api_keys")
    @classmethod
    def _strong_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            secret = key.get_secret_value()
            if len(secret) < MIN_KEY_LENGTH or not all(33 <= ord(c) <= 126 for c in secret):
                raise ValueError(
                    f"an API key is {MIN_KEY_LENGTH} or more printable ASCII characters "
                    "without spaces or commas (e.g. `openssl rand -hex 32`)"
                )
            if "," in secret:
                raise ValueError("an API key may not contain a comma")
        return keys

    @model_validator(mode="after")
    def _safe_exposure(self) -> Settings:
        read_write = {k.get_secret_value() for k in self.api_keys}
        if read_write & {k.get_secret_value() for k in self.read_only_api_keys}:
            raise ValueError("a key is both in api_keys and read_only_api_keys")
        if not self.auth_enabled and self.host not in LOCAL_HOSTS and not self.allow_no_auth:
            raise ValueError(
                f"refusing to listen on {self.host} without API keys: set {API_KEYS_ENV}, "
                "or allow_no_auth (--allow-no-auth) if anyone who can reach the port may "
                "read and write everything"
            )
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.read_only_api_keys)


def split_keys(text: str) -> list[str]:
    """API keys given as a JSON list or comma-separated."""
    text = text.strip()
    if text.startswith("["):
        keys: list[str] = json.loads(text)
        return keys
    return [key.strip() for key in text.split(",") if key.strip()]


def client_api_key(environ: Mapping[str, str] = os.environ) -> str | None:
    """The key a command sends to a server: ``VECSERVE_API_KEY``, else the first of
    ``VECSERVE_API_KEYS``, so that one variable serves a server and the commands that
    call it from the same shell."""
    if key := environ.get(CLIENT_API_KEY_ENV, "").strip():
        return key
    keys = split_keys(environ.get(API_KEYS_ENV, ""))
    return str(keys[0]) if keys else None
