"""The HTTP API, driven over real HTTP against the service under uvicorn."""

from __future__ import annotations

import base64

import httpx
import numpy as np

from tests.support.server import Server

rng = np.random.default_rng(5)


def create(
    http: httpx.Client, name: str = "items", dim: int = 4, **extra: object
) -> httpx.Response:
    return http.put(f"/collections/{name}", json={"dim": dim, "metric": "l2", **extra})


def upsert(
    http: httpx.Client, points: list[dict[str, object]], name: str = "items"
) -> httpx.Response:
    return http.put(f"/collections/{name}/points", json={"points": points})


def test_collection_lifecycle(http: httpx.Client) -> None:
    assert create(http).status_code == 201
    assert create(http).status_code == 200  # identical: idempotent
    conflict = create(http, dim=5)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "CollectionExists"
    assert http.get("/collections").json() == {"collections": ["items"]}
    info = http.get("/collections/items").json()
    assert (info["dim"], info["metric"], info["count"]) == (4, "l2", 0)
    assert info["serving"]["family"] == "flat"
    assert http.delete("/collections/items").status_code == 204
    assert http.get("/collections/items").status_code == 404


def test_points_search_and_recommend(http: httpx.Client) -> None:
    create(http)
    vectors = rng.standard_normal((50, 4)).astype(np.float32)
    points: list[dict[str, object]] = [
        {"id": i, "vector": v.tolist(), "payload": {"even": i % 2 == 0}}
        for i, v in enumerate(vectors)
    ]
    # The compact form: base64 of little-endian float32.
    points.append(
        {"id": "b64", "vector_b64": base64.b64encode(vectors[0].astype("<f4").tobytes()).decode()}
    )
    assert upsert(http, points).json() == {"upserted": 51}

    hits = http.post(
        "/collections/items/search", json={"vector": vectors[3].tolist(), "k": 3}
    ).json()["hits"]
    assert hits[0]["id"] == 3
    assert hits[0]["score"] == 0.0
    assert hits[0]["payload"] == {"even": False}

    filtered = http.post(
        "/collections/items/search",
        json={
            "vector": vectors[3].tolist(),
            "k": 5,
            "filter": {"even": True},
            "with_payload": False,
        },
    ).json()["hits"]
    assert len(filtered) == 5
    assert all(h["id"] % 2 == 0 for h in filtered if isinstance(h["id"], int))
    assert "payload" not in filtered[0]

    by_id = http.post("/collections/items/search", json={"id": 0, "k": 1}).json()["hits"]
    assert by_id[0]["id"] == "b64"  # the same vector; point 0 itself is left out

    batch = http.post(
        "/collections/items/search/batch",
        json={
            "searches": [
                {"vector": vectors[i].tolist(), "k": 1, "with_vector": True} for i in (5, 6)
            ]
        },
    ).json()["results"]
    assert [r["hits"][0]["id"] for r in batch] == [5, 6]
    np.testing.assert_allclose(batch[0]["hits"][0]["vector"], vectors[5])

    rec = http.post(
        "/collections/items/recommend", json={"positive": [1], "negative": [2], "k": 4}
    ).json()
    assert len(rec["hits"]) == 4
    assert {1, 2}.isdisjoint(h["id"] for h in rec["hits"])

    got = http.post("/collections/items/points/get", json={"ids": [7, "missing", "b64"]}).json()
    assert [p["id"] for p in got["points"]] == [7, "b64"]

    assert http.post(
        "/collections/items/points/delete", json={"filter": {"even": True}}
    ).json() == {"deleted": 25}
    page = http.post("/collections/items/points/scroll", json={"limit": 100}).json()
    assert len(page["points"]) == 26
    assert page["next_cursor"] is None


def test_errors_are_json_with_a_stable_name_and_a_request_id(http: httpx.Client) -> None:
    missing = http.post("/collections/nope/search", json={"vector": [0, 0, 0, 1]})
    assert missing.status_code == 404
    body = missing.json()
    assert body["error"] == "CollectionNotFound"
    assert "nope" in body["message"]
    assert body["request_id"] == missing.headers["x-request-id"]

    create(http)
    wrong_dim = upsert(http, [{"id": 1, "vector": [1, 2, 3]}])
    assert (wrong_dim.status_code, wrong_dim.json()["error"]) == (422, "DimensionMismatch")
    malformed = http.put(
        "/collections/items/points",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert (malformed.status_code, malformed.json()["error"]) == (422, "InvalidRequest")
    both = upsert(http, [{"id": 1, "vector": [1, 2, 3, 4], "vector_b64": "AAAA"}])
    assert both.json()["error"] == "InvalidRequest"
    bad_filter = http.post(
        "/collections/items/search", json={"vector": [1, 0, 0, 0], "filter": {"a": {"$regex": "x"}}}
    )
    assert (bad_filter.status_code, bad_filter.json()["error"]) == (422, "InvalidFilter")
    big_k = http.post("/collections/items/search", json={"vector": [1, 0, 0, 0], "k": 10**6})
    assert (big_k.status_code, big_k.json()["error"]) == (422, "InvalidK")
    bad_name = http.put("/collections/..%2Fx", json={"dim": 4})
    assert bad_name.status_code in (404, 422)
    assert http.get("/collections/items").json()["count"] == 0  # nothing was written
    assert http.get("/no/such/route").json()["error"] == "NotFound"
    client_id = http.get("/healthz", headers={"x-request-id": "abc-123"})
    assert client_id.headers["x-request-id"] == "abc-123"


def test_acknowledged_points_survive_a_restart(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        create(http, index="hnsw")
        upsert(http, [{"id": i, "vector": rng.standard_normal(4).tolist()} for i in range(300)])
    server.stop()
    server.start()
    with httpx.Client(base_url=server.url) as http:
        info = http.get("/collections/items").json()
        assert info["count"] == 300
        assert info["serving"]["family"] == "hnsw"
        assert http.post("/collections/items/search", json={"id": 5, "k": 3}).status_code == 200


def test_get_one_point_by_its_path(http: httpx.Client) -> None:
    create(http)
    points = [
        {"id": 7, "vector": [1, 0, 0, 0], "payload": {"kind": "int"}},
        {"id": "7", "vector": [0, 1, 0, 0], "payload": {"kind": "str"}},
        {"id": "docs/a b.md", "vector": [0, 0, 1, 0]},
        {"id": -3, "vector": [0, 0, 0, 1]},
    ]
    upsert(http, points)
    # An integer as it prints is an integer id; id_type=str reads it as a string.
    assert http.get("/collections/items/points/7").json() == {"id": 7, "payload": {"kind": "int"}}
    as_str = http.get("/collections/items/points/7", params={"id_type": "str"}).json()
    assert as_str == {"id": "7", "payload": {"kind": "str"}}
    assert http.get("/collections/items/points/-3").json()["id"] == -3
    # Any other text is a string id, '/' and all, percent-encoded or not.
    for path in ("docs/a%20b.md", "docs%2Fa%20b.md"):
        with_vector = http.get(f"/collections/items/points/{path}", params={"with_vector": True})
        assert with_vector.json() == {"id": "docs/a b.md", "payload": {}, "vector": [0, 0, 1, 0]}

    missing = http.get("/collections/items/points/07")  # the string "07": no such point
    assert (missing.status_code, missing.json()["error"]) == (404, "PointNotFound")
    assert "'07'" in missing.json()["message"]
    too_big = http.get(f"/collections/items/points/{2**64}")
    assert (too_big.status_code, too_big.json()["error"]) == (422, "InvalidId")
    no_collection = http.get("/collections/nope/points/7")
    assert (no_collection.status_code, no_collection.json()["error"]) == (404, "CollectionNotFound")
    assert "get_point" in {
        operation["operationId"]
        for item in http.get("/openapi.json").json()["paths"].values()
        for operation in item.values()
    }


def test_get_routes_answer_head_with_headers_only(http: httpx.Client) -> None:
    create(http)
    upsert(http, [{"id": 1, "vector": [1, 0, 0, 0]}])
    for path in ("/healthz", "/readyz", "/collections", "/collections/items/points/1"):
        got, head = http.get(path), http.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["content-type"] == got.headers["content-type"]
    assert http.head("/collections/items/points/2").status_code == 404
    document = http.get("/openapi.json").json()
    assert not [path for path, item in document["paths"].items() if "head" in item]


def test_scroll_cursors_are_opaque_and_checked(http: httpx.Client) -> None:
    create(http)
    upsert(http, [{"id": i, "vector": [i, 1, 0, 0]} for i in range(5)])
    seen: list[int] = []
    cursors: list[str] = []
    body: dict[str, object] = {"limit": 2}
    while True:
        page = http.post("/collections/items/points/scroll", json=body).json()
        seen += [p["id"] for p in page["points"]]
        if page["next_cursor"] is None:
            break
        cursors.append(page["next_cursor"])
        body["cursor"] = page["next_cursor"]
    assert sorted(seen) == list(range(5))
    assert len(cursors) == 2

    # Anything but a cursor this server handed out, a bare id key ("3") included.
    newer_version = "v2" + cursors[0].removeprefix("v1")
    for cursor in ("garbage", "3", "v1.", "v1.not-base64!", newer_version):
        refused = http.post("/collections/items/points/scroll", json={"cursor": cursor})
        assert refused.status_code == 422, cursor
        assert refused.json()["error"] == "InvalidInput"
        assert "next_cursor" in refused.json()["message"]
