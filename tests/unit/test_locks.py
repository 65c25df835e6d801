"""The readers-writer lock: writers are not starved by readers, nor readers by a writer
that takes the lock again and again."""

from __future__ import annotations

import threading
import time

from indexer.locks import ReadWriteLock


def test_a_writer_taking_the_lock_again_and_again_lets_waiting_readers_in() -> None:
    lock = ReadWriteLock()
    stop = threading.Event()

    def chunked_writer() -> None:  # an index filled a chunk per hold, back to back
        while not stop.is_set():
            with lock.write():
                time.sleep(0.005)

    writer = threading.Thread(target=chunked_writer)
    writer.start()
    waits = []
    try:
        for _ in range(20):
            started = time.perf_counter()
            with lock.read():
                waits.append(time.perf_counter() - started)
    finally:
        stop.set()
        writer.join()
    # Each reader waits out at most the hold under way, never the writer's whole run.
    assert max(waits) < 0.5, max(waits)


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    reading = threading.Event()
    release = threading.Event()

    def first_reader() -> None:
        with lock.read():
            reading.set()
            release.wait()

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("reader")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    reading.wait()
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    while not lock._writers_waiting:
        time.sleep(0.001)
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join()
    assert order == ["writer", "reader"]
