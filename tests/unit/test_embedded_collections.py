"""Collections with an embedder: texts and images in, the collection's model embeds them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer import DimensionMismatch, Engine, InvalidInput
from indexer.embedders import EmbedderConfig, EmbedderRegistry, default_embedder_configs
from indexer.errors import EmbedderUnavailable, InvalidEmbedderInput, UnknownEmbedder

pytest.importorskip("sentence_transformers")
pytest.importorskip("skimage")


from tests.support.corpora import TEXTS, encoded, photo


@pytest.fixture(scope="module")
def registry() -> EmbedderRegistry:
    return EmbedderRegistry(default_embedder_configs())


@pytest.fixture
def engine(tmp_path: Path, registry: EmbedderRegistry) -> Iterator[Engine]:
    with Engine(tmp_path / "data", background=False, embedders=registry) as e:
        yield e


def test_vectors_only_use_never_imports_a_model_library(tmp_path: Path) -> None:
    code = f"""
import sys
from indexer import Engine
from service.app import create_app
from service.settings import Settings
create_app(Settings(data_dir={str(tmp_path)!r}))
with Engine({str(tmp_path)!r}, background=False) as engine:
    c = engine.create_collection("v", dim=3)
    c.upsert([1, 2], [[1, 0, 0], [0, 1, 0]])
    assert c.search([1, 0, 0], k=1)[0][0].id == 1
heavy = [m for m in ("torch", "PIL", "transformers", "sentence_transformers") if m in sys.modules]
assert not heavy, heavy
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_collection_takes_the_dimension_of_its_embedder(engine: Engine) -> None:
    docs = engine.create_collection("docs", embedder="minilm")
    assert (docs.dim, docs.config.embedder, docs.config.store_source) == (384, "minilm", False)
    same = engine.create_collection("docs", dim=384, embedder="minilm", exist_ok=True)
    assert same is docs
    with pytest.raises(DimensionMismatch, match="dimension 384, not 512"):
        engine.create_collection("other", dim=512, embedder="minilm")


def test_an_embedder_outside_the_allowlist_is_refused(engine: Engine) -> None:
    with pytest.raises(
        UnknownEmbedder, match=r"'all-mpnet-base-v2'.*allowed: 'efficientnet-lite0'"
    ):
        engine.create_collection("docs", embedder="all-mpnet-base-v2")
    assert UnknownEmbedder("x").status_code == 422
    with pytest.raises(InvalidInput, match="dim is required"):
        engine.create_collection("docs")
    assert engine.list_collections() == []


def test_texts_are_embedded_on_upsert_and_search(
    engine: Engine, registry: EmbedderRegistry
) -> None:
    docs = engine.create_collection("docs", embedder="minilm")
    docs.upsert(list(TEXTS), texts=list(TEXTS.values()), payloads=[{"n": 1}, None, None, None])
    hits = docs.search(texts=["a kitten naps in the sun", "an eruption of lava"], k=1)
    assert [h[0].id for h in hits] == ["cat", "volcano"]
    assert hits[0][0].payload == {"n": 1}  # no source kept unless asked
    stored = docs.get(["guitar"])[0].vector
    expected = registry.get("minilm").embed_texts([TEXTS["guitar"]])[0]
    np.testing.assert_allclose(stored, expected, atol=1e-6)  # type: ignore[arg-type]
    np.testing.assert_allclose(docs.embed(texts=[TEXTS["guitar"]])[0], expected, atol=1e-6)
    by_vector = docs.search(expected, k=1)[0][0]
    assert by_vector.id == "guitar"
    assert by_vector.score == pytest.approx(1.0, abs=1e-5)


def test_the_source_text_is_kept_only_when_asked(engine: Engine) -> None:
    docs = engine.create_collection("docs", embedder="minilm", store_source=True)
    docs.upsert(["cat"], texts=[TEXTS["cat"]], payloads=[{"n": 1}])
    docs.upsert(["guitar"], texts=[TEXTS["guitar"]], store_source=False)
    points = {p.id: p.payload for p in docs.get(["cat", "guitar"], with_vectors=False)}
    assert points == {"cat": {"n": 1, "_source": {"text": TEXTS["cat"]}}, "guitar": {}}
    found = docs.search(texts=["kitten"], k=1, filter={"_source.text": {"$exists": True}})
    assert found[0][0].id == "cat"


def test_images_are_embedded_and_keep_their_hash_and_path(engine: Engine, tmp_path: Path) -> None:
    pictures = engine.create_collection("pictures", embedder="efficientnet-lite0")
    assert pictures.dim == 1280
    coffee = tmp_path / "coffee.png"
    coffee.write_bytes(encoded(photo("coffee")))
    chelsea = encoded(photo("chelsea"))
    pictures.upsert(
        ["chelsea", "coffee", "rocket"],
        images=[chelsea, coffee, encoded(photo("rocket"))],
        store_source=True,
    )
    sources = {p.id: p.payload["_source"] for p in pictures.get(["chelsea", "coffee"])}
    assert sources["chelsea"] == {"image_sha256": hashlib.sha256(chelsea).hexdigest()}
    assert sources["coffee"] == {
        "image_sha256": hashlib.sha256(coffee.read_bytes()).hexdigest(),
        "image_path": str(coffee),
    }
    cropped = photo("chelsea").crop((20, 20, 400, 280))
    assert pictures.search(images=[cropped], k=1)[0][0].id == "chelsea"


def test_inputs_the_collection_cannot_embed_are_input_errors(engine: Engine) -> None:
    vectors_only = engine.create_collection("plain", dim=4)
    with pytest.raises(InvalidEmbedderInput, match="has no embedder: send vectors"):
        vectors_only.search(texts=["hello"])
    with pytest.raises(InvalidEmbedderInput, match="has no embedder"):
        vectors_only.upsert([1], texts=["hello"])
    docs = engine.create_collection("docs", embedder="minilm")
    with pytest.raises(InvalidEmbedderInput, match="cannot embed images"):
        docs.upsert([1], images=[encoded(photo("camera"))])
    with pytest.raises(InvalidInput, match="exactly one of vectors, texts or images"):
        docs.search(np.zeros(384), texts=["both"])
    with pytest.raises(InvalidInput, match="got 1 texts for 2 ids"):
        docs.upsert([1, 2], texts=["only one"])
    assert docs.count() == 0


def test_a_collection_whose_embedder_left_the_allowlist_still_serves_vectors(
    tmp_path: Path, registry: EmbedderRegistry
) -> None:
    with Engine(tmp_path / "data", background=False, embedders=registry) as engine:
        docs = engine.create_collection("docs", embedder="minilm")
        docs.upsert(["cat"], texts=[TEXTS["cat"]])
        vector = docs.get(["cat"])[0].vector
    other = EmbedderRegistry([EmbedderConfig(name="images", kind="efficientnet-lite0")])
    with Engine(tmp_path / "data", background=False, embedders=other) as engine:
        docs = engine.get_collection("docs")
        assert docs.config.embedder == "minilm"
        assert docs.search(vector, k=1)[0][0].id == "cat"
        with pytest.raises(EmbedderUnavailable, match="allowlist does not have"):
            docs.search(texts=["kitten"])
