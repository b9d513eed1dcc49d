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
    "delivered",
    "partial",
)
PTT_KINDS = ("recording", "dropped", "device", "hold")
"""Audio events (SPEC.md 16.6): topic `ptt.<kind>`, no job."""
WATCH_KINDS = ("file_seen", "file_submitted", "file_exported", "file_failed")
"""Watcher events (SPEC.md 17): topic `watch.<kind>`."""
WORKER_KINDS = ("joined", "left", "lost", "killed")
"""Worker and member presence (SPEC.md 18.5): topic `worker.<kind>`, job_id ""."""
REPORTED_KINDS = ("recording", "dropped", "device", "delivered", *WATCH_KINDS, "killed")
"""Kinds a member may ask the scheduler to publish (REPORT)."""


@dataclass(frozen=True)
class Event(Record):
    """One job event; the PUB topic frame is `job.<kind>`."""

    TYPE = "event"
    kind: str
    """One of EVENT_KINDS or PTT_KINDS."""
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
