"""The stack's vocabulary, defined once: audio format, roles, priorities, job states and event
kinds. Every actor, the CLI and the tests read these names from here; SPEC.md defines them
(3.1 roles, 5.3 priorities, 9 job states, 7 event kinds)."""

from __future__ import annotations

from enum import StrEnum

SAMPLE_RATE = 16000
"""Samples per second of every PCM buffer on the wire and in the audio cache."""
SAMPLE_WIDTH_BYTES = 2
"""Bytes per sample: signed 16-bit little-endian, mono."""
BYTES_PER_S = SAMPLE_RATE * SAMPLE_WIDTH_BYTES


class Role(StrEnum):
    """An actor process of the stack; the value is its name on the wire, in logs and configs."""

    SCHEDULER = "scheduler"
    INGEST = "ingest"
    TRANSCRIBER = "transcriber"
    AUDIO = "audio"
    HOTKEY = "hotkey"
    DELIVER = "deliver"
    WATCHER = "watcher"
    WARDEN = "warden"


ROSTER: tuple[Role, ...] = tuple(Role)
"""Every actor, in the order a stack starts them (scheduler first; it is stopped last)."""
WORKER_ROLES: tuple[Role, ...] = (Role.TRANSCRIBER, Role.INGEST)
"""Roles that take work (WORK dialog, SPEC.md 6)."""
MEMBER_ROLES: tuple[Role, ...] = (Role.AUDIO, Role.HOTKEY, Role.DELIVER, Role.WATCHER, Role.WARDEN)
"""Roles that hold a member link to the scheduler but take no work (SPEC.md 12)."""


class Priority(StrEnum):
    """A job's queue class; higher classes run first, each window at a time."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITY_RANK: dict[str, int] = {p: rank for rank, p in enumerate(Priority)}
"""Lower runs first."""


class JobState(StrEnum):
    """Where a job stands (SPEC.md, "Job states")."""

    QUEUED = "queued"
    DECODING = "decoding"
    READY = "ready"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES: tuple[JobState, ...] = (JobState.QUEUED, JobState.DECODING, JobState.READY)
"""States of a job that still has work to do."""
FINAL_STATES: tuple[JobState, ...] = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
"""States a job never leaves."""

JOB_KINDS = (
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
"""Job events: topic `job.<kind>`."""
PTT_KINDS = ("recording", "dropped", "device", "hold")
"""Audio events (SPEC.md 7.4): topic `ptt.<kind>`, no job."""
WATCH_KINDS = ("file_seen", "file_submitted", "file_exported", "file_failed")
"""Watcher events (SPEC.md 13): topic `watch.<kind>`."""
WORKER_KINDS = ("joined", "left", "lost", "killed")
"""Worker and member presence (SPEC.md 7.6): topic `worker.<kind>`, job_id ""."""
REPORTED_KINDS = ("recording", "dropped", "device", "delivered", *WATCH_KINDS, "killed")
"""Kinds a member may ask the scheduler to publish (REPORT)."""
