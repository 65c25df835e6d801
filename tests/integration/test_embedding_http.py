"""Collections with an embedder over HTTP: texts and images in, against the real server
under uvicorn with the real packaged models."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import NewServer

pytest.importorskip("sentence_transformers")
pytest.importorskip("skimage")

from tests.support import corpora
from tests.support.corpora import photo, png_b64

TEXTS = {**corpora.TEXTS, "soup": "Simmer the tomatoes with garlic for a rich soup."}


@pytest.fixture(scope="module")
def http(new_server: NewServer) -> Iterator[httpx.Client]:
    """One server for the module: each model loads once."""
    with new_server() as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_a_text_collection_takes_texts_everywhere(http: httpx.Client) -> None:
    created = http.put("/collections/docs", json={"embedder": "minilm", "store_source": True})
    assert created.status_code == 201
    info = created.json()
    assert (info["dim"], info["embedder"], info["store_source"]) == (384, "minilm", True)

    points = [
        {"id": key, "text": text, "payload": {"n": i}}
        for i, (key, text) in enumerate(TEXTS.items())
    ]
    assert http.put("/collections/docs/points", json={"points": points}).json() == {"upserted": 5}
    quiet = {"points": [{"id": "quiet", "text": "Nothing to see here."}], "store_source": False}
    assert http.put("/collections/docs/points", json=quiet).status_code == 200

    hits = http.post("/collections/docs/search", json={"text": "a kitten naps", "k": 2}).json()
    assert hits["hits"][0]["id"] == "cat"
    assert hits["hits"][0]["payload"] == {"n": 0, "_source": {"text": TEXTS["cat"]}}
    got = http.post("/collections/docs/points/get", json={"ids": ["quiet"]}).json()
    assert got["points"][0]["payload"] == {}

    vector = http.post("/collections/docs/points/get", json={"ids": ["soup"], "with_vector": True})
    batch = http.post(
        "/collections/docs/search/batch",
        json={
            "searches": [
                {"text": "lava and ash", "k": 1},
                {"vector": vector.json()["points"][0]["vector"], "k": 1, "with_payload": False},
                {"text": "equities dropped", "k": 3, "filter": {"n": {"$gte": 1}}},
                {"id": "guitar", "k": 1},
            ]
        },
    ).json()["results"]
    assert [r["hits"][0]["id"] for r in batch] == [
        "volcano",
        "soup",
        "stocks",
        batch[3]["hits"][0]["id"],
    ]
    assert "payload" not in batch[1]["hits"][0]
    assert len(batch[2]["hits"]) == 3
    assert batch[3]["hits"][0]["id"] != "guitar"

    recommended = http.post(
        "/collections/docs/recommend",
        json={
            "positive": [{"text": "music lessons"}, "cat"],
            "negative": [{"text": "cooking"}],
            "k": 2,
        },
    ).json()["hits"]
    assert recommended[0]["id"] == "guitar"
    assert "cat" not in [h["id"] for h in recommended]


def test_an_image_collection_takes_base64_images(http: httpx.Client) -> None:
    assert (
        http.put("/collections/pictures", json={"embedder": "efficientnet-lite0"}).status_code
        == 201
    )
    encoded = {name: png_b64(photo(name)) for name in ("chelsea", "coffee", "rocket", "astronaut")}
    points = [{"id": name, "image": data} for name, data in encoded.items()]
    points[1]["image"] = "data:image/png;base64," + str(points[1]["image"])
    upsert = http.put("/collections/pictures/points", json={"points": points, "store_source": True})
    assert upsert.json() == {"upserted": 4}

    crop = photo("coffee").crop((30, 30, 500, 380))
    hits = http.post("/collections/pictures/search", json={"image": png_b64(crop), "k": 1}).json()
    assert hits["hits"][0]["id"] == "coffee"
    sha = hashlib.sha256(base64.b64decode(encoded["coffee"])).hexdigest()
    assert hits["hits"][0]["payload"] == {"_source": {"image_sha256": sha}}

    recommended = http.post(
        "/collections/pictures/recommend",
        json={"positive": [{"image": png_b64(photo("chelsea").rotate(10))}], "k": 1},
    ).json()["hits"]
    assert recommended[0]["id"] == "chelsea"

    truncated = base64.b64encode(base64.b64decode(encoded["rocket"])[:3000]).decode()
    bad = http.put(
        "/collections/pictures/points",
        json={
            "points": [{"id": "ok", "image": encoded["rocket"]}, {"id": "bad", "image": truncated}]
        },
    )
    assert error(bad) == (422, "InvalidEmbedderInput")
    assert "image 1" in bad.json()["message"]
    not_base64 = http.post("/collections/pictures/search", json={"image": "not base64!"})
    assert error(not_base64) == (422, "InvalidEmbedderInput")
    a_path = http.post("/collections/pictures/search", json={"image": "/etc/passwd"})
    assert error(a_path) == (422, "InvalidEmbedderInput")  # never read as a file
    assert http.get("/collections/pictures").json()["count"] == 4


def test_what_a_collection_cannot_embed_is_a_typed_error(http: httpx.Client) -> None:
    unknown = http.put("/collections/x", json={"embedder": "all-mpnet-base-v2"})
    assert error(unknown) == (422, "UnknownEmbedder")
    assert "minilm" in unknown.json()["message"]
    assert error(http.put("/collections/x", json={"embedder": "minilm", "dim": 768})) == (
        422,
        "DimensionMismatch",
    )
    assert error(http.put("/collections/x", json={})) == (422, "InvalidInput")

    http.put("/collections/plain", json={"dim": 3})
    text_search = http.post("/collections/plain/search", json={"text": "hello"})
    assert error(text_search) == (422, "InvalidEmbedderInput")
    assert "no embedder" in text_search.json()["message"]
    text_upsert = http.put("/collections/plain/points", json={"points": [{"id": 1, "text": "hi"}]})
    assert error(text_upsert) == (422, "InvalidEmbedderInput")

    http.put("/collections/words", json={"embedder": "minilm"})
    image = http.post("/collections/words/search", json={"image": png_b64(photo("camera"))})
    assert error(image) == (422, "InvalidEmbedderInput")
    two = http.post("/collections/words/search", json={"text": "a", "vector": [0.0] * 384})
    assert error(two) == (422, "InvalidRequest")
    mixed = http.put(
        "/collections/words/points",
        json={"points": [{"id": 1, "text": "a"}, {"id": 2, "vector": [0.0] * 384}]},
    )
    assert error(mixed) == (422, "InvalidInput")
    assert http.get("/collections/words").json()["count"] == 0


def test_the_allowlist_comes_from_the_settings(tmp_path: Path, new_server: NewServer) -> None:
    allowlist = '[{"name": "sentences", "kind": "sentence-transformers", "device": "cpu"}]'
    server = new_server({"VECSERVE_EMBEDDERS": allowlist}, data_dir=tmp_path / "data")
    with server, httpx.Client(base_url=server.url, timeout=120) as client:
        refused = client.put("/collections/a", json={"embedder": "minilm"})
        assert error(refused) == (422, "UnknownEmbedder")
        made = client.put("/collections/a", json={"embedder": "sentences"})
        assert (made.status_code, made.json()["dim"]) == (201, 384)
