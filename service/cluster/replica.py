"""A read replica of one shard: a data folder of its own, kept current from the shard's
store of record.

Every insert and update takes a new label in the shard's store (labels only grow), so a
replica that remembers the last label it applied asks the shard for the rows after it and
upserts them. Deletes leave no row behind: when the replica counts more points than the
shard after catching up, it fetches the shard's ids and drops what is gone. Each round
ends by recording the shard's write sequence it has reached; the shard reports the gap
(``lag_writes``) and the age of that round in ``GET /collections/{name}``.

How far a replica may lag: one sync interval plus one round (a round applies at most
what was written since the last). A read sent to a replica may miss writes acknowledged
less than that long ago; reads that must see them go to the shard itself.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from indexer import DataFolderInUse, Engine, VecserveError
from indexer.embedders import EmbedderConfig, EmbedderRegistry
from indexer.points import decode_id, encode_id
from service.cluster.shard import (
    CHANGES_LIMIT,
    READS,
    Reply,
    call_collection,
    create_from,
    failed,
    ok,
)

log = logging.getLogger(__name__)

# A call to the shard: method name and arguments in, a Reply out; raises when the shard
# cannot be reached.
PrimaryCall = Callable[..., Reply]
SYNC_STATE = "sync.json"


class ReplicaServer:
    """Answers reads from its own engine and follows its shard in a background thread."""

    def __init__(
        self,
        folder: str,
        embedders: list[dict[str, Any]],
        device: str,
        primary: PrimaryCall,
        *,
        replica_id: str,
        interval_s: float = 0.5,
        first_sync_s: float = 120.0,
    ) -> None:
        """Open a free replica folder under ``folder`` and catch up with the shard before
        answering anything (for at most ``first_sync_s``: the shard may be starting too)."""
        configs = [EmbedderConfig.model_validate(c) for c in embedders]
        self.replica_id = replica_id
        self.folder, self.engine = _open_free_folder(
            Path(folder), device, EmbedderRegistry(configs)
        )
        self._primary = primary
        self._state: dict[str, dict[str, Any]] = _load_state(self.folder / SYNC_STATE)
        self._interval = interval_s
        self._stop = threading.Event()
        self._catch_up(first_sync_s)
        self._thread = threading.Thread(target=self._follow, name="vecserve-replica", daemon=True)
        self._thread.start()

    def collection_call(
        self, name: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Reply:
        if method not in READS or method == "describe":
            raise ValueError(f"a read replica does not answer {method!r}")
        try:
            return ok(call_collection(self.engine.get_collection(name), method, args, kwargs))
        except VecserveError as exc:
            return failed(exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.close()

    # -- following the shard -------------------------------------------------------------

    def _catch_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sync_once()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                log.info("replica %s: shard not ready; retrying", self.replica_id)
                time.sleep(0.5)

    def _follow(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sync_once()
            except Exception:  # the shard may be restarting: try again next round
                log.warning("replica %s: sync failed; retrying", self.replica_id, exc_info=True)

    def sync_once(self) -> None:
        """One round: every collection of the shard brought up to date here."""
        names = set(_value(self._primary("engine_call", "list")))
        for gone in set(self.engine.list_collections()) - names:
            self.engine.drop_collection(gone)
            self._state.pop(gone, None)
        for name in sorted(names):
            self._sync(name)
        _save_state(self.folder / SYNC_STATE, self._state)

    def _sync(self, name: str) -> None:
        state = self._state.get(name, {})
        while True:
            changes = _value(
                self._primary(
                    "changes", name, state.get("after", 0), self.replica_id, state.get("seq", 0)
                )
            )
            if changes["uid"] != state.get("uid"):  # new here, or made again on the shard
                state = self._restart(name, changes["uid"])
            rows = changes["rows"]
            if rows:
                collection = self.engine.get_collection(name)
                collection.upsert(
                    [decode_id(key) for _, key, _, _ in rows],
                    np.frombuffer(b"".join(v for _, _, v, _ in rows), dtype=np.float32).reshape(
                        len(rows), collection.dim
                    ),
                    [orjson.loads(p) for _, _, _, p in rows],
                )
                state["after"] = int(rows[-1][0])
            if len(rows) < CHANGES_LIMIT:
                break
        collection = self.engine.get_collection(name)
        if collection.count() > changes["count"]:  # deletes happened on the shard
            live = set(_value(self._primary("keys", name)))
            here = [point.id for point in _all_points(collection)]
            gone = [pid for pid in here if encode_id(pid) not in live]
            if gone:
                collection.delete(gone)
        state["seq"] = changes["seq"]
        self._state[name] = state

    def _restart(self, name: str, uid: str) -> dict[str, Any]:
        """Make the collection here anew, as the shard has it."""
        config = _value(self._primary("config", name))
        if name in self.engine.list_collections():
            self.engine.drop_collection(name)
        create_from(self.engine, name, config)
        return {"uid": uid, "after": 0, "seq": 0}


def _all_points(collection: Any) -> list[Any]:
    points: list[Any] = []
    cursor = None
    while True:
        page, cursor = collection.scroll(10_000, cursor)
        points.extend(page)
        if cursor is None:
            return points


def _value(reply: Reply) -> Any:
    if reply[0] == "ok":
        return reply[1]
    raise RuntimeError(f"{reply[1]}: {reply[2]}")


def _open_free_folder(base: Path, device: str, embedders: EmbedderRegistry) -> tuple[Path, Engine]:
    """An engine on the first replica folder under ``base`` that no live replica holds
    (each engine locks its folder), so that a replica restarted by Ray catches up from
    where a dead one stopped rather than from nothing."""
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1024):
        folder = base / f"replica-{n}"
        try:
            engine = Engine(
                folder, device="cpu" if device == "cpu" else "auto", embedders=embedders
            )
        except DataFolderInUse:
            continue
        return folder, engine
    raise RuntimeError(f"no free replica folder under {base}")


def _load_state(path: Path) -> dict[str, dict[str, Any]]:
    try:
        state: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return state
    except (OSError, ValueError):
        return {}


def _save_state(path: Path, state: dict[str, dict[str, Any]]) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(state))
    os.replace(temp, path)
