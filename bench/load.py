"""A lean closed-loop HTTP/1.1 load generator, run in a process of its own.

    python -m bench.load URL PATH BODIES_FILE CLIENTS SECONDS [WARMUP_SECONDS] [--get]

``CLIENTS`` keep-alive connections each POST the bodies of ``BODIES_FILE`` (one JSON body
a line) to ``PATH`` in turn, sending the next request as soon as the last is answered, for
``WARMUP_SECONDS`` and then ``SECONDS`` more. With ``--get``, each line of the file is
instead a path (with its query string) to GET, and ``PATH`` is unused. Printed as JSON:
``latencies`` (seconds) of the requests started after the warm-up, and ``requests``, all
requests sent, warm-up included (to divide the server's CPU time by). Any answer but 200
stops it with its status and the start of its body.

Why not httpx: on a 2-core machine an httpx client running 32 connections in one event
loop costs more CPU per request than the server does, so it measures itself. This one
writes a prepared request and reads the answer by its Content-Length (the service always
sends one), and runs in its own process so that it competes with the server only for
cores, not for the interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit


async def closed_loop(
    url: str,
    path: str,
    bodies: list[bytes],
    clients: int,
    seconds: float,
    warmup: float,
    *,
    get: bool = False,
) -> tuple[list[float], int]:
    """Latencies after the warm-up, and the count of all requests sent."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if get:
        requests = [
            f"GET {line.decode()} HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode()
            for line in bodies
        ]
    else:
        requests = [
            (
                f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for body in bodies
        ]
    start = time.perf_counter() + warmup
    stop = start + seconds
    latencies: list[float] = []
    sent = 0

    async def client(c: int) -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, port)
        i = c
        try:
            while (now := time.perf_counter()) < stop:
                sent += 1
                writer.write(requests[i % len(requests)])
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"{path}: {status} {body[:200]!r}")
                if now >= start:
                    latencies.append(time.perf_counter() - now)
                i += clients
        finally:
            writer.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return latencies, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the service, http://host:port")
    parser.add_argument("path", help="the path to POST to, e.g. /collections/c/search")
    parser.add_argument("bodies_file", type=Path, help="JSON bodies, one a line")
    parser.add_argument("clients", type=int, help="keep-alive connections")
    parser.add_argument("seconds", type=float, help="measured seconds")
    parser.add_argument("warmup", type=float, nargs="?", default=0.5, help="seconds before")
    parser.add_argument("--get", action="store_true", help="the file's lines are paths to GET")
    args = parser.parse_args()
    bodies = args.bodies_file.read_bytes().splitlines()
    latencies, sent = asyncio.run(
        closed_loop(
            args.url, args.path, bodies, args.clients, args.seconds, args.warmup, get=args.get
        )
    )
    print(json.dumps({"latencies": latencies, "requests": sent}))


if __name__ == "__main__":
    main()
