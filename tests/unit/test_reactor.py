"""The one member loop (actors/runtime/reactor.py), in-process with a socket pair for a member's
socket and no scheduler: handlers run when their socket is readable, a handler that raises is
logged and the loop goes on, timers run on time, SIGTERM ends the loop and on_stop runs."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from actors.runtime.config import Config
from actors.runtime.reactor import Member


class Probe(Member):
    ROLE = "probe"

    def __init__(self, cfg: Config) -> None:
        import structlog

        super().__init__(cfg, structlog.get_logger())
        self.reader, self.writer = socket.socketpair()
        self.received: list[bytes] = []
        self.ticks = 0
        self.stopped_with: list[bytes] | None = None

    def on_start(self) -> None:
        self.watch(self.reader, self.on_bytes)
        self.every(0.05, self.tick)

    def on_bytes(self) -> None:
        data = self.reader.recv(64)
        self.received.append(data)
        if data == b"boom":
            raise RuntimeError("a handler bug")
        if data == b"stop":
            os.kill(os.getpid(), signal.SIGTERM)  # as supervisord stops a member

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks == 3:
            self.writer.send(b"boom")
        elif self.ticks == 6:
            self.writer.send(b"after")
        elif self.ticks == 9:
            self.writer.send(b"stop")

    def on_stop(self) -> None:
        self.stopped_with = list(self.received)
        self.reader.close()
        self.writer.close()


@pytest.fixture
def restored_signals() -> Iterator[None]:
    """Member.run installs SIGTERM/SIGINT handlers and a wake-up fd: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
    signal.set_wakeup_fd(-1)


def test_the_loop_survives_a_crashing_handler_runs_timers_and_stops_on_sigterm(
    tmp_path: Path, restored_signals: Any
) -> None:
    cfg = Config.load(path=tmp_path / "none.toml", overrides=[f"paths.runtime_dir={tmp_path}/r"])
    probe = Probe(cfg)
    started = time.monotonic()
    with capture_logs() as logs:
        probe.run()  # returns only once SIGTERM has ended the loop
    elapsed = time.monotonic() - started
    assert probe.received == [b"boom", b"after", b"stop"], "the loop went on after the crash"
    assert probe.stopped_with == probe.received, "on_stop ran after the last handler"
    assert probe.ticks >= 9 and elapsed >= 8 * 0.05, (probe.ticks, elapsed)  # 9 ticks: 8 intervals
    crashed = [e for e in logs if e["event"] == "member_step_crashed"]
    assert len(crashed) == 1 and crashed[0]["step"] == "handler"
    assert logs[-1]["event"] == "stopped"
