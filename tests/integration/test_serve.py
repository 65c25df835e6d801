"""``vecserve serve``: the command line that runs the service, its start-up safety check
and its graceful stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from indexer import Engine
from indexer.indexes import load_index
from indexer.metric import Metric
from indexer.store import SqliteStore
from service.cli.failure import CommandFailed
from service.cli.serve import listen_socket
from tests.support.server import NewServer, free_port

VECSERVE = str(Path(sys.executable).with_name("vecserve"))
ENV = {**os.environ, "VECSERVE_DEVICE": "cpu"}


def saved_seq(folder: Path) -> int:
    loaded = load_index(folder / "index.vsi", Metric.COSINE, 8)
    assert loaded is not None
    return loaded[1]


def test_serve_refuses_a_public_address_without_api_keys(tmp_path: Path) -> None:
    args = ["serve", "--data", str(tmp_path), "--host", "0.0.0.0", "--port", str(free_port())]
    result = subprocess.run(
        [VECSERVE, *args], env=ENV, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "without API keys" in result.stderr
    assert "--allow-no-auth" in result.stderr


@pytest.mark.parametrize("command", ["serve", "quickstart"])
def test_a_busy_port_fails_with_one_line_and_exit_2_before_the_data_folder_is_made(
    tmp_path: Path, command: str
) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [command, "--data", str(data), "--port", str(port)]
        result = subprocess.run(
            [VECSERVE, *args], env=ENV, capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"vecserve {command}: error: cannot listen on 127.0.0.1:{port}: the address is "
        "already in use (another vecserve, or another program, listens there); stop it, "
        "or choose another port with --port"
    ]
    assert not data.exists()


def test_a_port_taken_for_a_later_serve_is_busy_to_another_serve_meanwhile() -> None:
    # quickstart takes its port, then builds its collection for a minute before serving:
    # meanwhile the port is busy to another vecserve, not taken by both until one fails.
    with listen_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(CommandFailed, match="the address is already in use"):
            listen_socket("127.0.0.1", port).close()


def test_sigterm_finishes_requests_in_flight_saves_indexes_and_exits_0(
    tmp_path: Path, new_server: NewServer
) -> None:
    data = tmp_path / "data"
    command = [VECSERVE, "serve", "--log-level", "warning"]
    with (
        (tmp_path / "serve.log").open("wb") as log,
        new_server(data_dir=data, command=command, stdout=log, stderr=subprocess.STDOUT) as server,
    ):
        url, process = server.url, server.process
        with httpx.Client(base_url=url, timeout=60) as http:
            http.put("/collections/items", json={"dim": 8}).raise_for_status()
            first = [{"id": i, "vector": [i % 7 + 1.0] * 8} for i in range(1000)]
            http.put("/collections/items/points", json={"points": first}).raise_for_status()
        folder = data / "collections" / "items"
        stale_seq = saved_seq(folder)  # saved when created; not after each write

        # An upsert whose body is still arriving when SIGTERM does.
        halfway, signalled = threading.Event(), threading.Event()
        late = [{"id": f"late-{i}", "vector": [0.5] * 8} for i in range(500)]
        body = orjson.dumps({"points": late})

        def slow_body() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            halfway.set()
            signalled.wait(10)
            yield body[len(body) // 2 :]

        in_flight: list[httpx.Response] = []
        upsert = threading.Thread(
            target=lambda: in_flight.append(
                httpx.put(
                    f"{url}/collections/items/points",
                    content=slow_body(),
                    headers={"content-type": "application/json"},
                    timeout=60,
                )
            )
        )
        # And a burst of searches that runs into the shutdown.
        statuses: list[int] = []
        stop = threading.Event()

        def search() -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                while not stop.is_set():
                    try:
                        query = {"vector": [1.0] * 8, "k": 5}
                        statuses.append(
                            client.post("/collections/items/search", json=query).status_code
                        )
                    except httpx.TransportError:
                        return  # the server has stopped taking requests

        burst = [threading.Thread(target=search) for _ in range(4)]
        upsert.start()
        for thread in burst:
            thread.start()
        assert halfway.wait(10)
        time.sleep(0.3)  # the server has the request's headers and half its body
        process.send_signal(signal.SIGTERM)
        signalled.set()
        upsert.join(60)
        stop.set()
        for thread in burst:
            thread.join(60)
        assert process.wait(60) == 0

    assert in_flight[0].status_code == 200
    assert in_flight[0].json() == {"upserted": 500}
    assert statuses
    assert all(status == 200 for status in statuses)
    store = SqliteStore(folder / "store.sqlite3")
    try:
        assert saved_seq(folder) == store.seq > stale_seq  # the index was saved on the way out
    finally:
        store.close()
    with Engine(data, device="cpu") as engine:
        assert engine.get_collection("items").count() == 1500
    output = (tmp_path / "serve.log").read_text()
    assert "auth is OFF" in output
    assert "Traceback" not in output
