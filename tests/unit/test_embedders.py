"""The embedder layer: packaged models, image decoding, CLIP folders and the allowlist."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("transformers")
pytest.importorskip("skimage")

from PIL import Image  # noqa: E402  (after the skips: PIL comes with the embed extra)

from indexer.embedders import (  # noqa: E402
    Embedder,
    EmbedderConfig,
    EmbedderRegistry,
    ImageInput,
    SentenceTransformerEmbedder,
    default_embedder_configs,
    load_image,
)
from indexer.errors import EmbedderNotFound, EmbedderUnavailable, InvalidEmbedderInput  # noqa: E402
from tests.support.corpora import encoded, photo  # noqa: E402

CLIP_DIM = 32


def _cos(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _assert_unit_rows(vectors: npt.NDArray[np.float32], n: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level BPE: every byte gets a printable stand-in character.
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = (b for b in range(256) if b not in printable)
    mapping = {b: chr(b) for b in printable}
    mapping.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return mapping


def _write_tiny_clip(folder: Path) -> None:
    """A randomly initialised CLIP with a tiny but valid byte-level BPE vocabulary."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "image_size": 64,
            "patch_size": 16,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=CLIP_DIM,
    )
    CLIPModel(config).save_pretrained(folder)
    # All 256 bytes, alone and word-final, a few merges, and the special tokens at the ids
    # the real CLIP vocabulary gives them (which CLIPTextConfig's defaults expect).
    characters = list(_bytes_to_unicode().values())
    merges = ["c a", "ca t</w>", "d o", "do g</w>"]
    tokens = characters + [c + "</w>" for c in characters] + [m.replace(" ", "") for m in merges]
    vocab = {token: i for i, token in enumerate(tokens)}
    vocab |= {"<|startoftext|>": 49406, "<|endoftext|>": 49407}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    CLIPTokenizer.from_pretrained(folder, model_max_length=77).save_pretrained(folder)
    CLIPImageProcessorPil(
        size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
    ).save_pretrained(folder)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-clip")
    _write_tiny_clip(folder)
    return folder


@pytest.fixture(scope="module")
def registry(clip_folder: Path) -> EmbedderRegistry:
    clip = EmbedderConfig(name="tiny-clip", kind="clip", source=str(clip_folder), batch_size=2)
    return EmbedderRegistry([*default_embedder_configs(), clip])


@pytest.fixture(scope="module")
def minilm(registry: EmbedderRegistry) -> Embedder:
    return registry.get("minilm")


@pytest.fixture(scope="module")
def effnet(registry: EmbedderRegistry) -> Embedder:
    return registry.get("efficientnet-lite0")


@pytest.fixture(scope="module")
def clip(registry: EmbedderRegistry) -> Embedder:
    return registry.get("tiny-clip")


@pytest.fixture
def chelsea_png(tmp_path: Path) -> Path:
    path = tmp_path / "chelsea.png"
    photo("chelsea").save(path)
    return path


# --- start-up ---------------------------------------------------------------------------


def test_importing_embedders_loads_no_model_library() -> None:
    code = (
        "import indexer.embedders, sys; "
        "heavy = [m for m in ('torch', 'PIL', 'transformers', 'sentence_transformers') "
        "if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- text -------------------------------------------------------------------------------


def test_default_text_model_matches_reference_similarity(minilm: Embedder) -> None:
    vectors = minilm.embed_texts(["A man is eating food.", "A man is eating a piece of bread."])
    _assert_unit_rows(vectors, 2, 384)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.7553, abs=1e-3)


def test_text_vectors_do_not_depend_on_batching(minilm: Embedder) -> None:
    texts = ["short", "a somewhat longer sentence about vector search", "", "ünïcödé ✓"]
    together = minilm.embed_texts(texts)
    alone = np.concatenate([minilm.embed_texts([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_text_vectors_equal_those_of_sentence_transformers_encode(minilm: Embedder) -> None:
    # A batch that fits one forward pass calls the model directly, not encode: the
    # vectors must not change (a collection's stored vectors came from either path).
    assert isinstance(minilm, SentenceTransformerEmbedder)
    texts = ["short", "a somewhat longer sentence about vector search", "", "ünïcödé ✓"]
    expected = minilm._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    for batch in ([texts[0]], texts):
        np.testing.assert_allclose(
            minilm.embed_texts(batch), expected[: len(batch)], rtol=0, atol=1e-6
        )


def test_long_texts_are_truncated_to_the_model_context(minilm: Embedder) -> None:
    long = "the quick brown fox jumps over the lazy dog " * 200
    vectors = minilm.embed_texts([long, long + "but the ending is entirely different"])
    _assert_unit_rows(vectors, 2, 384)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_empty_input_gives_an_empty_matrix(minilm: Embedder, effnet: Embedder) -> None:
    assert minilm.embed_texts([]).shape == (0, 384)
    assert effnet.embed_images([]).shape == (0, 1280)


def test_a_bare_string_is_not_a_list_of_texts(minilm: Embedder) -> None:
    with pytest.raises(InvalidEmbedderInput, match="list of strings"):
        minilm.embed_texts("hello")
    with pytest.raises(InvalidEmbedderInput, match="text 1"):
        minilm.embed_texts(["fine", 42])  # type: ignore[list-item]


def test_embedders_refuse_modalities_they_lack(minilm: Embedder, effnet: Embedder) -> None:
    assert minilm.modalities == frozenset({"text"})
    assert effnet.modalities == frozenset({"image"})
    with pytest.raises(InvalidEmbedderInput, match="cannot embed images"):
        minilm.embed_images([photo("chelsea")])
    with pytest.raises(InvalidEmbedderInput, match="cannot embed texts"):
        effnet.embed_texts(["a cat"])


# --- images -----------------------------------------------------------------------------


def test_two_crops_of_a_photo_are_nearer_each_other_than_other_photos(effnet: Embedder) -> None:
    names = ["chelsea", "coffee", "astronaut", "rocket", "camera"]
    crops = []
    for name in names:
        image = photo(name)
        width, height = image.size
        crops.append(image.crop((0, 0, int(width * 0.8), int(height * 0.8))))
        crops.append(image.crop((int(width * 0.2), int(height * 0.2), width, height)))
    vectors = effnet.embed_images(crops)
    _assert_unit_rows(vectors, len(crops), 1280)
    similarity = vectors @ vectors.T
    for i, name in enumerate(names):
        same = similarity[2 * i, 2 * i + 1]
        others = np.delete(similarity[2 * i : 2 * i + 2], [2 * i, 2 * i + 1], axis=1)
        assert same > others.max(), name


def test_every_input_form_of_the_same_image_embeds_the_same(
    effnet: Embedder, chelsea_png: Path
) -> None:
    encoded = chelsea_png.read_bytes()
    plain = base64.b64encode(encoded).decode("ascii")
    forms: list[ImageInput] = [
        Image.open(chelsea_png),
        chelsea_png,
        str(chelsea_png),
        encoded,
        bytearray(encoded),
        plain,
        plain.rstrip("="),
        "data:image/png;base64," + plain,
    ]
    vectors = effnet.embed_images(forms)
    _assert_unit_rows(vectors, len(forms), 1280)
    np.testing.assert_allclose(vectors, np.broadcast_to(vectors[0], vectors.shape), atol=1e-5)


def test_exif_orientation_is_applied() -> None:
    upright = photo("chelsea")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: stored rotated, "rotate 90 degrees clockwise to view"
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    loaded = load_image(encoded(stored, "PNG", exif=exif))
    assert loaded.size == upright.size
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(upright))


def test_grayscale_palette_and_sixteen_bit_images_become_rgb() -> None:
    gray = photo("camera").convert("L")
    rgb = np.asarray(load_image(encoded(gray)))
    assert rgb.shape == (*gray.size[::-1], 3)
    np.testing.assert_array_equal(rgb[..., 0], np.asarray(gray))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])

    palette = photo("chelsea").convert("P")
    np.testing.assert_array_equal(
        np.asarray(load_image(encoded(palette))), np.asarray(palette.convert("RGB"))
    )

    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert np.asarray(load_image(encoded(sixteen))).min() == 255


def test_transparency_is_composited_on_white() -> None:
    clear = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    assert np.asarray(load_image(encoded(clear))).min() == 255
    half = Image.new("LA", (16, 16), (0, 128))
    assert np.asarray(load_image(encoded(half))).max() == 127
    opaque_red = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    np.testing.assert_array_equal(np.asarray(load_image(opaque_red))[0, 0], [255, 0, 0])


def test_cmyk_jpeg_embeds_like_its_rgb_original(effnet: Embedder) -> None:
    original = photo("chelsea")
    cmyk = encoded(original.convert("CMYK"), "JPEG", quality=95)
    assert load_image(cmyk).mode == "RGB"
    vectors = effnet.embed_images([original, cmyk])
    assert _cos(vectors[0], vectors[1]) > 0.9


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (encoded(photo("chelsea"), "JPEG")[:5000], "cannot decode"),
        (encoded(photo("chelsea"), "PNG")[:5000], "cannot decode"),
        (b"definitely not an image", "cannot decode"),
        (b"", "cannot decode"),
        ("not base64 and not a file!", "existing file path or base64"),
        ("data:image/png,rawbytes", "data URL"),
        (Path("/no/such/image.png"), "cannot read image file"),
        (12345, "not int"),
    ],
    ids=[
        "truncated-jpeg",
        "truncated-png",
        "garbage",
        "empty",
        "bad-string",
        "bad-url",
        "missing-file",
        "wrong-type",
    ],
)
def test_undecodable_input_is_an_input_error(bad: object, message: str) -> None:
    with pytest.raises(InvalidEmbedderInput, match=message):
        load_image(bad)  # type: ignore[arg-type]


def test_an_undecodable_image_is_reported_by_position(effnet: Embedder) -> None:
    truncated = encoded(photo("coffee"), "JPEG")[:3000]
    with pytest.raises(InvalidEmbedderInput, match="image 1: cannot decode"):
        effnet.embed_images([photo("chelsea"), truncated])


def test_images_above_the_pixel_limit_are_refused_before_decoding() -> None:
    big = encoded(Image.new("RGB", (200, 100)))
    assert load_image(big, max_pixels=20_000).size == (200, 100)
    with pytest.raises(InvalidEmbedderInput, match="200x100 = 20000 pixels; the limit is 19999"):
        load_image(big, max_pixels=19_999)


def test_paths_can_be_refused_for_remote_input(chelsea_png: Path) -> None:
    with pytest.raises(InvalidEmbedderInput, match="base64"):
        load_image(str(chelsea_png), allow_paths=False)
    with pytest.raises(InvalidEmbedderInput, match="file paths are not accepted"):
        load_image(chelsea_png, allow_paths=False)
    remote = base64.b64encode(chelsea_png.read_bytes()).decode("ascii")
    assert load_image(remote, allow_paths=False).size == (451, 300)


# --- CLIP -------------------------------------------------------------------------------


def test_clip_folder_embeds_texts_and_images_into_one_space(clip: Embedder) -> None:
    assert clip.dim == CLIP_DIM
    assert clip.modalities == frozenset({"text", "image"})
    texts = clip.embed_texts(["a cat", "a dog", "a cat and a dog", "x" * 1000, ""])
    images = clip.embed_images([photo("chelsea"), photo("camera"), photo("rocket")])
    _assert_unit_rows(texts, 5, CLIP_DIM)
    _assert_unit_rows(images, 3, CLIP_DIM)
    assert not np.allclose(texts[0], texts[1])


def test_clip_vectors_are_deterministic_and_independent_of_batching(
    clip: Embedder, clip_folder: Path
) -> None:
    texts = ["a cat", "a dog sat on the mat", "cat"]
    images = [photo("chelsea"), photo("coffee"), photo("astronaut")]
    reloaded = EmbedderRegistry(
        [EmbedderConfig(name="again", kind="clip", source=str(clip_folder), batch_size=8)]
    ).get("again")
    np.testing.assert_allclose(clip.embed_texts(texts), reloaded.embed_texts(texts), atol=1e-5)
    np.testing.assert_allclose(clip.embed_images(images), reloaded.embed_images(images), atol=1e-5)
    np.testing.assert_array_equal(clip.embed_texts(texts), clip.embed_texts(texts))


# --- the allowlist ----------------------------------------------------------------------


def test_default_configs_are_minilm_and_efficientnet(minilm: Embedder, effnet: Embedder) -> None:
    assert [c.name for c in default_embedder_configs()] == ["minilm", "efficientnet-lite0"]
    assert (minilm.name, minilm.dim) == ("minilm", 384)
    assert (effnet.name, effnet.dim) == ("efficientnet-lite0", 1280)
    assert isinstance(minilm, Embedder)
    assert isinstance(effnet, Embedder)


def test_a_name_outside_the_allowlist_is_not_found(registry: EmbedderRegistry) -> None:
    assert registry.names() == ["efficientnet-lite0", "minilm", "tiny-clip"]
    with pytest.raises(EmbedderNotFound):
        registry.get("all-mpnet-base-v2")
    with pytest.raises(EmbedderNotFound):
        registry.config("nope")


def test_a_request_string_is_never_taken_as_a_path(
    registry: EmbedderRegistry, clip_folder: Path
) -> None:
    with pytest.raises(EmbedderNotFound):
        registry.get(str(clip_folder))


def test_an_embedder_is_loaded_once_and_shared(registry: EmbedderRegistry) -> None:
    assert registry.get("minilm") is registry.get("minilm")


def test_concurrent_first_requests_load_the_model_once(clip_folder: Path) -> None:
    fresh = EmbedderRegistry([EmbedderConfig(name="c", kind="clip", source=str(clip_folder))])
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(lambda _: fresh.get("c"), range(16)))
    assert len({id(embedder) for embedder in loaded}) == 1


def test_a_missing_folder_makes_the_embedder_unavailable(tmp_path: Path) -> None:
    configs = [
        EmbedderConfig(name="text", kind="sentence-transformers", source=str(tmp_path / "no")),
        EmbedderConfig(name="clip", kind="clip", source=str(tmp_path / "no")),
        EmbedderConfig(name="image", kind="efficientnet-lite0", source=str(tmp_path / "no")),
    ]
    registry = EmbedderRegistry(configs)
    for name in registry.names():
        with pytest.raises(EmbedderUnavailable, match=name):
            registry.get(name)


def test_bad_weights_make_the_embedder_unavailable(clip_folder: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-clip"
    broken.mkdir()
    for item in clip_folder.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    (tmp_path / "weights.pth").write_bytes(b"not a checkpoint")
    registry = EmbedderRegistry(
        [
            EmbedderConfig(name="clip", kind="clip", source=str(broken)),
            EmbedderConfig(name="image", kind="efficientnet-lite0", source=str(tmp_path)),
        ]
    )
    for name in registry.names():
        with pytest.raises(EmbedderUnavailable, match="could not be loaded"):
            registry.get(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_forcing_cuda_without_a_gpu_is_unavailable() -> None:
    registry = EmbedderRegistry(
        [EmbedderConfig(name="minilm", kind="sentence-transformers", device="cuda")]
    )
    with pytest.raises(EmbedderUnavailable, match="no CUDA device"):
        registry.get("minilm")


def test_configuration_mistakes_are_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="needs a source"):
        EmbedderConfig(name="clip", kind="clip")
    with pytest.raises(ValidationError):
        EmbedderConfig(name="../etc", kind="sentence-transformers")
    with pytest.raises(ValidationError):
        EmbedderConfig(name="x", kind="sentence-transformers", batch_size=0)
    with pytest.raises(ValueError, match="configured twice"):
        EmbedderRegistry(default_embedder_configs() * 2)
