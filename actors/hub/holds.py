"""Drain on key-down (SPEC.md 6.4): the holds that keep file windows from starting while an
utterance is being recorded, and the transcribers' recent busy times (19.3). Pure logic over
the scheduler's clock; the Scheduler and JobBook call in."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass
class Hold:
    hold_id: str
    sender: bytes
    """The member's identity on the work socket: the hold dies with its registration."""
    since: float
    deadline: float
    job_id: str = ""
    """The utterance's job, once submitted: the hold lasts until it ends."""


@dataclass
class Released:
    hold: Hold
    why: str
    held_s: float


class Holds:
    """Active holds by id. Every method that ends holds returns what it ended, for events."""

    def __init__(self) -> None:
        self.holds: dict[str, Hold] = {}

    @property
    def active(self) -> bool:
        return bool(self.holds)

    def take(self, hold_id: str, sender: bytes, max_s: float, now: float | None = None) -> Hold:
        now = time.monotonic() if now is None else now
        hold = self.holds.get(hold_id)
        if hold is None:
            hold = self.holds[hold_id] = Hold(hold_id, sender, now, now + max(0.0, max_s))
        hold.sender = sender  # said again after a reconnect: it now lives with the new socket
        return hold

    def _end(self, hold: Hold, why: str, now: float | None) -> Released:
        del self.holds[hold.hold_id]
        now = time.monotonic() if now is None else now
        return Released(hold, why, round(now - hold.since, 3))

    def release(self, hold_id: str, now: float | None = None) -> list[Released]:
        hold = self.holds.get(hold_id)
        return [self._end(hold, "released", now)] if hold else []

    def attach(self, hold_id: str, job_id: str) -> Hold | None:
        """The utterance became a job: the hold now ends with it."""
        hold = self.holds.get(hold_id)
        if hold is not None:
            hold.job_id = job_id
        return hold

    def job_ended(self, job_id: str, now: float | None = None) -> list[Released]:
        return [self._end(h, "job_ended", now) for h in list(self.holds.values()) if h.job_id == job_id]

    def sender_lost(self, sender: bytes, now: float | None = None) -> list[Released]:
        return [self._end(h, "sender_lost", now) for h in list(self.holds.values()) if h.sender == sender]

    def expire(self, now: float | None = None) -> list[Released]:
        now = time.monotonic() if now is None else now
        return [self._end(h, "expired", now) for h in list(self.holds.values()) if now >= h.deadline]


class BusyLog:
    """When each transcriber held which job's window, for the last `keep` windows: enough to
    say whether push-to-talk found the model busy with other work at the key release."""

    def __init__(self, keep: int = 256) -> None:
        self.spans: deque[tuple[float, float | None, str, bytes]] = deque(maxlen=keep)
        """(start, end or None while in flight, job id, worker), wall-clock seconds."""

    def started(self, worker: bytes, job_id: str, at: float | None = None) -> None:
        self.spans.append((time.time() if at is None else at, None, job_id, worker))

    def ended(self, worker: bytes, at: float | None = None) -> None:
        at = time.time() if at is None else at
        for i in range(len(self.spans) - 1, -1, -1):
            start, end, job_id, who = self.spans[i]
            if who == worker and end is None:
                self.spans[i] = (start, at, job_id, who)
                return

    def busy_with_other(self, at: float, job_id: str) -> bool:
        """A transcriber held a window of another job at wall time `at`."""
        return any(
            start <= at and (end is None or at < end) and job != job_id for start, end, job, _ in self.spans
        )
