"""The test pause points (actors/runtime/pausepoint.py): which work an armed file holds, that one
process claims it once, and that the process is stopped at the point itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from actors.runtime import pausepoint, procinfo
from tests.support.harness import REPO, poll


def test_filters_match_the_point_the_job_and_the_index() -> None:
    filters = pausepoint.parse("at=plan\njob=abc\n\nindex=1\n")
    assert filters == {"at": "plan", "job": "abc", "index": "1"}
    assert pausepoint.matches(filters, "plan", "abc", 1)
    assert not pausepoint.matches(filters, "window", "abc", 1)
    assert not pausepoint.matches(filters, "plan", "abd", 1)
    assert not pausepoint.matches(filters, "plan", "abc", 2)
    assert pausepoint.matches({}, "window", "any", 7), "an empty file holds the next window"
    assert not pausepoint.matches({}, "plan", "any", 1), "the point defaults to window"


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: object) -> None:
        self.events.append(event)

    info = warning


def test_off_unarmed_or_not_matching_it_does_nothing(tmp_path: Path) -> None:
    log = Log()
    armed = tmp_path / "pause"
    assert not pausepoint.maybe_pause("", "window", "j", 0, log)
    assert not pausepoint.maybe_pause(str(armed), "window", "j", 0, log)
    armed.write_text("index=3\n")
    assert not pausepoint.maybe_pause(str(armed), "window", "j", 0, log)
    assert armed.exists() and log.events == [], "left armed for the window it names"


def test_the_process_stops_at_the_point_and_claims_the_file_once(tmp_path: Path) -> None:
    armed = tmp_path / "pause"
    armed.write_text("at=plan\njob=j1\n")
    script = (
        "import sys, threading\n"
        "from actors.runtime import pausepoint\n"
        "class Log:\n"
        "    def warning(self, *a, **k): pass\n"
        "    info = warning\n"
        "def work():\n"  # in another thread, as in the actors: the task thread pauses
        "    held = pausepoint.maybe_pause(sys.argv[1], 'plan', 'j1', 1, Log())\n"
        "    print('after', held, flush=True)\n"
        "    print('again', pausepoint.maybe_pause(sys.argv[1], 'plan', 'j1', 2, Log()), flush=True)\n"
        "t = threading.Thread(target=work)\n"
        "t.start()\n"
        "t.join()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(armed)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        poll(lambda: procinfo.state_of(proc.pid) == "T", 30, what="the process to stop itself")
        claimed = pausepoint.held_path(armed, proc.pid)
        assert claimed.exists() and not armed.exists()
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        try:
            early = os.read(fd, 100)
        except BlockingIOError:
            early = b""
        os.set_blocking(fd, True)
        assert early == b"", f"the paused thread ran on past the point: {early!r}"
        os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.splitlines() == ["after True", "again False"], "held once, then it goes on"
