"""Open descriptors stay bounded while the thread pool retires and starts threads."""

from __future__ import annotations

import http.client
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.server import free_port

DESCRIPTOR_LIMIT = 128
THREAD_IDLE_SECONDS = 0.2  # anyio retires a worker thread idle this long (10 s by default)
BURSTS = 20
READS_PER_BURST = 32
CONCURRENCY = 16

# uvicorn, with anyio's worker threads retired after THREAD_IDLE_SECONDS so that each burst
# of reads runs on new threads (as a real server's does after 10 idle seconds).
SERVE = f"""
import sys
from anyio._backends._asyncio import WorkerThread
import uvicorn

WorkerThread.MAX_IDLE_TIME = {THREAD_IDLE_SECONDS}
sys.argv = ["uvicorn", *sys.argv[1:]]
uvicorn.main()
"""


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTOR_LIMIT, DESCRIPTOR_LIMIT))


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_bursts_of_reads_on_new_threads_keep_open_descriptors_flat(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VECSERVE_DATA_DIR": str(tmp_path / "data"), "VECSERVE_DEVICE": "cpu"}
    command = [sys.executable, "-c", SERVE, "service.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, preexec_fn=limit_descriptors)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not become ready"
                assert process.poll() is None, "server exited"
                time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=30) as client:
            created = client.put("/collections/c", json={"dim": 4})
            assert created.status_code == 201, created.text
            points = [{"id": i, "vector": [1.0, i, 0.0, 0.0]} for i in range(50)]
            assert client.put("/collections/c/points", json={"points": points}).is_success

        def read(i: int) -> int:
            # A connection each: keep-alive would funnel the reads through fewer threads.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                if i % 2:
                    conn.request("GET", f"/collections/c/points/{i % 50}")
                else:
                    body, headers = b'{"limit": 5}', {"Content-Type": "application/json"}
                    conn.request("POST", "/collections/c/points/scroll", body, headers)
                return conn.getresponse().status
            finally:
                conn.close()

        counts = []
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            for _ in range(BURSTS):
                statuses = list(pool.map(read, range(READS_PER_BURST)))
                assert statuses == [200] * READS_PER_BURST
                time.sleep(THREAD_IDLE_SECONDS * 3)  # the server's threads retire
                counts.append(open_descriptors(process.pid))
    finally:
        process.terminate()
        process.wait(timeout=30)
    # At most one reader connection (two descriptors) for each request in flight at once.
    assert max(counts) <= counts[0] + 2 * CONCURRENCY, counts
    # And no growth: the second half of the bursts stays within a few sockets' closing.
    assert max(counts[BURSTS // 2 :]) - min(counts[BURSTS // 2 :]) <= 4, counts
