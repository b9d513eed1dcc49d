"""Facts about processes read from /proc (Linux), each with a portable fallback or None."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from actors.runtime import roster

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak; 0 if unknown."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def started_at(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, a unique identity."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def state_of(pid: int) -> str | None:
    """R, S, D, T (stopped), Z, ...; None if there is no such process."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def actor_started_at(pid: int, role: str) -> int | None:
    """The start time of `pid` if it is this machine's `python -m actors <role>` process, else
    None (a process elsewhere, in another pid namespace, or not that actor)."""
    if not roster.runs_role(cmdline(pid), role):
        return None
    return started_at(pid)


def has_exited(pid: int, started: int) -> bool:
    """The process that had `pid` and start time `started` is gone, or is a zombie."""
    fields = _stat_fields(pid)  # one read of /proc/PID/stat per beat
    return fields is None or int(fields[19]) != started or fields[0] == "Z"
