"""Index families, chosen through one registry, and their files on disk.

An index file is a cache of the store:
``MAGIC | header length | header JSON | body | body length | body CRC32``, where the body
is the FAISS serialisation, streamed to and from the file, and the header records the
store sequence number the index covers and the family's metadata. Files are replaced
atomically (temp file, fsync, rename). A file that is missing, truncated, fails its
checksum or is of an older format is reported as absent, and the collection rebuilds
from the store: it costs time, never data.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import orjson

from indexer.durable import fsync_dir
from indexer.indexes.base import FaissIndex
from indexer.indexes.flat import FlatIndex
from indexer.indexes.hnsw import HnswIndex
from indexer.indexes.ivf import IvfIndex, IvfPqIndex
from indexer.indexes.labels import LabelSet
from indexer.metric import Metric
from indexer.spec import IndexSpec

__all__ = ["FAMILIES", "FaissIndex", "LabelSet", "family_for", "load_index", "save_index"]

log = logging.getLogger(__name__)

FAMILIES: dict[str, type[FaissIndex]] = {
    cls.family: cls for cls in (FlatIndex, HnswIndex, IvfIndex, IvfPqIndex)
}

_MAGIC = b"VSIDX002"
_LENGTH = struct.Struct("<Q")
_TRAILER = struct.Struct("<QI")  # the body's length and CRC32


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
    """Write ``index`` (covering store sequence ``seq``) to ``path`` atomically. FAISS
    writes straight into the file: no copy of the index is made in memory."""
    header = orjson.dumps({"seq": seq, "meta": index.meta()})
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_MAGIC + _LENGTH.pack(len(header)) + header)
        body = _Body()

        def write(chunk: bytes) -> int:
            body.take(chunk)
            return f.write(chunk)

        faiss.write_index(index.cpu_index(), faiss.PyCallbackIOWriter(write))
        f.write(_TRAILER.pack(body.length, body.crc32))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load_index(path: Path, metric: Metric, dim: int) -> tuple[FaissIndex, int] | None:
    """The saved index and the seq it covers, or None if it is missing, damaged, or not
    an index of ``dim``-dimensional vectors under ``metric``. FAISS reads straight from
    the file, which is read once: the time is the disk's, the memory the index's."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, after the checks)
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable, or a folder: rebuild, and let the save say more
        log.warning("index file %s cannot be read (%s); rebuilding from the store", path, exc)
        return None
    try:
        with f:
            header = _header(f)
            meta: dict[str, Any] = header["meta"]
            family = FAMILIES[meta["family"]]
            body = _Body()

            def read(n: int) -> bytes:
                return body.take(f.read(n))

            index = faiss.read_index(faiss.PyCallbackIOReader(read))
            trailer = f.read(_TRAILER.size + 1)
        if len(trailer) != _TRAILER.size or _TRAILER.unpack(trailer) != (body.length, body.crc32):
            raise ValueError("truncated or corrupt (checksum mismatch)")
        if index.d != dim or index.metric_type != metric.faiss_metric:
            raise ValueError(
                f"it holds {index.d}-d vectors under FAISS metric {index.metric_type}, "
                f"not {dim}-d under {metric.value}"
            )
        return family(index, metric, meta), int(header["seq"])
    except Exception as exc:  # any damage means "rebuild", whatever form it takes
        log.warning("index file %s is unusable (%s); rebuilding from the store", path, exc)
        return None


class _Body:
    """The length and CRC32 of the FAISS body, taken as it streams through."""

    def __init__(self) -> None:
        self.length = 0
        self.crc32 = 0

    def take(self, chunk: bytes) -> bytes:
        self.length += len(chunk)
        self.crc32 = zlib.crc32(chunk, self.crc32)
        return chunk


def _header(f: BinaryIO) -> dict[str, Any]:
    if f.read(len(_MAGIC)) != _MAGIC:
        raise ValueError("not a vecserve index file (or one of an older format)")
    (header_len,) = _LENGTH.unpack(f.read(_LENGTH.size))
    header: dict[str, Any] = orjson.loads(f.read(header_len))
    return header
