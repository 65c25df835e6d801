"""Index families, chosen through one registry, and their files on disk.

An index file is a cache of the store: ``MAGIC | header length | header JSON | body``,
where the body is the FAISS serialisation and the header records the store sequence
number the index covers and a CRC32 of the body. Files are replaced atomically (temp file,
fsync, rename). A file that is missing, truncated or fails its checksum is reported as
absent, and the collection rebuilds from the store: it costs time, never data.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson

from indexer.durable import fsync_dir
from indexer.indexes.base import FaissIndex, LabelSet
from indexer.indexes.flat import FlatIndex
from indexer.indexes.hnsw import HnswIndex
from indexer.indexes.ivf import IvfIndex, IvfPqIndex
from indexer.metric import Metric
from indexer.spec import IndexSpec

__all__ = ["FAMILIES", "FaissIndex", "LabelSet", "family_for", "load_index", "save_index"]

log = logging.getLogger(__name__)

FAMILIES: dict[str, type[FaissIndex]] = {
    cls.family: cls for cls in (FlatIndex, HnswIndex, IvfIndex, IvfPqIndex)
}

_MAGIC = b"VSIDX001"
_LENGTH = struct.Struct("<Q")


def family_for(spec: IndexSpec, dim: int, n: int, gpus: int) -> tuple[type[FaissIndex], IndexSpec]:
    """The family (and the spec to build it with) for a collection of ``n`` points now.

    ``auto`` is exact while small, then HNSW on the CPU or IVF on GPUs (HNSW has no GPU
    form in FAISS). A family that needs training data serves exactly until it has it.
    """
    kind = spec.kind
    if kind == "auto":
        if n < spec.auto_threshold:
            return FlatIndex, spec
        kind = "ivf_flat" if gpus else "hnsw"
    family = FAMILIES[kind]
    if n >= family.min_points(spec, dim):
        return family, spec
    if n >= FlatIndex.min_points(spec, dim):
        return FlatIndex, spec
    return FlatIndex, spec.model_copy(update={"storage": "float32"})


def save_index(path: Path, index: FaissIndex, seq: int) -> None:
    """Write ``index`` (covering store sequence ``seq``) to ``path`` atomically."""
    body = faiss.serialize_index(index.cpu_index()).tobytes()
    header = orjson.dumps(
        {"seq": seq, "crc32": zlib.crc32(body), "body_len": len(body), "meta": index.meta()}
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_MAGIC + _LENGTH.pack(len(header)) + header)
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load_index(path: Path, metric: Metric, dim: int) -> tuple[FaissIndex, int] | None:
    """The saved index and the seq it covers, or None if it is missing, damaged, or not
    an index of ``dim``-dimensional vectors under ``metric``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable, or a folder: rebuild, and let the save say more
        log.warning("index file %s cannot be read (%s); rebuilding from the store", path, exc)
        return None
    try:
        header, body = _split(data)
        meta: dict[str, Any] = header["meta"]
        family = FAMILIES[meta["family"]]
        index = faiss.deserialize_index(np.frombuffer(body, dtype=np.uint8))
        if index.d != dim or index.metric_type != metric.faiss_metric:
            raise ValueError(
                f"it holds {index.d}-d vectors under FAISS metric {index.metric_type}, "
                f"not {dim}-d under {metric.value}"
            )
        return family(index, metric, meta), int(header["seq"])
    except Exception as exc:  # any damage means "rebuild", whatever form it takes
        log.warning("index file %s is unusable (%s); rebuilding from the store", path, exc)
        return None


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    if not data.startswith(_MAGIC):
        raise ValueError("not a vecserve index file")
    start = len(_MAGIC) + _LENGTH.size
    (header_len,) = _LENGTH.unpack_from(data, len(_MAGIC))
    header: dict[str, Any] = orjson.loads(data[start : start + header_len])
    body = data[start + header_len :]
    if len(body) != header["body_len"] or zlib.crc32(body) != header["crc32"]:
        raise ValueError("truncated or corrupt (checksum mismatch)")
    return header, body
