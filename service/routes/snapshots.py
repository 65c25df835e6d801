"""Snapshots of a collection: create, list, download, delete, and restore from an upload.

The engine does the work (:mod:`indexer.snapshots`); these routes move files. A restore
upload is streamed to a file in the data folder, never held in memory, and stops with a
413 as soon as it is over ``max_snapshot_bytes`` (at once when ``Content-Length`` says so).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

from fastapi import Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from indexer.errors import InvalidInput, InvalidSnapshot
from indexer.snapshots import SnapshotInfo, checked_sha256
from service.deps import EngineDep, SettingsDep
from service.errors import RequestTooLarge
from service.responses import Json, OpenFileResponse
from service.routes.collections import describe
from service.routing import ApiRouter
from service.schemas import CollectionInfo, ErrorBody, SnapshotList, SnapshotOut

router = ApiRouter(prefix="/collections/{name}/snapshots", tags=["snapshots"])

CHECKSUM_HEADER = "X-Checksum-Sha256"
TAR_TYPES = ("application/x-tar", "application/octet-stream")
_WRITE_BYTES = 1024 * 1024  # received chunks are gathered and written this much at a time


def snapshot_json(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "size": info.size,
        "sha256": info.sha256,
        "created_at": info.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "points": info.points,
        "seq": info.seq,
    }


@router.post(
    "",
    operation_id="create_snapshot",
    response_model=SnapshotOut,
    status_code=201,
)
def create_snapshot(name: str, engine: EngineDep) -> Response:
    """Snapshot a collection while writes go on: a tar file holding every write committed
    up to ``seq``. Download it with its name; restore it with ``/snapshots/restore``."""
    return Json(snapshot_json(engine.snapshot(name)), status_code=201)


@router.get("", operation_id="list_snapshots", response_model=SnapshotList)
def list_snapshots(name: str, engine: EngineDep) -> Response:
    """The collection's snapshots, oldest first. Snapshots outlive their collection."""
    return Json({"snapshots": [snapshot_json(i) for i in engine.list_snapshots(name)]})


# What another method at the restore operation's path answers.
ON_THE_RESTORE_PATH = {
    "model": ErrorBody,
    "description": "`restore` names the restore operation, not a snapshot (`MethodNotAllowed`)",
}


def not_the_restore_path(snapshot: str) -> None:
    """``/snapshots/restore`` is the restore operation's path (no snapshot has that name):
    another method there is a 405, as the OpenAPI document reads it."""
    if snapshot == "restore":
        raise HTTPException(405, "Method Not Allowed")


@router.get(
    "/{snapshot}",
    operation_id="download_snapshot",
    response_class=OpenFileResponse,
    status_code=200,
    responses={
        200: {"content": {"application/x-tar": {}}, "description": "the tar file"},
        405: ON_THE_RESTORE_PATH,
    },
)
def download_snapshot(name: str, snapshot: str, engine: EngineDep) -> OpenFileResponse:
    """The snapshot's tar file, with its SHA-256 in ``X-Checksum-Sha256`` (hex) and
    ``Digest`` (base64). A download under way completes even if the snapshot is deleted."""
    not_the_restore_path(snapshot)
    info, file = engine.open_snapshot(name, snapshot)
    digest = base64.b64encode(bytes.fromhex(info.sha256)).decode()
    return OpenFileResponse(
        file,
        info.size,
        media_type="application/x-tar",
        filename=f"{info.name}.tar",
        headers={CHECKSUM_HEADER: info.sha256, "Digest": f"sha-256={digest}"},
    )


@router.delete(
    "/{snapshot}",
    operation_id="delete_snapshot",
    status_code=204,
    responses={405: ON_THE_RESTORE_PATH},
)
def delete_snapshot(name: str, snapshot: str, engine: EngineDep) -> Response:
    """Delete one snapshot."""
    not_the_restore_path(snapshot)
    engine.delete_snapshot(name, snapshot)
    return Response(status_code=204)


@router.post(
    "/restore",
    operation_id="restore_snapshot",
    response_model=CollectionInfo,
    status_code=201,
    responses={
        409: {"model": ErrorBody, "description": "The collection has points"},
        415: {"model": ErrorBody, "description": "The body is not application/x-tar"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in TAR_TYPES},
        }
    },
)
async def restore_snapshot(
    name: str,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    sha256: Annotated[str | None, Query(description="SHA-256 of the tar file, hex")] = None,
    checksum: Annotated[str | None, Header(alias=CHECKSUM_HEADER)] = None,
) -> Response:
    """Restore a snapshot (the tar file as the raw body) as collection ``name``, which must
    not exist or be empty. The file's SHA-256 is required, as ``?sha256=`` or an
    ``X-Checksum-Sha256`` header. The snapshot is checked in full before the collection
    appears; any damage, unsafe member or inconsistency is a 422 ``InvalidSnapshot``."""
    given = sha256 or checksum
    if given is None:
        raise InvalidInput(f"give the snapshot's SHA-256 as ?sha256= or a {CHECKSUM_HEADER} header")
    expected = checked_sha256(given)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in TAR_TYPES:
        raise HTTPException(415, f"send the snapshot as {' or '.join(TAR_TYPES)}")
    limit = settings.max_snapshot_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"the snapshot is over this server's limit of {limit} bytes")
    await run_in_threadpool(engine.check_restore_target, name)  # before receiving gigabytes
    with engine.snapshot_upload() as path:
        await _receive(request, path, limit)
        collection = await run_in_threadpool(engine.restore_snapshot, name, path, sha256=expected)
        info = await run_in_threadpool(describe, collection)
    return Json(info, status_code=201)


async def _receive(request: Request, path: Path, limit: int) -> None:
    """Stream the body to ``path``, stopping once it is over ``limit`` bytes."""
    received = 0
    pending = bytearray()
    with open(path, "xb") as f:
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise RequestTooLarge(
                        f"the snapshot is over this server's limit of {limit} bytes"
                    )
                pending += chunk
                if len(pending) >= _WRITE_BYTES:
                    await run_in_threadpool(f.write, pending)
                    pending.clear()
        except ClientDisconnect:
            raise InvalidSnapshot("the upload stopped before the snapshot was complete") from None
        await run_in_threadpool(f.write, pending)
