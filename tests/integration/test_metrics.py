"""``GET /metrics``: Prometheus text from the running service."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import NewServer, Server


def samples(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def test_requests_are_counted_by_route_template_method_and_status(http: httpx.Client) -> None:
    http.put("/collections/shoes", json={"dim": 2})
    for _ in range(3):
        http.post("/collections/shoes/search", json={"vector": [1, 0], "k": 1})
    http.post("/collections/hats/search", json={"vector": [1, 0], "k": 1})  # 404
    http.get("/no/such/route")
    seen = samples(http)
    search = {"method": "POST", "route": "/collections/{name}/search"}
    assert seen["vecserve_requests_total", labels(**search, status="200")] == 3
    assert seen["vecserve_requests_total", labels(**search, status="404")] == 1
    unmatched = labels(method="GET", route="unmatched", status="404")
    assert seen["vecserve_requests_total", unmatched] == 1
    assert seen["vecserve_request_duration_seconds_count", labels(**search, status="200")] == 3
    assert not any("shoes" in dict(pairs).get("route", "") for _, pairs in seen)


def test_points_per_collection_are_read_at_scrape_time(http: httpx.Client) -> None:
    http.put("/collections/shoes", json={"dim": 2})
    http.put("/collections/empty", json={"dim": 2})
    points = [{"id": i, "vector": [i, 1]} for i in range(5)]
    http.put("/collections/shoes/points", json={"points": points})
    seen = samples(http)
    assert seen["vecserve_collection_points", labels(collection="shoes")] == 5
    assert seen["vecserve_collection_points", labels(collection="empty")] == 0
    assert seen["vecserve_collection_gpu_memory_bytes", labels(collection="shoes")] == 0  # CPU
    http.post("/collections/shoes/points/delete", json={"ids": [0, 1]})
    assert samples(http)["vecserve_collection_points", labels(collection="shoes")] == 3


def test_open_and_index_build_times_and_batch_sizes_are_exposed(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        for name in ("a", "b"):
            http.put(f"/collections/{name}", json={"dim": 2})
    server.stop()
    (server.data_dir / "collections" / "a" / "index.vsi").unlink()  # rebuilt on open
    server.start()  # opens both collections before it is ready
    with httpx.Client(base_url=server.url) as http:
        seen = samples(http)
    assert seen["vecserve_collection_open_seconds_count", frozenset()] == 2
    assert seen["vecserve_index_build_seconds_count", labels(family="flat")] == 1
    assert ("vecserve_search_batch_size_count", frozenset()) in seen


def test_refused_requests_are_counted_too(tmp_path: Path, new_server: NewServer) -> None:
    """401s are answered before routing; they count under their route's template."""
    key = "metrics-key-0123456789"
    server = new_server({"VECSERVE_API_KEYS": key}, data_dir=tmp_path / "data")
    with server, httpx.Client(base_url=server.url) as http:
        assert http.get("/collections/x").status_code == 401
        assert http.get("/metrics").status_code == 401
        http.headers["X-API-Key"] = key
        seen = samples(http)
    refused = labels(method="GET", route="/collections/{name}", status="401")
    assert seen["vecserve_requests_total", refused] == 1
