"""`sottovoce run`: every actor as a child process in the foreground, for a quick local
run. A child that dies is started again (with back-off); Ctrl+C or SIGTERM stops them all,
scheduler last. The supervisor-launched stack (deploy/) is the long-running way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from actors.runtime import roster
from actors.runtime.client import Client, ClientError
from actors.runtime.config import Config
from protocol.control import Ping
from protocol.vocab import ROSTER

STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0
RESTART_MAX_S = 30.0
POLL_S = 0.2


class Runner:
    def __init__(self, cfg: Config, actors: tuple[str, ...] = ROSTER, out: Any = sys.stderr) -> None:
        self.cfg = cfg
        self.actors = actors
        self.out = out
        self.env = {**os.environ, **cfg.as_env()}
        if cfg.path is not None:
            self.env["SOTTOVOCE_CONFIG"] = str(cfg.path)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.backoff: dict[str, float] = dict.fromkeys(actors, 1.0)
        self.restart_at: dict[str, float] = {}
        self.stopping = False

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def spawn(self, name: str) -> None:
        # each actor dies with us (process.die_with_parent)
        self.procs[name] = subprocess.Popen(roster.command(name), env=self.env)

    def already_running(self) -> bool:
        client = Client(self.cfg, timeout_s=1.0, name="run")
        try:
            client.call(Ping(actor="scheduler"))
            return True
        except ClientError:
            return False
        finally:
            client.close()

    def wait_ready(self) -> bool:
        """True once the scheduler answers and every worker role is connected."""
        client = Client(self.cfg, timeout_s=2.0, name="run")
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = [a for a in self.actors if a != "scheduler"]
        try:
            while time.monotonic() < deadline and not self.stopping:
                if any(p.poll() is not None for p in self.procs.values()):
                    return False
                try:
                    client.call(Ping(actor="scheduler"))
                    waiting = [a for a in waiting if not self._connected(client, a)]
                    if not waiting:
                        return True
                except ClientError:
                    pass
                time.sleep(POLL_S)
        finally:
            client.close()
        return False

    def degraded(self) -> list[str]:
        """One line per actor that runs but cannot do its job (no display, no microphone)."""
        client = Client(self.cfg, timeout_s=2.0, name="run")
        lines = []
        try:
            for actor in self.actors[1:]:
                try:
                    for w in client.call(Ping(actor=actor))["workers"]:
                        if w["health"] != "ok":
                            lines.append(f"{actor} is degraded: {w['detail']}")
                except ClientError:
                    pass
        finally:
            client.close()
        return lines

    @staticmethod
    def _connected(client: Client, actor: str) -> bool:
        try:
            client.call(Ping(actor=actor))
            return True
        except ClientError:
            return False

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        if self.already_running():
            self.say(
                f"sottovoce: a stack is already running on {self.cfg.runtime_dir}; "
                "stop it first, or set paths.runtime_dir and paths.data_dir for a second one"
            )
            return 1
        for name in self.actors:
            self.spawn(name)
        if self.wait_ready():
            self.say(
                f"sottovoce is running ({', '.join(self.actors)}); sockets in "
                f"{self.cfg.runtime_dir}, data in {self.cfg.data_dir}. Ctrl+C stops it."
            )
            for line in self.degraded():
                self.say(f"sottovoce: {line}")
        elif not self.stopping:
            self.say(
                "sottovoce: not every actor came up; see the logs in "
                f"{self.cfg.log_dir}. Restarting what exited."
            )
        while not self.stopping:
            now = time.monotonic()
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                if name not in self.restart_at:
                    self.say(
                        f"sottovoce: {name} exited with {code}; restarting in {self.backoff[name]:.0f} s"
                    )
                    self.restart_at[name] = now + self.backoff[name]
                    self.backoff[name] = min(self.backoff[name] * 2, RESTART_MAX_S)
                elif now >= self.restart_at[name]:
                    del self.restart_at[name]
                    self.spawn(name)
            time.sleep(POLL_S)
        return self.shutdown()

    def shutdown(self) -> int:
        for name in reversed(self.actors):
            proc = self.procs.get(name)
            if proc and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.say("sottovoce: stopped")
        return 0
