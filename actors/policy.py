"""Scheduling policy, free of sockets and disk: which job's chunk runs next, which job is
decoded next. Highest priority first; first in, first out within a priority (by the
submission sequence number, kept when the priority changes). One chunk in flight per job.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
PRIORITY_NAME = {rank: name for name, rank in PRIORITY_RANK.items()}


@dataclass
class QueuedJob:
    """The scheduler's working view of one unfinished job."""

    id: str
    seq: int
    priority: int
    state: str = "queued"  # queued (needs ingest), decoding, ready (fully planned)
    paused: bool = False
    n_chunks: int = 0  # planned so far
    next_index: int = 0  # first uncommitted chunk
    plan_final: bool = False
    in_flight: bool = False
    context: str = ""  # continuation context for next_index
    last_error: str = ""

    @property
    def key(self) -> tuple[int, int]:
        return (self.priority, self.seq)

    @property
    def runnable(self) -> bool:
        """A chunk of this job can be dispatched now."""
        return (
            not self.paused
            and not self.in_flight
            and self.state in ("decoding", "ready")
            and self.next_index < self.n_chunks
        )

    @property
    def finished(self) -> bool:
        """Every planned chunk is committed and no more will be planned."""
        return self.plan_final and not self.in_flight and self.next_index >= self.n_chunks


class JobQueue:
    """The set of unfinished jobs and the choice of what runs next."""

    def __init__(self) -> None:
        self.jobs: dict[str, QueuedJob] = {}

    def __contains__(self, job_id: str) -> bool:
        return job_id in self.jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def get(self, job_id: str) -> QueuedJob | None:
        return self.jobs.get(job_id)

    def add(self, job: QueuedJob) -> None:
        self.jobs[job.id] = job

    def remove(self, job_id: str) -> QueuedJob | None:
        return self.jobs.pop(job_id, None)

    def next_chunk(self) -> QueuedJob | None:
        """The runnable job that should get the transcriber next."""
        candidates = [j for j in self.jobs.values() if j.runnable]
        return min(candidates, key=lambda j: j.key, default=None)

    def next_decode(self) -> QueuedJob | None:
        """The job that should get an ingest worker next (paused jobs wait)."""
        candidates = [j for j in self.jobs.values() if j.state == "queued" and not j.paused]
        return min(candidates, key=lambda j: j.key, default=None)

    def depth(self) -> dict[str, int]:
        """Unfinished, unpaused jobs per priority name."""
        depth = dict.fromkeys(PRIORITY_RANK, 0)
        for job in self.jobs.values():
            if not job.paused:
                depth[PRIORITY_NAME[job.priority]] += 1
        return depth
