"""`sottovoce run`: starts the core actors, refuses a second copy, stops cleanly on Ctrl+C
(SIGINT) and leaves no child behind even when it is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from protocol.vocab import ROSTER
from tests.support.harness import REPO, Stack, as_in_a_terminal, poll

pytestmark = pytest.mark.stack


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = open(f"/proc/{pid}/stat").read().split()  # noqa: SIM115 - one read
    return stat[2] != "Z"


def start_run(stack: Stack) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "actors.cli", "run"],
        env=stack.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=as_in_a_terminal,
    )


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_run_starts_the_stack_and_stops_it(how: str) -> None:
    with Stack() as stack:
        run = start_run(stack)
        try:
            stack.wait_ready()  # scheduler, ingest and transcriber all answer
            kids = poll(lambda: children(run.pid) if len(children(run.pid)) == len(ROSTER) else None, 30)
            second = stack.cli("run", timeout_s=60)
            assert second.returncode == 1 and "already running" in second.stderr
            run.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
            run.wait(timeout=30)
            poll(lambda: not any(alive(k) for k in kids), 30, what="the actors to exit")
            if how == "sigint":
                assert run.returncode == 0
                assert not (stack.cfg.runtime_dir / "control").exists()
        finally:
            if run.poll() is None:
                run.kill()


def test_a_second_scheduler_on_the_same_store_is_refused() -> None:
    with Stack() as stack:
        stack.start("scheduler")
        stack.wait_ready(roles=())
        env = {**stack.env, "SOTTOVOCE_PATHS_RUNTIME_DIR": str(stack.root / "run2")}
        second = subprocess.run(
            [sys.executable, "-m", "actors", "scheduler"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already uses this data dir" in second.stderr
        assert stack.procs["scheduler"].poll() is None
