"""Soak: mixed load on a real ``vecserve serve`` for a stated time, watching for leaks.

    python -m bench.soak --minutes 60

Starts ``vecserve serve`` on 127.0.0.1 over a fresh data folder with one collection, then
``--clients`` processes each send a mix of requests in a loop (searches with and without
filters, batch searches, upserts, deletes by id and by filter, recommend, get, scroll,
snapshots made, listed, downloaded and deleted), recording every response's status and
latency. Every ``--sample-seconds`` the server's RSS, open descriptors and threads are read
from /proc. The load comes in bursts: every ``--busy-seconds`` all clients go quiet together
for ``--idle-seconds``, longer than the thread pool keeps an idle thread (anyio: 10 s), so
each burst runs on new threads, as a real server's traffic makes it do.

It fails (exit 1, saying why) on any 5xx, any failed connection, any 4xx the mix does not
expect (a 404 from getting a point another client deleted is expected), or growth after
the warm-up: the median of the last third of the samples against the median of the first
third after the warm-up, with slack for descriptors and threads (sockets and thread-pool
threads come and go with the load) and a relative tolerance for RSS (caches settle).
Figures go to bench/results/soak.json and soak.md: requests, errors, p50/p99 by kind, and
RSS, descriptors and threads at 5, 30 and 60 minutes (those the run reaches) and at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.support.server import free_port, wait_until_ready

COLLECTION = "soak"
DIM = 32
ID_SPACE = 4_000  # upserts and deletes pick ids here, so the collection stays about this size
GROUPS = 10
MARK_MINUTES = (5, 30, 60)
RESULTS = Path(__file__).parent / "results"

# Request kinds and their weights in the mix.
MIX = {
    "search": 20,
    "search_filtered": 15,
    "search_batch": 8,
    "upsert": 12,
    "delete_ids": 4,
    "delete_filter": 1,
    "recommend": 8,
    "get": 10,
    "get_point": 8,
    "scroll": 8,
    "snapshot": 1,
}


@dataclass
class ClientReport:
    """What one client process saw."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)  # "kind status" -> count
    failures: list[str] = field(default_factory=list)  # first few unexpected answers


@dataclass
class Sample:
    seconds: float
    rss_mib: float
    fds: int
    threads: int


def start_server(data: Path, port: int, device: str) -> subprocess.Popen[bytes]:
    """``vecserve serve`` through the console script's entry point, with this interpreter."""
    command = [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]
    command += ["serve", "--data", str(data), "--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "VECSERVE_DEVICE": device}
    process = subprocess.Popen(command, env=env)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", process, timeout_s=60)
    except RuntimeError:
        process.terminate()
        raise
    return process


def points(ids: list[int], rng: np.random.Generator) -> list[dict[str, Any]]:
    vectors = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    return [
        {
            "id": i,
            "vector": v.tolist(),
            "payload": {"group": i % GROUPS, "price": round(float(rng.uniform(0, 100)), 2)},
        }
        for i, v in zip(ids, vectors, strict=True)
    ]


def seed_collection(url: str) -> None:
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=url, timeout=60) as http:
        http.put(f"/collections/{COLLECTION}", json={"dim": DIM}).raise_for_status()
        for start in range(0, ID_SPACE, 1_000):
            body = {"points": points(list(range(start, start + 1_000)), rng)}
            http.put(f"/collections/{COLLECTION}/points", json=body).raise_for_status()


def a_request(kind: str, rng: np.random.Generator) -> tuple[str, str, Any]:
    """(method, path, JSON body) of one request of this kind."""
    base = f"/collections/{COLLECTION}"

    def vector() -> list[float]:
        return [float(x) for x in rng.standard_normal(DIM)]

    def an_id() -> int:
        return int(rng.integers(ID_SPACE))

    group = {"group": int(rng.integers(GROUPS))}
    low = float(rng.uniform(0, 90))
    price = {"price": {"$gte": low, "$lt": low + 10}}
    if kind == "search":
        return "POST", f"{base}/search", {"vector": vector(), "k": 10}
    if kind == "search_filtered":
        flt = group if rng.random() < 0.5 else {"$and": [group, price]}
        return "POST", f"{base}/search", {"vector": vector(), "k": 10, "filter": flt}
    if kind == "search_batch":
        searches = [{"vector": vector(), "k": 5} for _ in range(8)]
        return "POST", f"{base}/search/batch", {"searches": searches}
    if kind == "upsert":
        ids = sorted({an_id() for _ in range(int(rng.integers(1, 50)))})
        return "PUT", f"{base}/points", {"points": points(ids, rng)}
    if kind == "delete_ids":
        ids = rng.choice(ID_SPACE, size=5, replace=False).tolist()
        return "POST", f"{base}/points/delete", {"ids": ids}
    if kind == "delete_filter":
        return "POST", f"{base}/points/delete", {"filter": {"$and": [group, price]}}
    if kind == "recommend":
        body = {"positive": [vector(), vector()], "negative": [vector()], "k": 10}
        return "POST", f"{base}/recommend", body
    if kind == "get":
        ids = rng.choice(ID_SPACE, size=10, replace=False).tolist()
        return "POST", f"{base}/points/get", {"ids": ids, "with_vector": True}
    if kind == "get_point":
        return "GET", f"{base}/points/{an_id()}", None
    if kind == "scroll":
        return "POST", f"{base}/points/scroll", {"limit": 50, "filter": group}
    raise ValueError(kind)


def expected(kind: str, status: int) -> bool:
    if kind == "get_point":
        return status in (200, 404)  # another client may have deleted it
    return 200 <= status < 300


@dataclass(frozen=True)
class Plan:
    """When the clients send: from ``start`` (a ``time.time()``) for ``seconds``, in
    bursts of ``busy`` seconds each followed by ``idle`` quiet ones."""

    start: float
    seconds: float
    busy: float
    idle: float
    pause: float  # between one client's requests

    def quiet_for(self, now: float) -> float:
        """How long to stay quiet from ``now`` (0 inside a burst)."""
        into_cycle = (now - self.start) % (self.busy + self.idle)
        return max(0.0, self.busy + self.idle - into_cycle) if into_cycle >= self.busy else 0.0


def run_client(url: str, plan: Plan, seed: int, out: Any) -> None:
    """One client process: the mix in a closed loop, in the plan's bursts; the report to
    ``out``."""
    rng = np.random.default_rng(seed)
    kinds, weights = list(MIX), np.array(list(MIX.values()), dtype=float)
    weights /= weights.sum()
    report = ClientReport(latencies={kind: [] for kind in kinds})
    stop = plan.start + plan.seconds
    with httpx.Client(base_url=url, timeout=120) as http:
        while (now := time.time()) < stop:
            if quiet := plan.quiet_for(now):
                time.sleep(min(quiet, stop - now))
                continue
            kind = str(rng.choice(kinds, p=weights))
            started = time.perf_counter()
            try:
                status = snapshot_round(http) if kind == "snapshot" else send(http, kind, rng)
            except httpx.TransportError as exc:
                status, detail = 0, f"{type(exc).__name__}: {exc}"
            else:
                detail = ""
            report.latencies[kind].append(time.perf_counter() - started)
            report.statuses[f"{kind} {status}"] += 1
            if not expected(kind, status) and len(report.failures) < 20:
                report.failures.append(f"{kind}: {status or detail}")
            if plan.pause:
                time.sleep(plan.pause)
    out.put(report)


def send(http: httpx.Client, kind: str, rng: np.random.Generator) -> int:
    method, path, body = a_request(kind, rng)
    response = http.request(method, path, json=body)
    if response.status_code >= 400 and not expected(kind, response.status_code):
        print_answer(kind, response)
    return response.status_code


def print_answer(kind: str, response: httpx.Response) -> None:
    print(f"soak: {kind} answered {response.status_code}: {response.text[:300]}", file=sys.stderr)


def snapshot_round(http: httpx.Client) -> int:
    """Make a snapshot, list the snapshots, download it and delete it (so the disk does not
    fill). Each answer is checked as it comes: a failure is reported by its own status, not
    hidden behind what the next request meets."""
    base = f"/collections/{COLLECTION}/snapshots"
    made = http.post(base)
    if made.status_code != 201:
        print_answer("snapshot", made)
        return made.status_code
    name = made.json()["name"]
    for method, path in (("GET", base), ("GET", f"{base}/{name}"), ("DELETE", f"{base}/{name}")):
        response = http.request(method, path)
        if not response.is_success:
            print_answer("snapshot", response)
            return response.status_code
    return made.status_code


def sample(pid: int, seconds: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    return Sample(
        seconds=round(seconds, 1),
        rss_mib=round(rss_kib / 1024, 1),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
    )


def sample_until(pid: int, every: float, done: threading.Event, into: list[Sample]) -> None:
    start = time.monotonic()
    while not done.wait(every):
        into.append(sample(pid, time.monotonic() - start))


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else None


def growth_problems(
    samples: list[Sample], warmup: float, rss_tolerance: float, fd_slack: int, thread_slack: int
) -> list[str]:
    """Growth after the warm-up, by the medians of the first and last thirds after it."""
    steady = [s for s in samples if s.seconds >= warmup]
    if len(steady) < 6:
        return [f"only {len(steady)} samples after the warm-up: run longer or sample more often"]
    third = len(steady) // 3
    first, last = steady[:third], steady[-third:]
    problems = []
    for name, slack in (("fds", fd_slack), ("threads", thread_slack)):
        before = statistics.median(getattr(s, name) for s in first)
        after = statistics.median(getattr(s, name) for s in last)
        if after > before + slack:
            problems.append(f"{name} grew from {before} to {after} (slack {slack})")
    rss_before = statistics.median(s.rss_mib for s in first)
    rss_after = statistics.median(s.rss_mib for s in last)
    if rss_after > rss_before * (1 + rss_tolerance):
        problems.append(
            f"RSS grew from {rss_before} MiB to {rss_after} MiB (tolerance {rss_tolerance:.0%})"
        )
    return problems


def at_marks(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """The samples nearest 5, 30 and 60 minutes (those the run reached) and the last one."""
    marks: dict[str, dict[str, Any]] = {}
    if not samples:
        return marks
    end = samples[-1].seconds
    for minutes in MARK_MINUTES:
        if minutes * 60 <= end:
            nearest = min(samples, key=lambda s: abs(s.seconds - minutes * 60))
            marks[f"{minutes} min"] = vars(nearest)
    marks["end"] = vars(samples[-1])
    return marks


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Soak: {report['minutes']} minutes, {report['clients']} client processes",
        "",
        f"Result: **{'pass' if report['passed'] else 'FAIL'}**"
        + "".join(f"; {p}" for p in report["problems"]),
        "",
        f"Requests: {report['requests']} ({report['requests_per_second']}/s);"
        f" unexpected answers: {report['unexpected']}; 5xx: {report['server_errors']};"
        f" failed connections: {report['transport_errors']}",
        "",
        "| kind | requests | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for kind, row in report["latency_ms"].items():
        lines.append(f"| {kind} | {row['requests']} | {row['p50']} | {row['p99']} |")
    lines += ["", "| at | seconds | RSS MiB | open fds | threads |", "|---|---:|---:|---:|---:|"]
    for mark, s in report["server_at"].items():
        lines.append(f"| {mark} | {s['seconds']} | {s['rss_mib']} | {s['fds']} | {s['threads']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="load time (default 60)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument(
        "--pause-ms", type=float, default=2.0, help="each client's pause between requests"
    )
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="sampling period")
    parser.add_argument("--busy-seconds", type=float, default=20.0, help="length of a burst")
    parser.add_argument(
        "--idle-seconds", type=float, default=11.0, help="quiet time after each burst"
    )
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        help="not judged for growth (default: a quarter of the run, at most 5 minutes)",
    )
    parser.add_argument(
        "--rss-tolerance", type=float, default=0.25, help="RSS growth allowed (default 0.25)"
    )
    parser.add_argument("--fd-slack", type=int, default=8, help="descriptor growth allowed")
    parser.add_argument("--thread-slack", type=int, default=8, help="thread growth allowed")
    parser.add_argument("--device", choices=["cpu", "auto"], default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for soak.json/md")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    warmup = 60 * (
        args.warmup_minutes if args.warmup_minutes is not None else min(5.0, args.minutes / 4)
    )

    with tempfile.TemporaryDirectory(prefix="vecserve-soak-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(Path(tmp) / "data", port, args.device)
        samples: list[Sample] = []
        done = threading.Event()
        try:
            seed_collection(url)
            sampler = threading.Thread(
                target=sample_until, args=(server.pid, args.sample_seconds, done, samples)
            )
            sampler.start()
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            plan = Plan(
                time.time() + 2,  # the clients' processes start meanwhile
                seconds,
                args.busy_seconds,
                args.idle_seconds,
                args.pause_ms / 1000,
            )
            clients = [
                context.Process(target=run_client, args=(url, plan, seed, queue))
                for seed in range(args.clients)
            ]
            for client in clients:
                client.start()
            reports: list[ClientReport] = [queue.get() for _ in clients]
            for client in clients:
                client.join()
            done.set()
            sampler.join()
            server_alive = server.poll() is None
        finally:
            done.set()
            server.terminate()
            server.wait(timeout=60)

    latencies: dict[str, list[float]] = {kind: [] for kind in MIX}
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    for report in reports:
        for kind, values in report.latencies.items():
            latencies[kind].extend(values)
        statuses.update(report.statuses)
        failures.extend(report.failures)
    requests = sum(statuses.values())
    server_errors = sum(n for key, n in statuses.items() if key.split()[1].startswith("5"))
    transport = sum(n for key, n in statuses.items() if key.split()[1] == "0")
    unexpected = sum(n for key, n in statuses.items() if not expected(*_kind_status(key)))
    problems = growth_problems(
        samples, warmup, args.rss_tolerance, args.fd_slack, args.thread_slack
    )
    if unexpected:
        problems.insert(0, f"{unexpected} unexpected answers, e.g. {failures[:5]}")
    if not server_alive:
        problems.insert(0, "the server died during the run")
    everything = [v for values in latencies.values() for v in values]
    report = {
        "minutes": args.minutes,
        "clients": args.clients,
        "warmup_seconds": warmup,
        "requests": requests,
        "requests_per_second": round(requests / seconds, 1),
        "bursts": {"busy_seconds": args.busy_seconds, "idle_seconds": args.idle_seconds},
        "unexpected": unexpected,
        "server_errors": server_errors,
        "transport_errors": transport,
        "statuses": dict(sorted(statuses.items())),
        "latency_ms": {
            kind: {
                "requests": len(values),
                "p50": percentile(values, 50),
                "p99": percentile(values, 99),
            }
            for kind, values in [*latencies.items(), ("all", everything)]
        },
        "server_at": at_marks(samples),
        "samples": [vars(s) for s in samples],
        "tolerances": {
            "rss": args.rss_tolerance,
            "fds": args.fd_slack,
            "threads": args.thread_slack,
        },
        "problems": problems,
        "passed": not problems,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "soak.md").write_text(markdown(report))
    print(markdown(report))
    if problems:
        print("SOAK FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def _kind_status(key: str) -> tuple[str, int]:
    kind, status = key.split()
    return kind, int(status)


if __name__ == "__main__":
    sys.exit(main())
