"""`pytest -m unit` run as a maintainer would, the machine watched while it runs: no actor
process and no socket file appear, and it ends within a minute."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from actors.runtime import procinfo
from tests.support.harness import REPO
from tests.support.tiers import is_actor_module

UNIT_TIER_BUDGET_S = 60.0


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = procinfo.parent_of(pid) or 0
    return False


def actor_processes_under(ancestor: int) -> set[int]:
    """Pids of processes below `ancestor` running one of our actors now."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if any(is_actor_module(a) for a in procinfo.cmdline(pid)) and descends_from(pid, ancestor):
            pids.add(pid)
    return pids


@pytest.mark.stack
def test_the_unit_tier_runs_in_under_a_minute_and_starts_no_actor() -> None:
    """Runs `pytest -m unit` as a maintainer would and watches the machine while it runs: no
    actor process appears, no ipc socket file is made, and it ends well inside its budget."""
    tmp_path = Path(tempfile.mkdtemp(prefix="ut", dir="/tmp"))  # short: unit paths must fit
    started = time.monotonic()
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "unit",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: set[int] = set()
    while run.poll() is None:
        seen |= actor_processes_under(run.pid)
        time.sleep(0.02)  # a sampling interval while watching, not a synchronisation
    elapsed = time.monotonic() - started
    out = run.stdout.read() if run.stdout else ""
    sockets = [p for p in tmp_path.rglob("*") if p.is_socket()]
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert run.returncode == 0, out[-3000:]
    assert " passed" in out.splitlines()[-1] and "deselected" in out.splitlines()[-1], out[-500:]
    assert not seen, f"actor processes started by the unit tier: {seen}"
    assert not sockets, f"ipc socket files appeared: {sockets}"
    assert elapsed < UNIT_TIER_BUDGET_S, f"the unit tier took {elapsed:.1f} s"
    print(f"\nunit tier: {out.splitlines()[-1]} ({elapsed:.1f} s with interpreter start)")
