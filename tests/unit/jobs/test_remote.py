"""Sending a job's points to a service (indexer/jobs/remote.py), against a stand-in for
its upsert route (the real service is driven in tests/integration/test_index_url.py):
retries, Retry-After, and requests split to the service's limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from indexer.errors import JobFailed
from indexer.jobs.remote import Retries, retry_after


def test_retries_wait_longer_each_time_and_as_long_as_the_service_asks() -> None:
    retries = Retries(max_retries=3, backoff=1.0, max_backoff=3.0, max_retry_after=10.0)
    first, second, third = (retries.delay(n) or -1.0 for n in (1, 2, 3))
    assert 0.5 <= first <= 1.0 <= second <= 2.0
    assert 1.5 <= third <= 3.0
    assert retries.delay(4) is None
    assert retries.delay(1, retry_after=7.0) == 7.0
    assert retries.delay(1, retry_after=600.0) == 10.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)],
)
def test_retry_after_is_read_as_seconds_or_as_a_date(header: str, seconds: float | None) -> None:
    response = httpx.Response(429, headers={"retry-after": header})
    assert retry_after(response) == seconds
    assert retry_after(httpx.Response(429)) is None


class FakeService:
    """A stand-in for the service's upsert route, for the client side of ``--url``: at
    most ``max_points`` points a request, no payload over 100 bytes, and a script of
    failures to answer first. (The real service is driven in test_index_url.py.)"""

    def __init__(self, max_points: int, script: list[httpx.Response] | None = None) -> None:
        self.max_points = max_points
        self.script = list(script or [])
        self.sizes: list[int] = []  # points in each request that reached the route
        self.stored: dict[Any, Any] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.script:
            return self.script.pop(0)
        points = json.loads(request.content)["points"]
        self.sizes.append(len(points))
        too_large = {"error": "RequestTooLarge", "message": "too large", "request_id": "r"}
        if len(points) > self.max_points:
            return httpx.Response(413, json=too_large)
        if any(len(json.dumps(p["payload"])) > 100 for p in points):
            return httpx.Response(413, json=too_large)
        self.stored.update((p["id"], p["payload"]) for p in points)
        return httpx.Response(200, json={"upserted": len(points)})


def remote(service: FakeService, tmp_path: Path, max_retries: int = 3) -> Any:
    from indexer.jobs.remote import RemoteTarget

    retries = Retries(max_retries=max_retries, backoff=0.0, max_retry_after=0.0)
    return RemoteTarget(
        "http://127.0.0.1:9",
        "docs",
        "minilm",
        tmp_path,
        retries=retries,
        transport=httpx.MockTransport(service),
    )


def test_a_remote_upsert_is_split_to_the_services_limit_and_keeps_that_size(
    tmp_path: Path,
) -> None:
    service = FakeService(max_points=3)
    target = remote(service, tmp_path)
    vectors = np.ones((8, 4), dtype=np.float32)
    payloads: list[dict[str, Any]] = [{"n": i} for i in range(8)]
    payloads[5] = {"blob": "x" * 200}  # over the payload limit even alone
    assert target.upsert(list(range(8)), vectors, payloads) == [
        (5, "refused by the service: too large")
    ]
    assert sorted(service.stored) == [0, 1, 2, 3, 4, 6, 7]
    assert service.sizes[:3] == [8, 4, 2]  # halved until a request went through
    service.sizes.clear()
    target.upsert(list(range(10, 14)), vectors[:4], [{}] * 4)
    assert service.sizes == [2, 2]  # the next batch keeps to the size that went through


def test_a_remote_upsert_retries_what_may_pass_and_fails_on_the_rest(tmp_path: Path) -> None:
    vectors = np.ones((2, 4), dtype=np.float32)
    busy = httpx.Response(503, json={"error": "Unavailable", "message": "busy"})
    limited = httpx.Response(429, headers={"retry-after": "0"}, json={"error": "RateLimited"})
    service = FakeService(max_points=10, script=[busy, limited, busy])
    assert remote(service, tmp_path).upsert([1, 2], vectors, [{}, {}]) == []
    assert sorted(service.stored) == [1, 2]

    service = FakeService(max_points=10, script=[busy] * 4)
    with pytest.raises(JobFailed, match=r"Unavailable \(503\): busy"):
        remote(service, tmp_path).upsert([1, 2], vectors, [{}, {}])  # 1 try + 3 retries

    no_model = httpx.Response(503, json={"error": "EmbedderUnavailable", "message": "gone"})
    service = FakeService(max_points=10, script=[no_model, busy])
    with pytest.raises(JobFailed, match="EmbedderUnavailable"):
        remote(service, tmp_path).upsert([1], vectors[:1], [{}])  # not retried
    assert service.script == [busy]

    denied = httpx.Response(401, json={"error": "Unauthorized", "message": "no key"})
    with pytest.raises(JobFailed, match="--api-key"):
        remote(FakeService(10, [denied]), tmp_path).upsert([1], vectors[:1], [{}])

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(JobFailed, match=r"cannot reach .* gave up after 3 tries"):
        remote(unreachable, tmp_path, max_retries=2).upsert([1], vectors[:1], [{}])  # type: ignore[arg-type]
