"""Turning what users send as an image into an RGB ``PIL.Image``.

Embedders, batch jobs and the HTTP layer all decode images here, so that every entry point
accepts the same inputs, applies the same orientation and colour rules, and fails the same
way: with :class:`~indexer.errors.InvalidEmbedderInput`, never with a raw PIL exception.

PIL is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from typing import IO, TYPE_CHECKING, TypeAlias

from indexer.errors import InvalidEmbedderInput

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DEFAULT_MAX_PIXELS", "ImageInput", "load_image"]

ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image"
"""A file path, encoded image bytes, a base64 string (optionally a ``data:`` URL) or a PIL
image."""

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest width x height accepted: about a 48-megapixel photo. Bigger images are refused
before their pixels are decoded, so a small compressed file cannot exhaust memory."""

# A real path is short and single-line; anything else is only ever tried as base64, which
# also spares a stat() call on every large base64 payload.
_MAX_PATH_CHARS = 4096

# Modes that carry transparency once converted to RGBA; they are flattened onto white
# because the models were trained on opaque photos and transparent pixels often hold
# black or garbage colour values.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WHITE = (255, 255, 255)


def load_image(
    obj: ImageInput, *, allow_paths: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode ``obj`` into a fully loaded RGB image, upright as its EXIF orientation says.

    Args:
        obj: one of
            - a ``pathlib.Path`` (or other ``os.PathLike``): a file to read;
            - ``bytes``, ``bytearray`` or ``memoryview``: an encoded file (JPEG, PNG, ...);
            - ``str``: a ``data:image/...;base64,`` URL, an existing file path (only when
              ``allow_paths``), or else plain base64 of an encoded file;
            - a ``PIL.Image.Image``: used as is (it is copied, never modified).
        allow_paths: whether strings and path objects may name files on this machine. Code
            that decodes what a remote client sent must pass ``False``, or a request could
            make the server read its own files.
        max_pixels: largest width x height accepted, checked before pixels are decoded.

    Returns:
        A new ``RGB`` image. Grayscale, palette, CMYK and 16-bit images are converted;
        transparent ones (RGBA, LA, palette with transparency) are composited on white.
        Animated images give their first frame.

    Raises:
        InvalidEmbedderInput: the input is of an unsupported type, names no readable file,
            is not valid base64, cannot be decoded as an image (unknown format, truncated,
            corrupt), or has more than ``max_pixels`` pixels.

    Example:
        >>> load_image(pathlib.Path("cat.jpg")).mode
        'RGB'
    """
    from PIL import Image

    if isinstance(obj, Image.Image):
        return _to_upright_rgb(obj, max_pixels)
    if isinstance(obj, bytes | bytearray | memoryview):
        return _decode(io.BytesIO(bytes(obj)), max_pixels)
    if isinstance(obj, str):
        if obj.startswith("data:"):
            return _decode(io.BytesIO(_decode_data_url(obj)), max_pixels)
        if allow_paths and _is_existing_file(obj):
            return _open_file(obj, max_pixels)
        return _decode(io.BytesIO(_decode_base64(obj, allow_paths)), max_pixels)
    if isinstance(obj, os.PathLike):
        if not allow_paths:
            raise InvalidEmbedderInput("file paths are not accepted here; send the image data")
        return _open_file(os.fspath(obj), max_pixels)
    raise InvalidEmbedderInput(
        f"an image must be a path, bytes, a base64 string or a PIL image, not {type(obj).__name__}"
    )


def _is_existing_file(text: str) -> bool:
    if len(text) > _MAX_PATH_CHARS or "\n" in text or "\x00" in text:
        return False
    return os.path.isfile(text)


def _decode_data_url(url: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidEmbedderInput("a data URL image must look like 'data:image/png;base64,...'")
    return _b64decode(payload, "the data URL's payload is not valid base64")


def _decode_base64(text: str, allow_paths: bool) -> bytes:
    if allow_paths:
        problem = "a string image must be an existing file path or base64-encoded image data"
    else:
        problem = "a string image must be base64-encoded image data"
    return _b64decode(text, problem)


def _b64decode(text: str, problem: str) -> bytes:
    compact = "".join(text.split())
    # Clients often drop the trailing '=' padding; the data is unambiguous without it.
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmbedderInput(problem) from None
    if not data:
        raise InvalidEmbedderInput("the image data is empty")
    return data


def _open_file(path: str, max_pixels: int) -> Image.Image:
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below, after decoding
    except OSError as exc:
        raise InvalidEmbedderInput(f"cannot read image file: {exc.strerror or exc}") from None
    with stream:
        return _decode(stream, max_pixels)


def _decode(stream: IO[bytes], max_pixels: int) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    # Decoders for untrusted bytes fail in many ways (OSError for truncation,
    # SyntaxError, ValueError, struct.error, DecompressionBombError, ...); every one of
    # them means "not a usable image", so they all become one input error.
    try:
        with Image.open(stream) as image:
            _check_pixels(image, max_pixels)
            image.load()
            return _to_upright_rgb(image, max_pixels)
    except InvalidEmbedderInput:
        raise
    except UnidentifiedImageError as exc:
        # Its message names the stream object ("<_io.BytesIO object at 0x...>").
        raise InvalidEmbedderInput("cannot decode image: unknown image format") from exc
    except Exception as exc:
        raise InvalidEmbedderInput(f"cannot decode image: {_describe(exc)}") from exc


def _to_upright_rgb(image: Image.Image, max_pixels: int) -> Image.Image:
    from PIL import ImageOps

    _check_pixels(image, max_pixels)
    try:
        upright = ImageOps.exif_transpose(image)
        return _to_rgb(upright)
    except InvalidEmbedderInput:
        raise
    except Exception as exc:  # a lazily opened image decodes here; see _decode
        raise InvalidEmbedderInput(f"cannot decode image: {_describe(exc)}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    from PIL import Image

    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in {"P", "L", "RGB", "1"} and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode.startswith("I"):
        image = _sixteen_bit_to_l(image)
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:
        raise InvalidEmbedderInput(f"unsupported image mode {mode!r}") from None


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    # 16-bit grayscale (PNG, TIFF) opens as an "I" mode; convert("RGB") would clip every
    # value above 255 to white, so scale it down to 8 bits first.
    # Plain "I" is ambiguous (some decoders use it for 16-bit data), hence the look at the
    # largest value.
    wide = image.convert("I")
    _, high = wide.getextrema()
    if image.mode.startswith("I;16") or (isinstance(high, int | float) and high > 255):
        wide = wide.point(lambda value: value / 257)
    return wide.convert("L")


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidEmbedderInput(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    if width == 0 or height == 0:
        raise InvalidEmbedderInput("image has no pixels")


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__
