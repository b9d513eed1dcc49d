"""Worker side of the work protocol (SPEC.md, "Work"), shared by ingest and transcriber.

One DEALER socket to the scheduler's work endpoint, one task thread. The main loop polls the
DEALER and an inproc pipe from the task thread, forwards the task's replies, and heartbeats
both ways (Paranoid Pirate): a scheduler silent for `liveness` beats is reconnected with
exponential back-off and told READY again. A long task never stops the heartbeats.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
import zmq

from actors import entry
from actors.config import Config
from actors.procinfo import rss_bytes
from protocol import ProtocolError, decode, encode
from protocol.codec import Envelope
from protocol.records import Record
from protocol.work import Disconnect, Heartbeat, Ready

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 8.0

Emit = Callable[[Record, str], None]


class Worker:
    """Base worker: subclasses set ROLE, TASKS (record types they serve) and `perform`."""

    ROLE = ""
    TASKS: tuple[type[Record], ...] = ()

    def __init__(self, cfg: Config, log: Any | None = None) -> None:
        self.cfg = cfg
        self.log = log or structlog.get_logger().bind(actor=self.ROLE)
        self.name = f"{self.ROLE}@{socket.gethostname()}:{os.getpid()}"
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.interval_s = float(cfg.get("scheduler.heartbeat_interval_s"))
        self.liveness_max = int(cfg.get("scheduler.heartbeat_liveness"))
        self.running = True
        self.stop_requested: float | None = None
        self.leaving = False  # DISCONNECT sent; waiting to finish and for the acknowledgement
        self.acknowledged = False
        self.abandon_on_stop = cfg.get("scheduler.on_stop") == "abandon"
        self.stop_timeout_s = float(cfg.get("scheduler.stop_timeout_s"))
        self.pending = 0  # tasks received and not yet finished
        self.bad_frames = 0
        self._tasks: queue.Queue[tuple[Record, Envelope] | None] = queue.Queue()
        self._pipe_addr = f"inproc://{self.ROLE}-{id(self)}"
        self._pipe = self.ctx.socket(zmq.PAIR)
        self._pipe.bind(self._pipe_addr)
        self._thread = threading.Thread(target=self._task_loop, name=f"{self.ROLE}-task", daemon=True)
        self.dealer: zmq.Socket | None = None

    # --- to be provided by subclasses -----------------------------------------------

    def ready_message(self) -> Ready:
        return Ready(role=self.ROLE, name=self.name, pid=os.getpid(), rss=rss_bytes())

    def perform(self, record: Record, envelope: Envelope, emit: Emit) -> None:
        """Do one task in the task thread; call emit(reply, parent_id) for each reply."""
        raise NotImplementedError

    def failure(self, record: Record, reason: str) -> Record:
        """The error reply for a task whose perform() raised."""
        raise NotImplementedError

    # --- task thread ------------------------------------------------------------------

    def _task_loop(self) -> None:
        out = self.ctx.socket(zmq.PAIR)
        out.connect(self._pipe_addr)

        def emit(record: Record, parent: str) -> None:
            out.send(encode(record, self.name, parent=parent))

        while True:
            item = self._tasks.get()
            if item is None:
                break
            record, envelope = item
            try:
                self.perform(record, envelope, emit)
            except Exception as exc:  # the barrier: log, answer with an error, keep serving
                self.log.exception("task_crashed", type=envelope.type, msg_id=envelope.id)
                try:
                    emit(self.failure(record, f"internal error: {type(exc).__name__}: {exc}"), envelope.id)
                except Exception:
                    self.log.exception("task_failure_reply_failed", msg_id=envelope.id)
            finally:
                out.send(b"")  # empty frame: task finished
        out.close(linger=0)

    # --- main loop --------------------------------------------------------------------

    def _connect(self) -> None:
        if self.dealer is not None:
            self.dealer.close(linger=0)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(self.cfg.endpoint("work"))
        self._send(self.ready_message())
        self.log.info("ready_sent", endpoint=self.cfg.endpoint("work"))

    def _send(self, record: Record, parent: str = "") -> None:
        assert self.dealer is not None
        self.dealer.send_multipart([b"", encode(record, self.name, parent=parent)])

    def stop(self, *_: Any) -> None:
        """SIGTERM/SIGINT: leave (SPEC.md 18.2), finishing the task in hand unless abandoning."""
        if self.stop_requested is None:
            self.stop_requested = time.monotonic()

    def _leave(self) -> None:
        """Tell the scheduler we are stopping; with abandon, stop serving at once."""
        self.leaving = True
        abandon = self.abandon_on_stop and self.pending > 0
        self.log.info("leaving", pending=self.pending, abandon=abandon)
        self._send(Disconnect(reason="stopping", abandon=abandon))

    def _may_exit(self, scheduler_silent: bool) -> bool:
        """While leaving: done once the work in hand is answered and the scheduler has
        acknowledged (or is gone), or when the stop timeout is up."""
        assert self.stop_requested is not None
        if self.abandon_on_stop:  # go once the scheduler has our DISCONNECT (or is gone)
            return self.acknowledged or scheduler_silent or time.monotonic() - self.stop_requested > 1.0
        if time.monotonic() - self.stop_requested > self.stop_timeout_s:
            self.log.warning("stop_timeout", pending=self.pending)
            return True
        return self.pending == 0 and (self.acknowledged or scheduler_silent)

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then leave."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self._thread.start()
        self._connect()
        liveness = self.liveness_max
        reconnect_s = RECONNECT_MIN_S
        heartbeat_at = time.monotonic() + self.interval_s
        poller = zmq.Poller()
        poller.register(self._pipe, zmq.POLLIN)
        wakeup = entry.signal_wakeup()
        poller.register(wakeup, zmq.POLLIN)
        while self.running:
            assert self.dealer is not None
            if self.stop_requested is not None and not self.leaving:
                self._leave()
            if self.leaving and self._may_exit(scheduler_silent=liveness <= 0):
                break
            poller.register(self.dealer, zmq.POLLIN)
            timeout_s = max(0.0, heartbeat_at - time.monotonic())
            if self.leaving:
                timeout_s = min(timeout_s, 0.1)
            ready = dict(poller.poll(timeout=int(timeout_s * 1000)))
            if wakeup in ready:
                entry.drain_wakeup(wakeup)
            if self._pipe in ready:
                frame = self._pipe.recv()
                if frame:
                    self.dealer.send_multipart([b"", frame])
                else:
                    self.pending -= 1  # a task finished
            if self.dealer in ready:
                frames = self.dealer.recv_multipart()
                liveness, reconnect_s = self.liveness_max, RECONNECT_MIN_S
                if self._on_frames(frames) == "reconnect":
                    if self.leaving:
                        self.acknowledged = True  # the scheduler's DISCONNECT: we may go
                    else:
                        poller.unregister(self.dealer)
                        self._connect()
                        continue
            now = time.monotonic()
            if now >= heartbeat_at:
                heartbeat_at = now + self.interval_s
                liveness -= 1
                if liveness <= 0 and self.leaving:
                    continue  # no scheduler to come back for: exit once the work in hand is done
                if liveness <= 0:
                    self.log.warning("scheduler_silent", reconnect_in_s=reconnect_s)
                    poller.unregister(self.dealer)
                    select.select([wakeup], [], [], reconnect_s)  # back-off; a signal ends it
                    reconnect_s = min(reconnect_s * 2, RECONNECT_MAX_S)
                    liveness = self.liveness_max
                    self._connect()
                    continue
                self._send(Heartbeat(busy=self.pending > 0, rss=rss_bytes()))
        self._tasks.put(None)
        if self.dealer is not None:
            self.dealer.close(linger=1000)  # let the last replies and DISCONNECT go out
        self._pipe.close(linger=0)
        self.log.info("stopped", abandoned=self.pending)
        if self.pending:  # the task thread is inside native code: end without finalizing it
            os._exit(0)

    def _on_frames(self, frames: list[bytes]) -> str:
        try:
            envelope, record = decode(frames[-1])
        except ProtocolError as exc:
            self.bad_frames += 1
            self.log.warning("bad_frame", code=str(exc.code), reason=exc.reason)
            return ""
        if isinstance(record, Heartbeat):
            return ""
        if isinstance(record, Disconnect):
            self.log.info("disconnected", reason=record.reason)
            return "reconnect"
        if isinstance(record, self.TASKS):
            self.pending += 1
            self._tasks.put((record, envelope))
            return ""
        self.bad_frames += 1
        self.log.warning("unexpected_message", type=envelope.type)
        return ""
