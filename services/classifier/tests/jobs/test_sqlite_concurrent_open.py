"""Several processes opening one new SQLite job store at once, as the uvicorn workers of a fresh
data folder do at start-up: every one of them gets the store (switching a new database to WAL
answered "database is locked" to the loser of the race, which stopped the whole server)."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

from classifier.jobs.sqlite_store import SQLiteJobStore

PROCESSES = 8
RUNS = 30


def _open(path: str, barrier: Barrier, delay_s: float) -> str:
    barrier.wait()
    time.sleep(delay_s)  # spread over the few milliseconds the first one takes to set up
    try:
        store = SQLiteJobStore(Path(path))
    except Exception as exc:  # reported to the test, which names it
        return f"{type(exc).__name__}: {exc}"
    mode = store._connection().execute("PRAGMA journal_mode").fetchone()[0]
    return str(mode)


def test_processes_opening_a_new_store_together_all_get_it_in_wal_mode(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    delays = [index * 0.0002 for index in range(PROCESSES)]
    with context.Manager() as manager, context.Pool(PROCESSES) as pool:
        for attempt in range(RUNS):
            path = tmp_path / f"jobs-{attempt}.sqlite3"
            barrier = manager.Barrier(PROCESSES)
            arguments = [(str(path), barrier, delay) for delay in delays]
            modes = pool.starmap(_open, arguments)
            assert modes == ["wal"] * PROCESSES, f"run {attempt}"
