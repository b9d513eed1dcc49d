"""Worker side of the work protocol (SPEC.md, "Work"), shared by ingest and transcriber.

A worker is a member (actors/runtime/reactor.py) whose link takes tasks: the same loop, the
same heartbeats and reconnects (actors/runtime/member.py), plus one task thread. The loop
forwards the task thread's replies, which arrive through an inproc pipe, so a long task never
stops the heartbeats. Stopping is the leave dialog of SPEC.md 6.5: finish the task in hand
(or abandon it), wait for the scheduler's acknowledgement, then exit.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
import zmq

from actors.runtime.config import Config
from actors.runtime.procinfo import rss_bytes
from actors.runtime.reactor import IDLE_POLL_MS, Member
from protocol import encode
from protocol.codec import Envelope
from protocol.records import Record
from protocol.work import Ready

LEAVING_POLL_MS = 100
"""How often a leaving worker checks whether it may exit."""

Emit = Callable[[Record, str], None]


class Worker(Member):
    """Base worker: subclasses set ROLE, TASKS (record types they serve) and `perform`."""

    TASKS: tuple[type[Record], ...] = ()
    LEAVE_LINGER_MS = 1000  # the last replies and the DISCONNECT go out

    def __init__(self, cfg: Config, log: Any | None = None) -> None:
        super().__init__(cfg, log or structlog.get_logger().bind(actor=self.ROLE))
        self.name = self.link.name
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.stop_requested: float | None = None
        self.abandon_on_stop = cfg.get("scheduler.on_stop") == "abandon"
        self.stop_timeout_s = float(cfg.get("scheduler.stop_timeout_s"))
        self.pending = 0  # tasks received and not yet finished
        self.outbox: deque[bytes] = deque()
        """Replies from the task thread not yet sent (the link was reconnecting)."""
        self._tasks: queue.Queue[tuple[Record, Envelope] | None] = queue.Queue()
        self._pipe_addr = f"inproc://{self.ROLE}-{id(self)}"
        self._pipe = self.ctx.socket(zmq.PAIR)
        self._pipe.bind(self._pipe_addr)
        self._thread = threading.Thread(target=self._task_loop, name=f"{self.ROLE}-task", daemon=True)
        self.link.ready = self.ready_message
        self.link.busy = lambda: self.pending > 0
        self.link.on_message = self.take_task

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

    # --- the member's hooks ---------------------------------------------------------------

    @property
    def bad_frames(self) -> int:
        return self.link.bad_frames

    def take_task(self, envelope: Envelope, record: Record) -> bool:
        """A task from the scheduler goes to the task thread; anything else is unexpected."""
        if not isinstance(record, self.TASKS):
            return False
        self.pending += 1
        self._tasks.put((record, envelope))
        return True

    def forward_replies(self) -> None:
        """Replies from the task thread go out in order; an empty frame marks a task done."""
        while True:
            try:
                frame = self._pipe.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frame:
                self.outbox.append(frame)
            else:
                self.pending -= 1
        while self.outbox and self.link.send_frame(self.outbox[0]):
            self.outbox.popleft()

    def on_start(self) -> None:
        self._thread.start()
        self.watch(self._pipe, self.forward_replies)

    def stop(self, *_: Any) -> None:
        """SIGTERM/SIGINT: leave (SPEC.md 6.5), finishing the task in hand unless abandoning."""
        if self.stop_requested is None:
            self.stop_requested = time.monotonic()

    def poll_ms(self) -> int:
        return LEAVING_POLL_MS if self.stop_requested is not None else IDLE_POLL_MS

    def on_turn(self) -> None:
        self.forward_replies()  # the link may have come back with replies waiting
        if self.stop_requested is None:
            return
        if not self.link.leaving:
            abandon = self.abandon_on_stop and self.pending > 0
            self.log.info("leaving", pending=self.pending, abandon=abandon)
            self.link.goodbye(abandon)
        if self.may_exit():
            self.running = False

    def may_exit(self) -> bool:
        """While leaving: done once the work in hand is answered and the scheduler has
        acknowledged (or is gone), or when the stop timeout is up."""
        assert self.stop_requested is not None
        gone = self.link.acknowledged or self.link.silent
        if self.abandon_on_stop:  # go once the scheduler has our DISCONNECT (or is gone)
            return gone or time.monotonic() - self.stop_requested > 1.0
        if time.monotonic() - self.stop_requested > self.stop_timeout_s:
            self.log.warning("stop_timeout", pending=self.pending)
            return True
        return self.pending == 0 and not self.outbox and gone

    def on_stop(self) -> None:
        self._tasks.put(None)
        self._pipe.close(linger=0)

    def stopped_facts(self) -> dict[str, Any]:
        return {"abandoned": self.pending}

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then leave."""
        super().run()
        if self.pending:  # the task thread is inside native code: end without finalizing it
            os._exit(0)
