"""The one link every actor keeps to the scheduler's work endpoint (SPEC.md 11, 6.3, 6.5).

Workers (ingest, transcriber) and members (audio, hotkey, deliver, watcher, warden) alike say
READY with their role and heartbeat both ways (Paranoid Pirate): a scheduler silent for
`liveness` beats is reconnected with exponential back-off and told READY again. The link never
blocks: the owning loop (actors/runtime/reactor.py) polls `socket` with its other sockets,
calls `on_readable()` when it is readable and `tick()` every turn. `start()` sends the first
READY, so being registered means being ready.

What differs between the two kinds is plugged in: `ready` builds the READY (a transcriber
names its model), `busy` says whether a task is in hand (HEARTBEAT `busy`), `on_message`
takes the tasks. Stopping is a dialog (SPEC.md 6.5): `goodbye()` sends DISCONNECT and keeps
the socket open for the replies still to go; a DISCONNECT from the scheduler then means
"acknowledged", and a silent scheduler is no longer reconnected.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import zmq

from actors.runtime.config import Config
from actors.runtime.procinfo import rss_bytes
from protocol import ProtocolError, decode, encode
from protocol.codec import Envelope
from protocol.records import Record
from protocol.work import Disconnect, Heartbeat, Ready

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 8.0


class SchedulerLink:
    def __init__(self, cfg: Config, role: str, log: Any) -> None:
        self.cfg = cfg
        self.role = str(role)
        self.log = log
        self.name = f"{self.role}@{socket.gethostname()}:{os.getpid()}"
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
        self.leaving = False
        """DISCONNECT sent (goodbye); waiting for the acknowledgement."""
        self.acknowledged = False
        """The scheduler answered our DISCONNECT with its own."""
        self.bad_frames = 0
        self.ready: Callable[[], Ready] = self.ready_message
        """Builds each READY; a worker with more to say (its model) replaces it."""
        self.busy: Callable[[], bool] = lambda: False
        """True while a task is in hand (HEARTBEAT `busy`)."""
        self.on_message: Callable[[Envelope, Record], bool] | None = None
        """Takes what the scheduler sends besides HEARTBEAT and DISCONNECT; False = unexpected."""
        self.after_ready: Callable[[], list[Record]] | None = None
        """What to say again after every READY (the audio actor's holds, SPEC.md 6.4)."""

    def ready_message(self) -> Ready:
        return Ready(
            role=self.role,
            name=self.name,
            pid=os.getpid(),
            health=self.health,
            detail=self.detail,
            rss=rss_bytes(),
        )

    @property
    def silent(self) -> bool:
        """No word from the scheduler for `liveness` beats."""
        return self.liveness <= 0

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
        ready = self.ready()
        self.health, self.detail = ready.health, ready.detail
        self._send(ready)
        for record in self.after_ready() if self.after_ready else []:
            self._send(record)
        self.log.info("ready_sent", endpoint=self.cfg.endpoint("work"))

    def _send(self, record: Record) -> None:
        if self.socket is not None:
            self.socket.send_multipart([b"", encode(record, self.name)])

    def send(self, record: Record) -> bool:
        """Send on the link once registered; False if there is no connection right now."""
        if not self.started or self.socket is None:
            return False
        self._send(record)
        return True

    def send_frame(self, frame: bytes) -> bool:
        """Send a record already encoded (a worker's task thread encodes its replies)."""
        if not self.started or self.socket is None:
            return False
        self.socket.send_multipart([b"", frame])
        return True

    def close(self, linger_ms: int = 0) -> None:
        if self.socket is not None:
            self.socket.close(linger=linger_ms)
            self.socket = None

    def goodbye(self, abandon: bool = False) -> None:
        """Stopping (SPEC.md 6.5): say DISCONNECT and wait, socket open, for the answer."""
        if not self.leaving:
            self.leaving = True
            self._send(Disconnect(reason="stopping", abandon=abandon))

    def leave(self, linger_ms: int = 500) -> None:
        """Stopped: say DISCONNECT unless goodbye() did, and close once it has gone out."""
        if self.socket is not None and self.reconnect_at is None and not self.leaving:
            self._send(Disconnect(reason="stopping"))
        self.close(linger_ms)

    def set_health(self, health: str, detail: str = "") -> None:
        """Record our health; the scheduler hears of a change at once."""
        if (health, detail) == (self.health, self.detail):
            return
        self.health, self.detail = health, detail
        if self.started:
            self._send(Heartbeat(health=health, detail=detail))

    def on_readable(self) -> None:
        """Read what the scheduler sent: any message proves it alive."""
        while self.socket is not None:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.liveness, self.reconnect_s = self.liveness_max, RECONNECT_MIN_S
            self.handle_frame(frames[-1])

    def handle_frame(self, frame: bytes) -> None:
        """One message from the scheduler: malformed and unexpected ones are counted and skipped."""
        try:
            envelope, record = decode(frame)
        except ProtocolError as exc:
            self.bad_frames += 1
            self.log.warning("bad_frame", code=str(exc.code), reason=exc.reason)
            return
        if isinstance(record, Heartbeat):
            return
        if isinstance(record, Disconnect):
            if self.leaving:
                self.acknowledged = True  # the scheduler's answer to our goodbye: we may go
                return
            self.log.info("disconnected", reason=record.reason)
            self._connect()
            return
        if self.on_message is None or not self.on_message(envelope, record):
            self.bad_frames += 1
            self.log.warning("unexpected_message", type=envelope.type)

    def tick(self) -> None:
        """Heartbeat when due; after `liveness` silent beats, reconnect with back-off (unless
        leaving: then there is no scheduler to come back for)."""
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
        if self.liveness <= 0 and self.leaving:
            return
        if self.liveness <= 0:
            self.log.warning("scheduler_silent", reconnect_in_s=self.reconnect_s)
            self.close()
            self.reconnect_at = now + self.reconnect_s
            self.reconnect_s = min(self.reconnect_s * 2, RECONNECT_MAX_S)
            return
        self._send(Heartbeat(health=self.health, detail=self.detail, busy=self.busy(), rss=rss_bytes()))

    def timeout_ms(self) -> int:
        """Milliseconds until tick() has something to do."""
        if not self.started:
            return 1000
        due = self.reconnect_at if self.reconnect_at is not None else self.heartbeat_at
        return max(0, int((due - time.monotonic()) * 1000))
