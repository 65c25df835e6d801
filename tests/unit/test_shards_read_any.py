"""A read that any shard can answer goes to one shard, taking turns, and passes over the
shards that are unavailable (the router's fan-out, without Ray: links in-process)."""

from __future__ import annotations

from typing import Any

import pytest

from indexer.errors import ShardUnavailable
from service.cluster.fanout import Shards
from service.cluster.shard import Reply


class Link:
    """A shard that answers with its name, or is unavailable for its next ``down`` reads."""

    def __init__(self, name: str, down: int = 0) -> None:
        self.name = name
        self.down = down
        self.reads: list[str] = []

    def _answer(self, how: str) -> Reply:
        self.reads.append(how)
        if self.down:
            self.down -= 1
            raise ShardUnavailable(f"{self.name} is unavailable")
        return {"ok": self.name}

    def primary(self, method: str, *args: Any) -> Reply:
        return self._answer("primary")

    def read(self, method: str, *args: Any) -> Reply:
        return self._answer("read")

    def read_now(self, method: str, *args: Any) -> Reply:
        return self._answer("read_now")


@pytest.fixture
def links() -> list[Link]:
    return [Link("a"), Link("b"), Link("c")]


def test_reads_take_turns_over_the_shards(links: list[Link]) -> None:
    shards = Shards(links, retry_s=0.5)
    try:
        answered = [shards.read_any(turn, "embed", wait=True) for turn in range(4)]
    finally:
        shards.close()
    assert answered == [{"ok": "a"}, {"ok": "b"}, {"ok": "c"}, {"ok": "a"}]


def test_an_unavailable_shard_is_passed_over_for_the_next(links: list[Link]) -> None:
    links[1].down = 1
    shards = Shards(links, retry_s=0.5)
    try:
        assert shards.read_any(1, "embed", wait=False) == {"ok": "c"}
    finally:
        shards.close()
    assert links[1].reads == ["read_now"]


def test_a_partial_read_that_no_shard_answers_is_unavailable(links: list[Link]) -> None:
    for link in links:
        link.down = 1
    shards = Shards(links, retry_s=0.5)
    try:
        with pytest.raises(ShardUnavailable):
            shards.read_any(0, "embed", wait=False)
    finally:
        shards.close()


def test_a_read_that_no_shard_answers_now_waits_for_its_first_shard(links: list[Link]) -> None:
    for link in links:
        link.down = 1
    links[2].down = 2  # still down when it is asked again
    shards = Shards(links, retry_s=5)
    try:
        assert shards.read_any(2, "embed", wait=True) == {"ok": "c"}
    finally:
        shards.close()
    assert links[2].reads == ["read", "read", "read"]
