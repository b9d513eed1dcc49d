"""The one loop every member actor runs (audio, hotkey, deliver, watcher, warden).

A member is a small reactor, in pykka's shape: `on_start` opens what it needs and registers
its sockets with `watch(socket, handler)` and its periodic duties with `every(...)`; the loop
polls them together with the scheduler link (SPEC.md 6.3) and a signal wake-up, calls each
ready socket's handler, ticks the link, runs the due timers and `on_turn`; SIGTERM or SIGINT
ends it, and `on_stop` closes what `on_start` opened before the link says goodbye.
The member's own code is only its handlers. Every handler runs behind one exception barrier:
a crash is logged and the loop goes on.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from actors.runtime import process
from actors.runtime.config import Config
from actors.runtime.member import SchedulerLink

IDLE_POLL_MS = 1000
"""The longest a turn waits when nothing is due: periodic checks (`on_turn`) run at least this often."""


@dataclass
class Timer:
    """A periodic duty: `callback` runs every `interval_s`, first at `due`."""

    interval_s: float
    callback: Callable[[], None]
    due: float


class Member:
    """Base of the member actors: subclasses set ROLE and provide the on_* hooks."""

    ROLE = ""
    LEAVE_LINGER_MS = 500
    """How long the link's last messages get to go out when the member stops."""

    def __init__(self, cfg: Config, log: Any) -> None:
        self.cfg = cfg
        self.log = log
        self.link = SchedulerLink(cfg, self.ROLE, log)
        self.running = True
        self._handlers: dict[Any, Callable[[], None]] = {}
        self._timers: list[Timer] = []

    # --- what a member provides ---------------------------------------------------------

    def on_start(self) -> None:
        """Open sockets and devices and register them; the link says READY right after."""

    def on_turn(self) -> None:
        """Checks after every turn of the loop (readiness of other threads, retries)."""

    def on_stop(self) -> None:
        """Close what on_start opened; the link leaves after this."""

    def stopped_facts(self) -> dict[str, Any]:
        """What the `stopped` log line says besides the event."""
        return {}

    def poll_ms(self) -> int:
        """The longest the next poll may wait; shorter while the member has work queued."""
        return IDLE_POLL_MS

    # --- what a member uses -------------------------------------------------------------

    def watch(self, sock: Any, handler: Callable[[], None]) -> None:
        """Call `handler` whenever `sock` (a zmq socket or anything with fileno()) is readable."""
        self._handlers[sock] = handler

    def every(self, interval_s: float, callback: Callable[[], None], first_in_s: float = 0.0) -> None:
        """Run `callback` every `interval_s`, the first time `first_in_s` from now."""
        self._timers.append(Timer(interval_s, callback, time.monotonic() + first_in_s))

    def stop(self, *_: Any) -> None:
        """SIGTERM/SIGINT: end the loop after this turn."""
        self.running = False

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        wakeup = process.signal_wakeup()
        self.on_start()
        self.link.start()  # registered means ready: on_start has opened everything
        try:
            while self.running:
                self._turn(wakeup)
        finally:
            self._barrier("on_stop", self.on_stop)
            self.link.leave(self.LEAVE_LINGER_MS)
            wakeup.close()
            self.log.info("stopped", **self.stopped_facts())

    def _turn(self, wakeup: Any) -> None:
        poller = zmq.Poller()
        poller.register(wakeup, zmq.POLLIN)
        for sock in self._handlers:
            poller.register(sock, zmq.POLLIN)
        if self.link.socket is not None:
            poller.register(self.link.socket, zmq.POLLIN)
        try:
            ready = dict(poller.poll(self._timeout_ms()))
        except zmq.ZMQError:
            if not self.running:  # interrupted by the stopping signal
                return
            raise
        if process.readable(wakeup, ready):
            process.drain_wakeup(wakeup)
        for sock, handler in list(self._handlers.items()):
            if process.readable(sock, ready):
                self._barrier("handler", handler)
        if self.link.socket is not None and self.link.socket in ready:
            self.link.on_readable()
        self.link.tick()
        now = time.monotonic()
        for timer in self._timers:
            if now >= timer.due:
                timer.due = now + timer.interval_s
                self._barrier("timer", timer.callback)
        self._barrier("on_turn", self.on_turn)

    def _timeout_ms(self) -> int:
        due = min((t.due for t in self._timers), default=None)
        timer_ms = IDLE_POLL_MS if due is None else max(0, int((due - time.monotonic()) * 1000))
        return min(self.poll_ms(), self.link.timeout_ms(), timer_ms)

    def _barrier(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """The exception barrier: log what crashed and carry on."""
        try:
            return fn(*args)
        except Exception:
            self.log.exception("member_step_crashed", step=what, callback=getattr(fn, "__name__", "?"))
            return None
