"""Events family: what the scheduler publishes on its events endpoint (SPEC.md, "Events")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.records import Record

EVENT_KINDS = (
    "queued",
    "decoded",
    "started",
    "dispatched",
    "progress",
    "paused",
    "resumed",
    "priority",
    "completed",
    "failed",
    "cancelled",
)


@dataclass(frozen=True)
class Event(Record):
    """One job event; the PUB topic frame is `job.<kind>`."""

    TYPE = "event"
    kind: str
    """One of EVENT_KINDS."""
    job_id: str
    data: dict[str, Any] = field(default_factory=dict)
    """Kind-specific fields (SPEC.md lists them)."""

    @property
    def topic(self) -> bytes:
        """The subscription topic for this event."""
        return f"job.{self.kind}".encode()
