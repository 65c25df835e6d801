"""Snapshots over real HTTP: create, list, download, restore elsewhere, delete; requests
racing each other's deletes; uploads over the limit are refused before they are read;
hostile files get a JSON 4xx."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.support.server import NewServer, Server
from tests.unit.test_snapshots import DIM, UNREADABLE_POINTS, edit_store

LIMIT = 1024 * 1024  # VECSERVE_MAX_SNAPSHOT_BYTES for these tests
rng = np.random.default_rng(17)


@pytest.fixture
def server(tmp_path: Path, new_server: NewServer) -> Iterator[Server]:
    env = {"VECSERVE_MAX_SNAPSHOT_BYTES": str(LIMIT)}
    with new_server(env, data_dir=tmp_path / "data") as s:
        yield s


def fill(http: httpx.Client, name: str = "items", n: int = 200) -> np.ndarray:
    assert http.put(f"/collections/{name}", json={"dim": 4, "metric": "l2"}).status_code == 201
    vectors = rng.standard_normal((n, 4)).astype(np.float32)
    points = [{"id": i, "vector": v.tolist(), "payload": {"n": i}} for i, v in enumerate(vectors)]
    assert http.put(f"/collections/{name}/points", json={"points": points}).status_code == 200
    return vectors


def restore(
    http: httpx.Client, name: str, data: bytes, sha256: str | None, **headers: str
) -> httpx.Response:
    return http.post(
        f"/collections/{name}/snapshots/restore",
        params={"sha256": sha256} if sha256 else {},
        content=data,
        headers={"content-type": "application/x-tar", **headers},
    )


def test_snapshot_is_downloaded_and_restored_into_another_collection(
    http: httpx.Client,
) -> None:
    vectors = fill(http)
    created = http.post("/collections/items/snapshots")
    assert created.status_code == 201
    info = created.json()
    assert set(info) == {"name", "size", "sha256", "created_at", "points", "seq"}
    assert (info["points"], info["seq"]) == (200, 1)
    listed = http.get("/collections/items/snapshots").json()["snapshots"]
    assert listed == [info]

    download = http.get(f"/collections/items/snapshots/{info['name']}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-tar"
    assert download.headers["x-checksum-sha256"] == info["sha256"]
    assert hashlib.sha256(download.content).hexdigest() == info["sha256"]
    assert len(download.content) == info["size"]

    restored = restore(
        http, "copy", download.content, None, **{"x-checksum-sha256": info["sha256"]}
    )
    assert restored.status_code == 201
    assert (restored.json()["name"], restored.json()["count"]) == ("copy", 200)
    for query in vectors[:5]:
        body = {"vector": query.tolist(), "k": 5}
        original = http.post("/collections/items/search", json=body).json()
        assert http.post("/collections/copy/search", json=body).json() == original

    again = restore(http, "copy", download.content, info["sha256"])
    assert again.status_code == 409
    assert again.json()["error"] == "CollectionNotEmpty"
    wrong = restore(http, "other", download.content, "0" * 64)
    assert (wrong.status_code, wrong.json()["error"]) == (422, "ChecksumMismatch")
    missing = restore(http, "other", download.content, None)
    assert (missing.status_code, missing.json()["error"]) == (422, "InvalidInput")
    form = restore(
        http, "other", download.content, info["sha256"], **{"content-type": "text/plain"}
    )
    assert form.status_code == 415

    assert http.delete(f"/collections/items/snapshots/{info['name']}").status_code == 204
    assert http.get("/collections/items/snapshots").json() == {"snapshots": []}
    gone = http.get(f"/collections/items/snapshots/{info['name']}")
    assert (gone.status_code, gone.json()["error"]) == (404, "SnapshotNotFound")
    bad = http.get("/collections/items/snapshots/not..a-name")
    assert (bad.status_code, bad.json()["error"]) == (422, "InvalidName")
    assert http.get("/collections").json() == {"collections": ["copy", "items"]}


def test_snapshot_requests_racing_each_other_get_answers_not_errors_or_resets(
    http: httpx.Client, server: Server
) -> None:
    # Each client makes, lists, downloads and deletes snapshots while the others delete
    # theirs: a listing or a download that a delete overtakes once answered 500, and the
    # client's next request on that connection met a reset.
    fill(http, n=2_000)
    clients, rounds = 4, 15
    seen: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as mine:
            base = "/collections/items/snapshots"
            for _ in range(rounds):
                made = mine.post(base)
                seen.append(f"create {made.status_code}")
                listed = mine.get(base)
                seen.append(f"list {listed.status_code}")
                for other in listed.json()["snapshots"][-clients:]:
                    got = mine.get(f"{base}/{other['name']}")
                    # deleted since it was listed: a 404; otherwise the whole file
                    whole = hashlib.sha256(got.content).hexdigest() == other["sha256"]
                    seen.append(f"download {got.status_code} {whole or got.status_code == 404}")
                deleted = mine.delete(f"{base}/{made.json()['name']}")
                seen.append(f"delete {deleted.status_code}")

    with ThreadPoolExecutor(clients) as pool:
        for done in [pool.submit(client) for _ in range(clients)]:
            done.result()  # a reset or a cut download raises here
    allowed = {
        "create 201",
        "list 200",
        "download 200 True",
        "download 404 True",
        "delete 204",
    }
    assert set(seen) <= allowed, sorted(set(seen) - allowed)
    assert seen.count("delete 204") == clients * rounds
    assert http.get("/collections/items/snapshots").json() == {"snapshots": []}


def raw_request(
    server: Server, head: str, body: Iterable[bytes] = ()
) -> tuple[int, dict[str, Any]]:
    """Send a request by hand (what httpx will not do: a body that never ends) and read
    the answer, which must come without the rest of the body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for chunk in body:
            sock.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        headers, _, content = answer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in headers.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        while len(content) < length:
            content += sock.recv(65536)
    status = int(headers.split(b" ")[1])
    return status, orjson.loads(content)


def test_upload_over_the_limit_is_refused_before_it_is_read(
    http: httpx.Client, server: Server
) -> None:
    fill(http)
    target = "/collections/big/snapshots/restore?sha256=" + "0" * 64
    # A declared length over the limit: answered before a byte of the body is sent.
    status, body = raw_request(
        server,
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
        f"Content-Length: {LIMIT + 1}\r\n",
    )
    assert (status, body["error"]) == (413, "RequestTooLarge")
    # No length (chunked): the body is read only until it passes the limit, and the answer
    # comes though the body never ends.
    chunk = 64 * 1024
    chunks = (f"{chunk:x}\r\n".encode() + bytes(chunk) + b"\r\n" for _ in range(LIMIT // chunk + 1))
    status, body = raw_request(
        server,
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
        "Transfer-Encoding: chunked\r\n",
        chunks,
    )
    assert (status, body["error"]) == (413, "RequestTooLarge")
    # A restore onto a collection with points is refused before the upload is read, too.
    status, body = raw_request(
        server,
        "POST /collections/items/snapshots/restore?sha256=" + "0" * 64 + " HTTP/1.1\r\n"
        f"Host: x\r\nContent-Type: application/x-tar\r\nContent-Length: {LIMIT}\r\n",
    )
    assert (status, body["error"]) == (409, "CollectionNotEmpty")
    assert http.get("/collections").json() == {"collections": ["items"]}
    assert not list((server.data_dir / "snapshots").glob(".*"))


def hostile_tar(*entries: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(info, io.BytesIO(b"") if info.isreg() else None)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        hostile_tar(("store.sqlite3", tarfile.SYMTYPE)),
        hostile_tar(("../../escape", tarfile.REGTYPE)),
        b"not a tar file at all",
    ],
    ids=["symlink", "parent_path", "not_a_tar"],
)
def test_hostile_snapshot_over_http_is_a_json_error(
    http: httpx.Client, server: Server, data: bytes
) -> None:
    answer = restore(http, "evil", data, hashlib.sha256(data).hexdigest())
    assert answer.status_code == 422
    assert answer.json()["error"] == "InvalidSnapshot"
    assert answer.json()["request_id"] == answer.headers["x-request-id"]
    assert http.get("/collections").json() == {"collections": []}
    assert [p.name for p in (server.data_dir / "collections").iterdir()] == []
    assert not list((server.data_dir / "snapshots").glob(".*"))
    assert not (server.data_dir.parent / "escape").exists()


def tampered(snapshot: bytes, tmp: Path, sql: str) -> bytes:
    """``snapshot`` with ``sql`` run on its store, and a manifest that agrees: what someone
    who edits a snapshot file can make."""
    with tarfile.open(fileobj=io.BytesIO(snapshot)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    files["store.sqlite3"] = edit_store(files["store.sqlite3"], tmp, sql)
    manifest = orjson.loads(files.pop("manifest.json"))
    manifest["members"] = [
        {"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in files.items()
    ]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [("manifest.json", orjson.dumps(manifest)), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("case", sorted(UNREADABLE_POINTS))
def test_a_snapshot_holding_a_point_the_server_cannot_read_is_refused(
    http: httpx.Client, server: Server, tmp_path: Path, case: str
) -> None:
    assert http.put("/collections/items", json={"dim": DIM}).status_code == 201
    points = [
        {"id": i, "vector": v.tolist(), "payload": {"n": i}}
        for i, v in enumerate(rng.standard_normal((20, DIM)))
    ]
    assert http.put("/collections/items/points", json={"points": points}).status_code == 200
    name = http.post("/collections/items/snapshots").json()["name"]
    snapshot = http.get(f"/collections/items/snapshots/{name}").content
    sql, reason = UNREADABLE_POINTS[case]
    data = tampered(snapshot, tmp_path, sql)
    answer = restore(http, "copy", data, hashlib.sha256(data).hexdigest())
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "InvalidSnapshot"
    assert "point 7" in answer.json()["message"]
    assert reason in answer.json()["message"]
    assert http.get("/collections").json() == {"collections": ["items"]}
