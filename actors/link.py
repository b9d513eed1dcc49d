"""A member's presence on the scheduler's work endpoint (SPEC.md 16.1).

Push-to-talk actors (audio, hotkey, deliver) say READY with their role and heartbeat both
ways like workers (Section 11), carrying their health, but never take tasks. Unlike the
worker loop, this link never blocks: the owning actor polls `socket` alongside its own
sockets, calls `on_readable()` when it is readable and `tick()` every turn. `start()` sends
the first READY: an actor calls it once it can serve (listener up, device tried), so being
registered means being ready; health set before that travels in the READY.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import zmq

from actors.config import Config
from actors.procinfo import rss_bytes
from protocol import ProtocolError, decode, encode
from protocol.records import Record
from protocol.work import Disconnect, Heartbeat, Ready

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 8.0


class SchedulerLink:
    def __init__(self, cfg: Config, role: str, log: Any) -> None:
        self.cfg = cfg
        self.role = role
        self.log = log
        self.name = f"{role}@{socket.gethostname()}:{os.getpid()}"
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.interval_s = float(cfg.get("scheduler.heartbeat_interval_s"))
        self.liveness_max = int(cfg.get("scheduler.heartbeat_liveness"))
        self.health, self.detail = "ok", ""
        self.socket: zmq.Socket | None = None
        self.liveness = self.liveness_max
        self.reconnect_s = RECONNECT_MIN_S
        self.reconnect_at: float | None = None
        self.heartbeat_at = 0.0
        self.started = False
        self.after_ready: Callable[[], list[Record]] | None = None
        """What to say again after every READY (the audio actor's holds, SPEC.md 19.1)."""

    def start(self) -> None:
        self.started = True
        self._connect()

    def _connect(self) -> None:
        self.close()
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.cfg.endpoint("work"))
        self.liveness = self.liveness_max
        self.heartbeat_at = time.monotonic() + self.interval_s
        self._send(
            Ready(
                role=self.role,
                name=self.name,
                pid=os.getpid(),
                health=self.health,
                detail=self.detail,
                rss=rss_bytes(),
            )
        )
        for record in self.after_ready() if self.after_ready else []:
            self._send(record)

    def _send(self, record: Record) -> None:
        if self.socket is not None:
            self.socket.send_multipart([b"", encode(record, self.name)])

    def send(self, record: Record) -> bool:
        """Send on the member socket once registered; False if there is none right now."""
        if not self.started or self.socket is None:
            return False
        self._send(record)
        return True

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    def leave(self) -> None:
        """Stopping: tell the scheduler (SPEC.md 18.2; a member holds no task), then close."""
        if self.socket is not None and self.reconnect_at is None:
            self._send(Disconnect(reason="stopping"))
            self.socket.close(linger=500)
            self.socket = None

    def set_health(self, health: str, detail: str = "") -> None:
        """Record our health; the scheduler hears of a change at once."""
        if (health, detail) == (self.health, self.detail):
            return
        self.health, self.detail = health, detail
        if self.started:
            self._send(Heartbeat(health=health, detail=detail))

    def on_readable(self) -> None:
        """Read what the scheduler sent: any message proves it alive."""
        assert self.socket is not None
        while self.socket is not None:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.liveness, self.reconnect_s = self.liveness_max, RECONNECT_MIN_S
            try:
                _, record = decode(frames[-1])
            except ProtocolError as exc:
                self.log.warning("bad_frame", code=str(exc.code), reason=exc.reason)
                continue
            if isinstance(record, Disconnect):
                self.log.info("disconnected", reason=record.reason)
                self._connect()

    def tick(self) -> None:
        """Heartbeat when due; after `liveness` silent beats, reconnect with back-off."""
        now = time.monotonic()
        if not self.started:
            return
        if self.reconnect_at is not None:
            if now >= self.reconnect_at:
                self.reconnect_at = None
                self._connect()
            return
        if now < self.heartbeat_at:
            return
        self.heartbeat_at = now + self.interval_s
        self.liveness -= 1
        if self.liveness <= 0:
            self.log.warning("scheduler_silent", reconnect_in_s=self.reconnect_s)
            self.close()
            self.reconnect_at = now + self.reconnect_s
            self.reconnect_s = min(self.reconnect_s * 2, RECONNECT_MAX_S)
            return
        self._send(Heartbeat(health=self.health, detail=self.detail, rss=rss_bytes()))

    def timeout_ms(self) -> int:
        """Milliseconds until tick() has something to do."""
        if not self.started:
            return 1000
        due = self.reconnect_at if self.reconnect_at is not None else self.heartbeat_at
        return max(0, int((due - time.monotonic()) * 1000))
