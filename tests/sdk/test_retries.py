"""Retries, a unit test of the client's own logic: requests answered by MockTransport."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from vecserve_client import (
    Client,
    ConnectError,
    EmbedderUnavailable,
    RateLimited,
    Retries,
    ServiceUnavailable,
    TimeoutException,
)

FAST = Retries(max_retries=3, backoff=0.001, max_backoff=0.01)
COLLECTIONS = {"collections": ["a"]}


class Script:
    """Answers requests in turn from a list of responses or exceptions (the last one
    repeats), and records when each request came."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())
        answer = self.answers[min(len(self.times), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def attempts(self) -> int:
        return len(self.times)


def unavailable(**headers: str) -> httpx.Response:
    body = {"error": "ServiceUnavailable", "message": "busy", "request_id": "r1"}
    return httpx.Response(503, json=body, headers=headers)


def rate_limited(retry_after: str) -> httpx.Response:
    body = {"error": "RateLimited", "message": "slow down", "request_id": "r2"}
    return httpx.Response(429, json=body, headers={"retry-after": retry_after})


def test_a_503_then_a_200_is_retried(mock_client: Callable[..., Client]) -> None:
    script = Script(unavailable(), httpx.Response(200, json=COLLECTIONS))
    client = mock_client(script, retries=FAST)
    assert client.list_collections() == ["a"]
    assert script.attempts == 2


def test_a_429_waits_for_its_retry_after(mock_client: Callable[..., Client]) -> None:
    script = Script(rate_limited("0.3"), httpx.Response(200, json=COLLECTIONS))
    client = mock_client(script, retries=FAST)
    assert client.list_collections() == ["a"]
    assert script.attempts == 2
    assert script.times[1] - script.times[0] >= 0.3  # not the 1 ms backoff


def test_a_retry_after_over_the_maximum_raises_rate_limited_at_once(
    mock_client: Callable[..., Client],
) -> None:
    script = Script(rate_limited("120"))
    client = mock_client(script, retries=Retries(max_retry_after=30))
    with pytest.raises(RateLimited) as caught:
        client.list_collections()
    assert caught.value.retry_after == 120.0
    assert (caught.value.status_code, caught.value.request_id) == (429, "r2")
    assert script.attempts == 1


def test_a_retry_after_over_the_maximum_is_waited_capped_when_asked() -> None:
    patient = Retries(max_retry_after=30, cap_retry_after=True)
    assert patient.delay(1, retry_after=120.0) == 30.0
    assert patient.delay(1, retry_after=5.0) == 5.0
    assert patient.delay(patient.max_retries + 1, retry_after=5.0) is None


def test_a_retry_after_given_as_a_date_is_waited(mock_client: Callable[..., Client]) -> None:
    script = Script(
        rate_limited("Wed, 21 Oct 2015 07:28:00 GMT"), httpx.Response(200, json=COLLECTIONS)
    )
    slow_backoff = Retries(max_retries=1, backoff=4.0, jitter=0.0)
    assert mock_client(script, retries=slow_backoff).list_collections() == ["a"]
    assert script.attempts == 2
    assert script.times[1] - script.times[0] < 2.0  # the date is past: at once, not in 4 s


def test_an_embedder_unavailable_503_is_not_retried(mock_client: Callable[..., Client]) -> None:
    body = {"error": "EmbedderUnavailable", "message": "no model", "request_id": "r3"}
    script = Script(httpx.Response(503, json=body), httpx.Response(200, json=COLLECTIONS))
    with pytest.raises(EmbedderUnavailable):  # the server's configuration: no retry mends it
        mock_client(script, retries=FAST).list_collections()
    assert script.attempts == 1


def test_it_gives_up_after_max_retries(mock_client: Callable[..., Client]) -> None:
    script = Script(unavailable())
    client = mock_client(script, retries=FAST)
    with pytest.raises(ServiceUnavailable):
        client.get_collection("a")
    assert script.attempts == 1 + FAST.max_retries


def test_retries_can_be_turned_off(mock_client: Callable[..., Client]) -> None:
    script = Script(unavailable())
    client = mock_client(script, retries=Retries(max_retries=0))
    with pytest.raises(ServiceUnavailable):
        client.list_collections()
    assert script.attempts == 1


NOT_IDEMPOTENT: dict[str, Callable[[Client], Any]] = {
    "delete_collection": lambda c: c.delete_collection("a"),
    "delete_by_filter": lambda c: c.delete("a", filter={"x": 1}),
    "create_snapshot": lambda c: c.create_snapshot("a"),
    "delete_snapshot": lambda c: c.delete_snapshot("a", "s"),
}


@pytest.mark.parametrize("call", NOT_IDEMPOTENT.values(), ids=NOT_IDEMPOTENT.keys())
def test_requests_that_are_not_idempotent_are_not_retried(
    mock_client: Callable[..., Client], call: Callable[[Client], Any]
) -> None:
    script = Script(unavailable())
    with pytest.raises(ServiceUnavailable):
        call(mock_client(script, retries=FAST))
    assert script.attempts == 1


IDEMPOTENT: dict[str, tuple[Callable[[Client], Any], dict[str, Any]]] = {
    "create_collection": (
        lambda c: c.create_collection("a", 2),
        {"name": "a", "dim": 2, "metric": "cosine", "index": {}, "count": 0, "serving": {}},
    ),
    "upsert": (lambda c: c.upsert("a", [1], [[0.0, 1.0]]), {"upserted": 1}),
    "delete_by_ids": (lambda c: c.delete("a", [1]), {"deleted": 1}),
    "search": (lambda c: c.search("a", [0.0, 1.0]), {"hits": []}),
    "recommend": (lambda c: c.recommend("a", [1]), {"hits": []}),
}


@pytest.mark.parametrize(("call", "answer"), IDEMPOTENT.values(), ids=IDEMPOTENT.keys())
def test_idempotent_writes_and_reads_are_retried(
    mock_client: Callable[..., Client], call: Callable[[Client], Any], answer: dict[str, Any]
) -> None:
    script = Script(unavailable(), httpx.Response(200, json=answer))
    call(mock_client(script, retries=FAST))
    assert script.attempts == 2


def test_connection_errors_are_retried_for_reads(mock_client: Callable[..., Client]) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=COLLECTIONS))
    assert mock_client(script, retries=FAST).list_collections() == ["a"]
    assert script.attempts == 2


def test_a_connection_error_raises_connect_error_once_retries_are_spent(
    mock_client: Callable[..., Client],
) -> None:
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(ConnectError) as caught:
        mock_client(script, retries=FAST).create_snapshot("a")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert script.attempts == 1  # not idempotent: never retried


def test_a_read_timeout_is_not_retried(mock_client: Callable[..., Client]) -> None:
    script = Script(httpx.ReadTimeout("slow"))
    with pytest.raises(TimeoutException):
        mock_client(script, retries=FAST).search("a", [1.0])
    assert script.attempts == 1  # the server may still be working on it


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens_it() -> None:
    retries = Retries(max_retries=6, backoff=0.5, max_backoff=3.0, jitter=0.0)
    assert [retries.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert retries.delay(7) is None
    jittered = Retries(backoff=1.0, jitter=0.5)
    delays = [jittered.delay(1) for _ in range(200)]
    assert all(d is not None and 0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100
    assert jittered.delay(1, retry_after=4.0) == 4.0  # the server's word, not jittered
