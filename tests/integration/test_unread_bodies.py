"""An answer sent before the body is read closes the connection: the server does not go
on reading (and discarding) the body of a refused request."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.server import NewServer, Server

READ_WRITE = "rw-key-0123456789abcdef"
READ_ONLY = "ro-key-0123456789abcdef"
DECLARED = 8 * 1024**3  # 8 GiB
# What a client can push into a closed-off connection: what uvicorn read before the answer
# went out (a 64 KiB high-water mark) plus the two kernels' socket buffers (loopback
# autotuning tops out at a few MB each way).
ACCEPTED_AT_MOST = 16 * 1024 * 1024
CHUNK = b"x" * 65536


@pytest.fixture(scope="module", params=["httptools", "h11"])
def auth_server(request: pytest.FixtureRequest, new_server: NewServer) -> Iterator[Server]:
    env = {
        "VECSERVE_API_KEYS": READ_WRITE,
        "VECSERVE_READ_ONLY_API_KEYS": READ_ONLY,
        "UVICORN_HTTP": request.param,  # uvicorn's own option, from the environment
    }
    with new_server(env) as server:
        yield server


def send_until_closed(server: Server, head: bytes, chunked: bool) -> tuple[bytes, int]:
    """Send ``head`` then body bytes without end until the server stops taking them;
    return the start of the answer and the body bytes the connection accepted."""
    assert server.process is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        conn.sendall(head)
        part = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
        accepted = 0
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline and accepted <= ACCEPTED_AT_MOST:
                conn.sendall(part)
                accepted += len(CHUNK)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, accepted


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("key", "status"), [(None, 401), (READ_ONLY, 403)], ids=["no key", "read-only key"]
)
def test_a_refused_upload_is_not_read_to_its_end(
    auth_server: Server, key: str | None, status: int, chunked: bool
) -> None:
    head = (
        b"PUT /collections/items/points HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    )
    head += b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % DECLARED
    if key is not None:
        head += b"X-API-Key: %s\r\n" % key.encode()
    answer, accepted = send_until_closed(auth_server, head + b"\r\n", chunked)
    assert accepted <= ACCEPTED_AT_MOST, f"{accepted} bytes taken after the answer"
    assert answer.startswith(b"HTTP/1.1 %d" % status)
    assert b"connection: close" in answer.lower()


def test_a_refused_request_with_a_small_body_gets_its_answer(auth_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", auth_server.port), timeout=5) as conn:
        conn.sendall(
            b"POST /collections/items/search HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        answer = b""
        while chunk := conn.recv(65536):  # the server closes: the loop ends
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401")
    assert b"connection: close" in answer.lower()
