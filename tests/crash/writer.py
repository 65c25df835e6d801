"""The child process of the crash tests: it writes to an engine until it is killed.

    python -m tests.crash.writer DATA_DIR LOG_PATH SEED [--bulk COLLECTION]

It upserts and deletes batches in a loop, on four collections (one per index family, and
one ``auto`` collection that switches family as it grows), with ``background=True`` so
that index rebuilds and saves run, and get killed, alongside the writes. Each collection
indexes the payload's ``text`` for full-text search, which holds words unique to the point
and the write (:func:`point_words`); now and then a collection's full text is declared
anew, so that its points are indexed again in background batches.

The log is the oracle. Each write appends an ``intent`` line before the call and an
``ack`` line (flushed and fsynced) once the call has returned, so at most one write is
ever in flight: an intent without an ack. The test appends a ``resolve`` line for that
write once it has seen whether the store applied it. Vectors and payloads are derived
from (collection, id, batch number), so the log names ids only.

On stdout the writer reports ``ready`` once its collections are open, and
``maintain-begin NAME`` / ``maintain-end NAME`` (and ``save-begin`` / ``save-end``)
around index maintenance, so the test can aim kills at a rebuild or a save.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import indexer.collection.upkeep
from indexer import Collection, Engine

PointId = int | str

DIM = 16
SPECS: dict[str, dict[str, Any]] = {
    # exact while small, HNSW past 300 points
    "auto": {"kind": "auto", "auto_threshold": 300, "hnsw_m": 12, "ef_construction": 40},
    "hnsw": {"kind": "hnsw", "hnsw_m": 8, "ef_construction": 32},
    # serves exactly until it has 10,000 points to train on, then IVF
    "ivf": {"kind": "ivf_flat", "nlist": 32},
    "flat": {"kind": "flat"},
}
WEIGHTS = {"auto": 4, "hnsw": 3, "ivf": 2, "flat": 1}
MAX_BATCH = 50
MAX_DELETE = 20
IVF_MIN_POINTS = 10_500
REDECLARE = 0.02  # chance, after a write, that its collection's full text is declared again
ID_SPACE = 100_000  # new ids of batch b are derived from b * ID_SPACE + position

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# -- what each (collection, id, batch) writes --------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on a uint64 array (wraps, as intended)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _id_hash(collection: str, point_id: PointId) -> int:
    key = f"{collection}/{json.dumps(point_id)}".encode()  # 7 and "7" differ
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def point_vectors(collection: str, ids: Sequence[PointId], batches: Sequence[int]) -> np.ndarray:
    """The float32 vectors [n, DIM] that batch ``batches[i]`` wrote for ``ids[i]``."""
    if not ids:
        return np.empty((0, DIM), dtype=np.float32)
    keys = np.array([_id_hash(collection, i) for i in ids], dtype=np.uint64)
    base = _mix(keys ^ _mix(np.asarray(batches, dtype=np.uint64) + _GOLDEN))
    lanes = _mix(base[:, None] + np.arange(1, DIM + 2, dtype=np.uint64) * _GOLDEN)
    unit = (lanes >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # in [0, 1)
    scale = 0.1 + 10.0 * unit[:, DIM:]  # cosine: stored as written, not normalised
    return ((unit[:, :DIM] * 2.0 - 1.0) * scale).astype(np.float32)


def point_words(collection: str, point_id: PointId, batch: int) -> str:
    """The words of ``point_id`` as ``batch`` wrote it, found in no other point."""
    return f"k{_id_hash(collection, point_id):x} b{batch}"


def point_payload(collection: str, point_id: PointId, batch: int) -> dict[str, Any]:
    """The payload that batch ``batch`` wrote for ``point_id``."""
    return {
        "batch": batch,
        "id": point_id,
        "collection": collection,
        # Words unique to this point and this write: the full-text index is checked by them.
        "text": f"v{batch} é ✓ {point_words(collection, point_id, batch)}",
        "tags": [batch % 7, "x", None, True],
        "ratio": batch / 7,
        "nested": {"even": batch % 2 == 0},
    }


# -- the log and its replay ------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One call to the engine: an upsert or a delete of ``ids`` in one collection."""

    batch: int
    op: str  # "upsert" | "delete"
    collection: str
    ids: tuple[PointId, ...]

    def record(self) -> dict[str, Any]:
        return {
            "t": "intent",
            "batch": self.batch,
            "op": self.op,
            "collection": self.collection,
            "ids": list(self.ids),
        }


@dataclass
class Oracle:
    """What the log says each collection holds: id -> the batch that last wrote it."""

    state: dict[str, dict[PointId, int]] = field(
        default_factory=lambda: {name: {} for name in SPECS}
    )
    seen: dict[str, set[PointId]] = field(default_factory=lambda: {name: set() for name in SPECS})
    pending: Write | None = None  # the write in flight: logged intent, no ack yet
    last_batch: int = 0
    acked: int = 0
    problems: list[str] = field(default_factory=list)

    def apply(self, write: Write) -> None:
        live = self.state[write.collection]
        for point_id in write.ids:
            if write.op == "upsert":
                live[point_id] = write.batch
            else:
                live.pop(point_id, None)

    def expected_ack(self, write: Write) -> int:
        """What the call should have returned: the batch size, or how many it deleted."""
        if write.op == "upsert":
            return len(write.ids)
        live = self.state[write.collection]
        return sum(point_id in live for point_id in write.ids)


def replay(lines: Iterable[bytes]) -> Oracle:
    """The oracle after the given log lines."""
    oracle = Oracle()
    for line in lines:
        record = json.loads(line)
        kind = record["t"]
        if kind == "intent":
            if oracle.pending is not None:
                oracle.problems.append(f"batch {record['batch']} began with one in flight")
            write = Write(record["batch"], record["op"], record["collection"], tuple(record["ids"]))
            oracle.pending = write
            oracle.last_batch = max(oracle.last_batch, write.batch)
            oracle.seen[write.collection].update(write.ids)
            continue
        pending = oracle.pending
        if pending is None or record["batch"] != pending.batch:
            oracle.problems.append(f"{kind} for batch {record['batch']} that is not in flight")
            continue
        if kind == "ack":
            expected = oracle.expected_ack(pending)
            if record["n"] != expected:
                oracle.problems.append(
                    f"batch {pending.batch} ({pending.op} on {pending.collection}) returned "
                    f"{record['n']}, expected {expected}"
                )
            oracle.apply(pending)
            oracle.acked += 1
        elif kind == "resolve" and record["applied"]:
            oracle.apply(pending)
        oracle.pending = None
    return oracle


def read_log(path: Path) -> list[bytes]:
    """The complete lines of the log; a line cut short by a kill is left out."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data[: data.rfind(b"\n") + 1].splitlines()


def append_record(fd: int, record: dict[str, Any], *, sync: bool) -> None:
    data = memoryview(json.dumps(record, separators=(",", ":")).encode() + b"\n")
    while data:
        data = data[os.write(fd, data) :]
    if sync:
        os.fsync(fd)


def open_log(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


# -- the writer --------------------------------------------------------------------------


class Events:
    """Lines on stdout, from the main thread and from background maintenance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def emit(self, *words: str) -> None:
        with self._lock:
            sys.stdout.write(" ".join(words) + "\n")
            sys.stdout.flush()


def instrument(events: Events) -> None:
    """Report index maintenance and saves on stdout, so kills can be aimed at them."""
    optimize = Collection.optimize

    def reported_optimize(self: Collection) -> None:
        events.emit("maintain-begin", self.name)
        optimize(self)
        events.emit("maintain-end", self.name)

    Collection.optimize = reported_optimize  # type: ignore[method-assign]

    save = indexer.collection.upkeep.save_index

    def reported_save(path: Path, *args: Any, **kwargs: Any) -> None:
        events.emit("save-begin", path.parent.name)
        save(path, *args, **kwargs)
        events.emit("save-end", path.parent.name)

    indexer.collection.upkeep.save_index = reported_save


def _new_id(rng: random.Random, batch: int, position: int, ints: list[int]) -> PointId:
    n = batch * ID_SPACE + position
    roll = rng.random()
    if roll < 0.1 and ints:
        return str(rng.choice(ints))  # the string twin of an integer id: "7" is not 7
    if roll < 0.4:
        return n
    if roll < 0.5:
        return -n
    if roll < 0.6:
        return (1 << 62) + n
    if roll < 0.7:
        return str(n)
    return f"p{batch}-{position}"


def upsert_ids(
    rng: random.Random, batch: int, live: dict[PointId, int], size: int, overwrite: float
) -> tuple[PointId, ...]:
    """``size`` distinct ids: about ``overwrite`` of them existing, the rest new."""
    existing = list(live)
    wanted = min(len(existing), round(size * overwrite))
    chosen = dict.fromkeys(rng.sample(existing, wanted) if wanted else [])
    ints = [i for i in rng.sample(existing, min(len(existing), 50)) if isinstance(i, int)]
    position = 0
    while len(chosen) < size:
        chosen.setdefault(_new_id(rng, batch, position, ints))
        position += 1
    ids = list(chosen)
    rng.shuffle(ids)
    return tuple(ids)


def random_write(rng: random.Random, oracle: Oracle, batch: int) -> Write:
    name = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    live = oracle.state[name]
    if live and rng.random() < 0.3:
        ids = rng.sample(list(live), rng.randint(1, min(MAX_DELETE, len(live))))
        if rng.random() < 0.2:
            ids.append(f"never-{batch}")  # deleting what does not exist is harmless
        return Write(batch, "delete", name, tuple(ids))
    ids = upsert_ids(rng, batch, live, rng.randint(1, MAX_BATCH), rng.choice((0.0, 0.3, 0.7)))
    return Write(batch, "upsert", name, ids)


def bulk_write(rng: random.Random, oracle: Oracle, batch: int, name: str) -> Write:
    """A batch big enough to start a rebuild: it overwrites half the collection (HNSW
    tombstones) and at least doubles it (recalibration, or IVF's training threshold)."""
    live = oracle.state[name]
    new = max(1500, len(live))
    if name == "ivf":
        new = max(new, IVF_MIN_POINTS - len(live))
    size = len(live) // 2 + new
    return Write(batch, "upsert", name, upsert_ids(rng, batch, live, size, (len(live) // 2) / size))


def perform(fd: int, collection: Collection, write: Write, oracle: Oracle) -> None:
    append_record(fd, write.record(), sync=False)
    if write.op == "upsert":
        batches = [write.batch] * len(write.ids)
        vectors = point_vectors(write.collection, write.ids, batches)
        payloads = [point_payload(write.collection, i, write.batch) for i in write.ids]
        n = collection.upsert(list(write.ids), vectors, payloads)
    else:
        n = collection.delete(list(write.ids))
    append_record(fd, {"t": "ack", "batch": write.batch, "n": n}, sync=True)
    oracle.apply(write)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("log_path", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("--bulk", choices=sorted(SPECS), help="start with a big batch here")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop if not killed")
    args = parser.parse_args(argv)

    oracle = replay(read_log(args.log_path))
    if oracle.pending is not None:
        raise SystemExit(f"batch {oracle.pending.batch} is in flight: resolve it first")
    rng = random.Random(args.seed)
    events = Events()
    instrument(events)
    engine = Engine(args.data_dir, background=True)
    collections = {
        name: engine.create_collection(name, DIM, "cosine", spec, full_text=["text"], exist_ok=True)
        for name, spec in SPECS.items()
    }
    fd = open_log(args.log_path)
    events.emit("ready")
    batch = oracle.last_batch
    if args.bulk:
        batch += 1
        perform(fd, collections[args.bulk], bulk_write(rng, oracle, batch, args.bulk), oracle)
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        batch += 1
        write = random_write(rng, oracle, batch)
        perform(fd, collections[write.collection], write, oracle)
        if rng.random() < REDECLARE:
            # A new declaration: the collection's points become a backlog, indexed in the
            # background in batches, which the kill may land in.
            collections[write.collection].set_full_text(["text"])
            events.emit("redeclared", write.collection)
    raise SystemExit("the writer was never killed")


if __name__ == "__main__":
    main()
