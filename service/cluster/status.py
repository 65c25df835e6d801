"""A sharded collection's status, summed up from its shards' descriptions (each shard's
``describe``): the index serving it, and the progress of its full-text and payload
indexes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.cluster.fanout import ShardLink


def index_info(links: Sequence[ShardLink], described: list[dict[str, Any]]) -> dict[str, Any]:
    """Shard 0's index summary, with every shard's size, write sequence and replicas."""
    info = dict(described[0]["serving"])
    info["size"] = sum(d["serving"]["size"] for d in described)
    info["shards"] = [
        {
            "shard": link.name,
            "points": d["count"],
            "seq": d["seq"],
            "family": d["serving"]["family"],
            "device": d["serving"]["device"],
            "replicas": d["replicas"],
        }
        for link, d in zip(links, described, strict=True)
    ]
    return info


def payload_indexes(described: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The indexed payload fields, with every shard's progress added up."""
    fields: dict[str, dict[str, Any]] = {}
    for shard in described:
        for path, status in shard.get("payload_indexes", {}).items():
            field = fields.setdefault(path, {**status, "indexed": 0, "total": 0})
            field["indexed"] += status["indexed"]
            field["total"] += status["total"]
            if status["state"] != "ready":
                field["state"] = status["state"]
    return fields


def full_text(described: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The full-text declaration in shards' descriptions, their progress added up."""
    declared: list[dict[str, Any]] = [d["full_text"] for d in described if d["full_text"]]
    if not declared:
        return None
    total = dict(declared[0])
    total["indexed"] = sum(d["indexed"] for d in declared)
    total["total"] = sum(d["total"] for d in declared)
    ready = all(d["state"] == "ready" for d in declared)
    total["state"] = "ready" if ready else "indexing"
    return total
