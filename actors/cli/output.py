"""What every command prints: --json or text, times and durations, a job on one line.

Exit codes as everywhere in the CLI: 0 ok; 1 the call failed or timed out (with a hint);
2 usage error (UsageError).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


class UsageError(Exception):
    """A command line that cannot be run as given; main() prints it and exits 2."""


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON with --json, else the human-readable `text`."""
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str), flush=True)
    elif text:
        print(text, flush=True)


def when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def job_line(job: dict[str, Any]) -> str:
    total = job["duration_s"]
    progress = f"{job['chunks_done']} chunks"
    audio = f"{job['audio_done_s']:.1f}/{fmt_s(total)}"
    error = f"  {job['error']}" if job["error"] else ""
    return (
        f"{job['id']}  {job['state']:<9} {job['priority']:<6} {progress:<10} {audio:<14} "
        f"{job['label']}{error}"
    )
