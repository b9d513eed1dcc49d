"""Test pause points: hold a window (or a plan) in flight for as long as a test needs.

Off unless `testing.pause_file` names a path (tests set it; users never need it). Two points
look at that file: the transcriber on receiving a window (`at=window`, the index is the
window's) and ingest before sending each batch of a job's speech spans after the first
(`at=plan`, the index counts batches from 0). When the file exists and its `key=value` lines
match (`at`, `job=ID`, `index=N`; an absent key matches anything, `at` defaults to window),
the actor claims the file by renaming it to `PATH.held.PID`, logs `paused_for_test` and stops
itself with SIGSTOP. The test does what it came to do with the work in flight (a SIGTERM, a
key press, a kill) and sends SIGCONT; from there on it is the actor's real code path. A file
is claimed once, by one process, so work re-dispatched elsewhere is not held again.

A stopped process sends no heartbeats: a hold longer than the scheduler's liveness
(3 x 1 s by default) makes the scheduler declare the actor lost, which is what a test of
that wants and what every other test must avoid.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any


def parse(text: str) -> dict[str, str]:
    """The filters of an armed pause file: `key=value` per line, blank lines ignored."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def matches(filters: dict[str, str], at: str, job_id: str, index: int) -> bool:
    return (
        filters.get("at", "window") == at
        and filters.get("job", job_id) == job_id
        and filters.get("index", str(index)) == str(index)
    )


def held_path(armed: Path, pid: int) -> Path:
    return armed.with_name(f"{armed.name}.held.{pid}")


def holders(armed: Path) -> list[tuple[int, Path]]:
    """(pid, claimed file) of every process that has claimed `armed`."""
    return [(int(p.name.rpartition(".")[2]), p) for p in sorted(armed.parent.glob(f"{armed.name}.held.*"))]


def maybe_pause(armed: str, at: str, job_id: str, index: int, log: Any) -> bool:
    """Stop this process if `armed` exists and matches; True if it did (and has been
    continued since)."""
    if not armed:
        return False
    path = Path(armed)
    try:
        filters = parse(path.read_text())
    except FileNotFoundError:
        return False
    if not matches(filters, at, job_id, index):
        return False
    try:
        path.rename(held_path(path, os.getpid()))
    except FileNotFoundError:  # another process claimed it first
        return False
    log.warning("paused_for_test", at=at, job=job_id, index=index, pause_file=armed)
    # At this thread, not the process: a process-directed SIGSTOP stops the other threads
    # soon, but lets this one run on for a while; a thread-directed one stops it here.
    signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
    log.info("continued_after_test_pause", at=at, job=job_id, index=index)
    return True
