"""How the router calls its shards: one shard by a point's id, or every shard at once.

Nothing here imports Ray: a :class:`ShardLink` reaches a shard, and the Ray adapter
(:mod:`service.cluster.serving`) provides the links.

- A point lives on the shard its id hashes to (:func:`shard_of`).
- A shard that cannot be reached is retried for ``retry_s`` (:meth:`Shards.read`); then
  the call fails with :class:`ShardUnavailable` naming it (503): never a silent partial
  answer. A request that asks for a partial answer takes the shards that answer now
  instead (:meth:`Shards.each_answering`), the missing ones named.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from indexer import PointId, errors
from indexer.errors import ShardUnavailable, VecserveError
from indexer.points import encode_id
from service.cluster.shard import Reply

__all__ = ["ShardLink", "Shards", "shard_of", "value_of"]


class ShardLink(Protocol):
    """How the router reaches one shard. Each method raises :class:`ShardUnavailable`
    when the shard (or every replica) cannot answer now."""

    name: str

    def primary(self, method: str, *args: Any) -> Reply:
        """Call the shard itself: writes, and reads that must see every acknowledged write."""

    def read(self, method: str, *args: Any) -> Reply:
        """Call a read replica of the shard, or the shard when it has none."""

    def read_now(self, method: str, *args: Any) -> Reply:
        """As :meth:`read`, for a partial answer: without waiting for a shard that is
        restarting (a short wait at most), so that it is left out instead."""


def shard_of(key: str, shards: int) -> int:
    """The shard that owns the point with id key ``key`` (stable across processes)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def value_of(reply: Reply) -> Any:
    """A shard's answer, or its error raised again under the same stable name."""
    if reply[0] == "ok":
        return reply[1]
    _, name, message = reply
    error = getattr(errors, name, None)
    if isinstance(error, type) and issubclass(error, VecserveError):
        raise error(message)
    raise VecserveError(message)


class Shards:
    """The links to a cluster's shards, in shard order, and a pool to call them at once."""

    def __init__(self, links: Sequence[ShardLink], retry_s: float) -> None:
        self.links = list(links)
        self.retry_s = retry_s
        self.pool = ThreadPoolExecutor(max_workers=4 * len(self.links), thread_name_prefix="fan")

    def each(self, call: Callable[[int, ShardLink], Reply]) -> list[Any]:
        """``call`` on every shard at once; every answer, in shard order (the first
        error is raised once all have answered)."""
        futures = [self.pool.submit(call, i, link) for i, link in enumerate(self.links)]
        replies = [future.result() for future in futures]
        return [value_of(reply) for reply in replies]

    def each_answering(
        self, call: Callable[[int, ShardLink], Reply]
    ) -> tuple[list[Any], list[str]]:
        """``call`` on every shard at once, for a request that accepts a partial answer:
        the answers of the shards that gave one, in shard order, and the names of those
        that were unavailable. Other errors are raised as :meth:`each` raises them; so is
        :class:`ShardUnavailable` when no shard answered."""
        futures = [self.pool.submit(call, i, link) for i, link in enumerate(self.links)]
        answers: list[Any] = []
        missing: list[str] = []
        unavailable: ShardUnavailable | None = None
        for link, future in zip(self.links, futures, strict=True):
            try:
                answers.append(future.result())
            except ShardUnavailable as exc:
                missing.append(link.name)
                unavailable = unavailable or exc
        if unavailable is not None and not answers:
            raise unavailable
        return [value_of(reply) for reply in answers], missing

    def read(self, link: ShardLink, method: str, *args: Any) -> Reply:
        """A read, retried while the shard restarts, for at most ``retry_s``."""
        deadline = time.monotonic() + self.retry_s
        for attempt in itertools.count():
            try:
                return link.read(method, *args)
            except ShardUnavailable:
                if time.monotonic() + 0.5 > deadline:
                    raise
                time.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    def read_any(self, turn: int, method: str, *args: Any, wait: bool) -> Reply:
        """A read that any shard can answer, from one shard: shard ``turn`` (modulo their
        number), or the next one when a shard is unavailable. With ``wait``, a read that
        no shard answers now waits for the first (:meth:`read`); without, a shard that is
        restarting is passed over after a short wait at most (:meth:`ShardLink.read_now`),
        and :class:`ShardUnavailable` is raised when none answers."""
        first = turn % len(self.links)
        unavailable: ShardUnavailable | None = None
        for link in self.links[first:] + self.links[:first]:
            try:
                return (link.read if wait else link.read_now)(method, *args)
            except ShardUnavailable as exc:
                unavailable = exc
        if not wait and unavailable is not None:
            raise unavailable
        return self.read(self.links[first], method, *args)

    def owner(self, key: str) -> ShardLink:
        """The link to the shard that owns the point with id key ``key``."""
        return self.links[shard_of(key, len(self.links))]

    def by_owner(self, ids: Sequence[PointId]) -> dict[int, list[int]]:
        """Positions of ``ids`` grouped by the shard that owns each."""
        groups: dict[int, list[int]] = {}
        for position, point_id in enumerate(ids):
            groups.setdefault(shard_of(encode_id(point_id), len(self.links)), []).append(position)
        return groups

    def each_group(
        self, groups: dict[int, list[int]], call: Callable[[int, list[int]], Reply]
    ) -> list[Any]:
        """``call(shard, positions)`` for each group of :meth:`by_owner` at once; the
        answers in shard order (the first error raised once all have answered)."""
        futures = {s: self.pool.submit(call, s, positions) for s, positions in groups.items()}
        replies = [futures[s].result() for s in sorted(futures)]
        return [value_of(reply) for reply in replies]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
