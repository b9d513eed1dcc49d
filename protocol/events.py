"""Events family: what the scheduler publishes on its events endpoint (SPEC.md, "Events")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.records import Record
from protocol.vocab import PTT_KINDS, WATCH_KINDS, WORKER_KINDS


@dataclass(frozen=True)
class Event(Record):
    """One job event; the PUB topic frame is `job.<kind>`."""

    TYPE = "event"
    kind: str
    """One of protocol.vocab's JOB_KINDS, PTT_KINDS, WATCH_KINDS or WORKER_KINDS."""
    job_id: str
    data: dict[str, Any] = field(default_factory=dict)
    """Kind-specific fields (SPEC.md lists them)."""

    @property
    def topic(self) -> bytes:
        """The subscription topic for this event."""
        family = (
            "ptt"
            if self.kind in PTT_KINDS
            else "watch"
            if self.kind in WATCH_KINDS
            else "worker"
            if self.kind in WORKER_KINDS
            else "job"
        )
        return f"{family}.{self.kind}".encode()
