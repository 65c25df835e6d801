"""Request bodies from Python values, and typed results from response bodies.

Both clients build every body here, so they differ only in how they send it. Vectors go
in the compact form both ways: base64 of little-endian float32 (``vector_b64``), smaller
than JSON floats, exact, and with no float formatting or parsing on either side. Requests
send them so, and every request that asks for vectors asks for them so
(``vector_encoding="b64"``).
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from vecserve_client._exceptions import DuplicateIds
from vecserve_client._models import Hit, Point
from vecserve_client._types import (
    Example,
    Filter,
    FullText,
    Ids,
    ImageInput,
    Payload,
    PointId,
    SearchParams,
    Vector,
    Vectors,
)


def json_body(value: Any) -> bytes:
    """A request body as compact JSON, as httpx would encode it, with numpy values
    (``np.float32(1.5)``, ``np.int64(3)``, arrays) as the JSON they hold."""
    return json.dumps(
        value, default=_numpy_json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def _numpy_json(value: object) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact(vector: Vector) -> str:
    """One vector as base64 of little-endian float32."""
    array = np.ascontiguousarray(vector, dtype="<f4")
    if array.ndim != 1:
        raise ValueError(f"a vector must be 1-d; got shape {array.shape}")
    return base64.b64encode(array.tobytes()).decode("ascii")


def matrix(vectors: Vectors, rows: int | None = None) -> npt.NDArray[np.float32]:
    """Vectors as a float32 [n, dim] array, checking n against ``rows`` when given."""
    array = np.asarray(vectors, dtype="<f4")
    if array.ndim != 2:
        raise ValueError(f"vectors must be 2-d, one row per vector; got shape {array.shape}")
    if rows is not None and len(array) != rows:
        raise ValueError(f"{len(array)} vectors for {rows} ids")
    return array


def image(value: ImageInput) -> str:
    """An image as base64 of its encoded file (a PIL image is saved as PNG)."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str | os.PathLike):
        with open(value, "rb") as f:
            data = f.read()
    else:
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        data = buffer.getvalue()
    return base64.b64encode(data).decode("ascii")


def is_point_id(value: object) -> TypeGuard[PointId | np.integer[Any]]:
    return isinstance(value, str | int | np.integer) and not isinstance(value, bool)


def point_id(value: PointId | np.integer[Any]) -> PointId:
    """An id as JSON can carry it (a numpy integer becomes an int)."""
    return int(value) if isinstance(value, np.integer) else value


def query(
    vector: Vector | None,
    text: str | None,
    image_: ImageInput | None,
    id_: PointId | None,
) -> dict[str, Any]:
    """The query part of a search: exactly one of a vector, a text, an image or an id."""
    given = [v is not None for v in (vector, text, image_, id_)]
    if sum(given) != 1:
        raise ValueError("give exactly one of vector, text, image or id")
    if vector is not None:
        return {"vector_b64": compact(vector)}
    if text is not None:
        return {"text": text}
    if image_ is not None:
        return {"image": image(image_)}
    assert id_ is not None
    return {"id": point_id(id_)}


def queries(
    vectors: Vectors | None,
    texts: Sequence[str] | None,
    images: Sequence[ImageInput] | None,
    ids: Ids | None,
) -> list[dict[str, Any]]:
    """The query parts of a batch search: exactly one of vectors, texts, images or ids."""
    given = [v is not None for v in (vectors, texts, images, ids)]
    if sum(given) != 1:
        raise ValueError("give exactly one of vectors, texts, images or ids")
    if vectors is not None:
        return [{"vector_b64": compact(row)} for row in matrix(vectors)]
    if texts is not None:
        return [{"text": t} for t in texts]
    if images is not None:
        return [{"image": image(i)} for i in images]
    assert ids is not None
    return [{"id": point_id(i)} for i in ids]


def vector_options(with_vectors: bool) -> dict[str, Any]:
    """Return vectors, in the compact form; or nothing, the server's default, so that a
    server that predates these options still takes the request."""
    if with_vectors:
        return {"with_vectors": True, "vector_encoding": "b64"}
    return {}


def vector_params(with_vectors: bool) -> dict[str, str]:
    """:func:`vector_options` as the query parameters of a GET."""
    if with_vectors:
        return {"with_vectors": "true", "vector_encoding": "b64"}
    return {}


def given(**options: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The options that are set, as JSON objects; those unset are left out, to the
    server's defaults."""
    return {name: dict(value) for name, value in options.items() if value is not None}


def switched_on(**switches: bool) -> dict[str, bool]:
    """The switches that are on; those off are left out, the server's default, so that a
    server that predates a switch still takes a request that does not use it."""
    return {name: True for name, on in switches.items() if on}


def search_options(
    k: int,
    filter: Filter | None,
    params: SearchParams | None,
    with_payload: bool,
    with_vectors: bool,
) -> dict[str, Any]:
    """What a search says besides its query; unset options are left to the server."""
    return {
        "k": k,
        "with_payload": with_payload,
        **vector_options(with_vectors),
        **given(filter=filter, params=params),
    }


def example(value: Example) -> PointId | dict[str, str]:
    """A recommend example: a point id, a vector (in the compact form), or a text or an
    image."""
    if is_point_id(value):
        return point_id(value)
    if isinstance(value, dict):
        given: Mapping[str, Any] = value
        if set(given) == {"text"}:
            return {"text": given["text"]}
        if set(given) == {"image"}:
            return {"image": image(given["image"])}
        raise ValueError(f"an example dict is {{'text': ...}} or {{'image': ...}}; got {value!r}")
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"an example must be a point id or a 1-d vector; got {value!r}")
    return {"vector_b64": compact(array)}


@dataclass(frozen=True)
class PointColumns:
    """The points of an upsert, column by column, checked to have one row per id."""

    ids: Ids
    vectors: npt.NDArray[np.float32] | None
    payloads: Sequence[Payload | None] | None
    texts: Sequence[str] | None
    images: Sequence[ImageInput] | None
    store_source: bool | None = None

    @classmethod
    def of(
        cls,
        ids: Ids,
        vectors: Vectors | None,
        payloads: Sequence[Payload | None] | None,
        texts: Sequence[str] | None,
        images: Sequence[ImageInput] | None,
        store_source: bool | None = None,
    ) -> PointColumns:
        if sum(v is not None for v in (vectors, texts, images)) != 1:
            raise ValueError("give exactly one of vectors, texts or images")
        n = len(ids)
        for name, column in (("payloads", payloads), ("texts", texts), ("images", images)):
            if column is not None and len(column) != n:
                raise ValueError(f"{len(column)} {name} for {n} ids")
        array = matrix(vectors, n) if vectors is not None else None
        check_unique(ids)
        return cls(ids, array, payloads, texts, images, store_source)

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, size: int) -> list[PointColumns]:
        """Consecutive slices of at most ``size`` points (views: nothing is copied)."""
        if size < 1:
            raise ValueError(f"batch_size must be at least 1; got {size}")
        return [
            PointColumns(
                self.ids[start : start + size],
                None if self.vectors is None else self.vectors[start : start + size],
                None if self.payloads is None else self.payloads[start : start + size],
                None if self.texts is None else self.texts[start : start + size],
                None if self.images is None else self.images[start : start + size],
                self.store_source,
            )
            for start in range(0, len(self), size)
        ]

    def body(self) -> dict[str, Any]:
        """The upsert request body for these points."""
        points = []
        for i, id_ in enumerate(self.ids):
            point: dict[str, Any] = {"id": point_id(id_)}
            if self.vectors is not None:
                point["vector_b64"] = compact(self.vectors[i])
            elif self.texts is not None:
                point["text"] = self.texts[i]
            elif self.images is not None:
                point["image"] = image(self.images[i])
            if self.payloads is not None and self.payloads[i] is not None:
                point["payload"] = dict(self.payloads[i] or {})
            points.append(point)
        if self.store_source is None:
            return {"points": points}
        return {"points": points, "store_source": self.store_source}


def check_unique(ids: Ids) -> None:
    """Raise :class:`DuplicateIds`, as the server would, when an id repeats: checked here
    for the whole call, since the server sees one batch at a time."""
    counts = Counter(point_id(i) for i in ids)
    if len(counts) != len(ids):
        repeated = [i for i, n in counts.items() if n > 1]
        raise DuplicateIds(
            f"ids appear more than once in one upsert: {repeated[:5]!r}",
            status_code=422,
            name="DuplicateIds",
        )


def full_text(value: FullText) -> dict[str, Any]:
    """A full-text declaration as the server takes it (a list is the fields alone)."""
    if isinstance(value, Mapping):
        declared = dict(value)
        declared["fields"] = [f if isinstance(f, str) else dict(f) for f in value["fields"]]
        return declared
    return {"fields": [f if isinstance(f, str) else dict(f) for f in value]}


def stages(prefetch: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Prefetch stages as JSON: a dense stage's image (bytes, a path or a PIL image, as
    in :meth:`search`) as base64; numpy vectors become JSON arrays in :func:`json_body`."""
    out = []
    for stage in prefetch:
        stage = dict(stage)
        dense = stage.get("dense")
        if isinstance(dense, Mapping) and dense.get("image") is not None:
            stage["dense"] = {**dense, "image": image(dense["image"])}
        out.append(stage)
    return out


def hits(body: dict[str, Any]) -> list[Hit]:
    return [Hit.model_validate(h) for h in body["hits"]]


def points(body: dict[str, Any]) -> list[Point]:
    return [Point.model_validate(p) for p in body["points"]]
