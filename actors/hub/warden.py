"""Warden actor: turns "alive but not answering" into "dead", for the supervisor to repair.

A worker stopped with SIGSTOP, or deadlocked, keeps its process (so its supervisor sees it
RUNNING) while the scheduler expires it for missed heartbeats. The warden subscribes to
`worker.lost`; if the lost peer is a sibling process (same parent: the same supervisor) that
runs that actor's module and has not registered again, it sends SIGKILL, and the supervisor
starts a fresh one. It also pings the scheduler: one that has not answered for
`warden.scheduler_timeout_s` is killed the same way. SPEC.md 14.3.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import zmq

from actors.runtime import process, procinfo, roster
from actors.runtime.client import Client, ClientError, queued_events
from actors.runtime.config import Config
from actors.runtime.reactor import Member
from protocol.control import Ping, Report
from protocol.vocab import Role

JUDGE_POLL_MS = 200
"""How often suspects whose time has come are judged."""


@dataclass
class Suspect:
    """A peer the scheduler declared lost, judged once `due` comes."""

    role: str
    pid: int
    why: str
    due: float


class Warden(Member):
    ROLE = Role.WARDEN

    def __init__(self, cfg: Config, log: Any) -> None:
        super().__init__(cfg, log)
        self.interval_s = float(cfg.get("scheduler.heartbeat_interval_s"))
        self.grace_s = self.interval_s * int(cfg.get("scheduler.heartbeat_liveness"))
        self.scheduler_timeout_s = float(cfg.get("warden.scheduler_timeout_s"))
        self.host = socket.gethostname()
        self.parent = os.getppid()
        self.client = Client(cfg, timeout_s=min(1.0, self.interval_s), name="warden")
        self.suspects: list[Suspect] = []
        self.scheduler: tuple[int, int | None] | None = None
        """(pid, start time) of the scheduler that last answered."""
        self.scheduler_ok_at = time.monotonic()
        self.sub: zmq.Socket | None = None

    # --- judging ------------------------------------------------------------------------

    def sibling_actor(self, pid: int, role: str) -> bool:
        """Our supervisor's child running `python -m actors <role>`: the only processes we may kill."""
        return procinfo.parent_of(pid) == self.parent and roster.runs_role(procinfo.cmdline(pid), role)

    def on_lost(self, data: dict[str, Any]) -> None:
        role, pid = str(data.get("role", "")), data.get("pid")
        if data.get("host") != self.host or not isinstance(pid, int) or role == "warden":
            return
        # A stopped process is hung for sure; any other gets the time a live one needs to
        # notice a silent scheduler and say READY again on a new socket.
        stopped = procinfo.state_of(pid) == "T"
        due = time.monotonic() + (0.0 if stopped else self.grace_s + self.interval_s)
        self.suspects.append(Suspect(role, pid, str(data.get("why", "")), due))

    def judge_suspects(self) -> None:
        now = time.monotonic()
        for suspect in [s for s in self.suspects if s.due <= now]:
            self.suspects.remove(suspect)
            if not self.sibling_actor(suspect.pid, suspect.role):
                continue  # gone already (the supervisor restarts it), or not ours to kill
            stopped = procinfo.state_of(suspect.pid) == "T"
            registered = self.registered_pids(suspect.role)
            if registered is None and not stopped:
                # the scheduler does not answer, so whether the worker came back is unknown:
                # judge it again later (a hung scheduler is check_scheduler's business)
                suspect.due = now + self.interval_s
                self.suspects.append(suspect)
                continue
            if registered is not None and suspect.pid in registered and not stopped:
                self.log.info("suspect_recovered", role=suspect.role, pid=suspect.pid)
                continue
            self.kill(suspect.role, suspect.pid, f"lost by the scheduler ({suspect.why})")

    def registered_pids(self, role: str) -> set[int] | None:
        """Pids of the scheduler's registered `role` workers; None if it does not answer."""
        try:
            return {w["pid"] for w in self.client.call(Ping(actor=role))["workers"]}
        except ClientError:
            return None

    def kill(self, role: str, pid: int, why: str) -> None:
        self.log.warning("killing", role=role, pid=pid, why=why, state=procinfo.state_of(pid))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.link.send(
            Report(kind="killed", job_id="", data={"role": role, "pid": pid, "why": why, "host": self.host})
        )

    def check_scheduler(self) -> None:
        """Ping; kill the scheduler we knew if it has not answered for the timeout."""
        try:
            data = self.client.call(Ping(actor="scheduler"))
            self.scheduler = (int(data["pid"]), procinfo.started_at(int(data["pid"])))
            self.scheduler_ok_at = time.monotonic()
            return
        except ClientError:
            pass
        if self.scheduler is None or time.monotonic() - self.scheduler_ok_at < self.scheduler_timeout_s:
            return
        pid, started = self.scheduler
        if procinfo.started_at(pid) == started and self.sibling_actor(pid, "scheduler"):
            self.kill("scheduler", pid, f"no answer to ping for {self.scheduler_timeout_s:.0f} s")
        self.scheduler = None  # judge the next one afresh

    # --- the member's hooks ---------------------------------------------------------------

    def on_start(self) -> None:
        self.sub = self.client.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"worker.lost")
        self.sub.connect(self.cfg.endpoint("events"))  # connects before the scheduler binds, too
        self.watch(self.sub, self.on_events)
        self.every(self.interval_s, self.check_scheduler)
        self.log.info("watching", parent=self.parent, scheduler_timeout_s=self.scheduler_timeout_s)

    def on_events(self) -> None:
        assert self.sub is not None
        for event in queued_events(self.sub):
            if event.kind == "lost":
                self.on_lost(event.data)

    def poll_ms(self) -> int:
        return JUDGE_POLL_MS

    def on_turn(self) -> None:
        self.judge_suspects()

    def on_stop(self) -> None:
        if self.sub is not None:
            self.sub.close(linger=0)
        self.client.close()


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("warden", __doc__, argv)
    Warden(cfg, log).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
