"""Warden actor: turns "alive but not answering" into "dead", for the supervisor to repair.

A worker stopped with SIGSTOP, or deadlocked, keeps its process (so its supervisor sees it
RUNNING) while the scheduler expires it for missed heartbeats. The warden subscribes to
`worker.lost`; if the lost peer is a sibling process (same parent: the same supervisor) that
runs that actor's module and has not registered again, it sends SIGKILL, and the supervisor
starts a fresh one. It also pings the scheduler: one that has not answered for
`warden.scheduler_timeout_s` is killed the same way. SPEC.md 18.4.
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

from actors import entry, procinfo
from actors.client import Client, ClientError, Reporter, queued_events
from actors.config import Config
from actors.link import SchedulerLink
from protocol.control import Ping, Report


@dataclass
class Suspect:
    """A peer the scheduler declared lost, judged once `due` comes."""

    role: str
    pid: int
    why: str
    due: float


class Warden:
    def __init__(self, cfg: Config, log: Any) -> None:
        self.cfg = cfg
        self.log = log
        self.interval_s = float(cfg.get("scheduler.heartbeat_interval_s"))
        self.grace_s = self.interval_s * int(cfg.get("scheduler.heartbeat_liveness"))
        self.scheduler_timeout_s = float(cfg.get("warden.scheduler_timeout_s"))
        self.host = socket.gethostname()
        self.parent = os.getppid()
        self.link = SchedulerLink(cfg, "warden", log)
        self.client = Client(cfg, timeout_s=min(1.0, self.interval_s), name="warden")
        self.reporter = Reporter(cfg, "warden")
        self.suspects: list[Suspect] = []
        self.scheduler: tuple[int, int | None] | None = None
        """(pid, start time) of the scheduler that last answered."""
        self.scheduler_ok_at = time.monotonic()
        self.running = True

    def stop(self, *_: Any) -> None:
        self.running = False

    # --- judging ------------------------------------------------------------------------

    def sibling_actor(self, pid: int, role: str) -> bool:
        """Our supervisor's child running actors.<role>: the only processes we may kill."""
        return procinfo.parent_of(pid) == self.parent and f"actors.{role}" in procinfo.cmdline(pid)

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
        self.reporter.report(
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

    # --- loop ---------------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        sub = self.client.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"worker.lost")
        sub.connect(self.cfg.endpoint("events"))  # connects before the scheduler binds, too
        self.link.start()
        self.log.info("watching", parent=self.parent, scheduler_timeout_s=self.scheduler_timeout_s)
        ping_at = 0.0
        while self.running:
            poller = zmq.Poller()
            poller.register(sub, zmq.POLLIN)
            if self.link.socket is not None:
                poller.register(self.link.socket, zmq.POLLIN)
            wait_ms = min(self.link.timeout_ms(), max(0, int((ping_at - time.monotonic()) * 1000)), 200)
            ready = dict(poller.poll(wait_ms))
            if sub in ready:
                for event in queued_events(sub):
                    if event.kind == "lost":
                        self.on_lost(event.data)
            if self.link.socket is not None and self.link.socket in ready:
                self.link.on_readable()
            self.link.tick()
            self.judge_suspects()
            if time.monotonic() >= ping_at:
                ping_at = time.monotonic() + self.interval_s
                self.check_scheduler()
        sub.close(linger=0)
        self.reporter.close()
        self.client.close()
        self.link.leave()
        self.log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    cfg, log = entry.start("warden", __doc__, argv)
    Warden(cfg, log).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
