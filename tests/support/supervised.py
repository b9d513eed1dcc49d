"""A background stack (`sottovoce up`) in a private temp dir, for tests and benchmarks: its own
runtime, data, HOME and XDG dirs, and on the way out `down`, then SIGKILL for anything still
running with its runtime dir, so no supervisord is ever left behind."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.harness import Stack

DOWN_TIMEOUT_S = 240.0  # down's own deadline is the sum of stopwaitsecs (170 s) plus a margin


def our_processes(run_dir: Path) -> list[int]:
    """Live processes (not zombies) started with this stack's runtime dir in their environment:
    supervisord and every actor it started."""
    marker = f"SOTTOVOCE_PATHS_RUNTIME_DIR={run_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def sockets(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.is_socket())


@contextlib.contextmanager
def background(
    settings: dict[str, Any] | None = None, env: dict[str, str | None] | None = None
) -> Iterator[Stack]:
    """A private place for a background stack (`env`: extra variables, None removes one);
    `down` (then SIGKILL) on the way out."""
    stack = Stack(settings)
    home = stack.root / "home"
    stack.env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_RUNTIME_DIR": str(stack.root / "xdg"),
        }
    )
    for name, value in (env or {}).items():
        if value is None:
            stack.env.pop(name, None)
        else:
            stack.env[name] = value
    try:
        yield stack
    finally:
        try:
            stack.cli("down", timeout_s=DOWN_TIMEOUT_S)
        finally:
            for pid in our_processes(stack.cfg.runtime_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stack.cleanup()


def headless() -> dict[str, str | None]:
    """No display, no sound server (a server, CI)."""
    return {"DISPLAY": None, "WAYLAND_DISPLAY": None, "PULSE_SERVER": "unix:/nonexistent/native"}
