"""The transcriber's test pause point: hold a window in flight for as long as a test needs.

Off unless `transcriber.pause_file` names a path (tests set it; users never need it). When a
window arrives and that file exists, and the `key=value` filters in it match the window
(`job=ID`, `chunk=N`; none: any window), the transcriber claims the file by renaming it to
`PATH.held.PID`, logs `paused_for_test` and stops itself with SIGSTOP before decoding. The
test does what it came to do with the window in flight (a SIGTERM, a key press, a kill) and
sends SIGCONT; from there on it is the transcriber's real code path. A file is claimed once,
by one process, so a window re-dispatched elsewhere is not held again.

A stopped process sends no heartbeats: a hold longer than the scheduler's liveness
(3 x 1 s by default) makes the scheduler declare the transcriber lost, which is what a test of
that wants and what every other test must avoid.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


def parse(text: str) -> dict[str, str]:
    """The filters of an armed pause file: `key=value` per line, blank lines ignored."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def matches(filters: dict[str, str], job_id: str, chunk: int) -> bool:
    return filters.get("job", job_id) == job_id and filters.get("chunk", str(chunk)) == str(chunk)


def held_path(armed: Path, pid: int) -> Path:
    return armed.with_name(f"{armed.name}.held.{pid}")


def maybe_pause(armed: str, job_id: str, chunk: int, log: Any) -> bool:
    """Stop this process if `armed` exists and matches the window; True if it did (and has
    been continued since)."""
    if not armed:
        return False
    path = Path(armed)
    try:
        filters = parse(path.read_text())
    except FileNotFoundError:
        return False
    if not matches(filters, job_id, chunk):
        return False
    try:
        path.rename(held_path(path, os.getpid()))
    except FileNotFoundError:  # another transcriber claimed it first
        return False
    log.warning("paused_for_test", job=job_id, chunk=chunk, pause_file=armed)
    os.kill(os.getpid(), signal.SIGSTOP)
    log.info("continued_after_test_pause", job=job_id, chunk=chunk)
    return True
