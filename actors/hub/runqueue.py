"""Scheduling policy, free of sockets and disk: which job's window runs next, which job is
decoded next. Highest priority first; first in, first out within a priority (by the
submission sequence number, kept when the priority changes). One window in flight per job.

A job's audio is planned as spans (actors/workers/chunking.py: windows cut in pauses, each decided
for good when it is sent). Its position is where the next window starts: the continuation
of the last committed window. A window runs from the position to at most `max_window`
samples later, never past its span's end, except that in a streamed dictation a leftover
(the part of a piece Whisper stopped short of) joins the piece cut right after it when both
fit in one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.vocab import PRIORITY_RANK, SAMPLE_RATE, JobState, Priority

PRIORITY_NAME = {rank: name for name, rank in PRIORITY_RANK.items()}
MAX_WINDOW_SAMPLES = 30 * SAMPLE_RATE
MIN_WINDOW_SAMPLES = 1600  # a span's tail shorter than 0.1 s is not worth a window


@dataclass
class QueuedJob:
    """The scheduler's working view of one unfinished job."""

    id: str
    seq: int
    priority: int
    state: str = JobState.QUEUED  # queued (needs ingest), decoding, ready (fully planned)
    paused: bool = False
    spans: list[list[int]] = field(default_factory=list)  # planned so far, [start, end)
    position: int = 0  # where the next window starts, in samples
    next_index: int = 0  # windows committed so far
    plan_final: bool = False
    in_flight: bool = False
    in_flight_window: tuple[int, int] = (0, 0)  # the window dispatched, while in flight
    mel_max_known: bool = False  # the plan's log-mel reference level is stored
    context: str = ""  # continuation context for the next window
    last_error: str = ""
    max_window: int = MAX_WINDOW_SAMPLES
    audio: bool = False
    """A SUBMIT-AUDIO job (push-to-talk): its text so far is published (SPEC.md 12.4)."""

    @property
    def key(self) -> tuple[int, int]:
        return (self.priority, self.seq)

    def set_spans(self, first_index: int, spans: list[list[int]]) -> None:
        """Apply a plan update: spans[k] becomes span first_index + k."""
        del self.spans[first_index:]
        self.spans.extend([int(s), int(e)] for s, e in spans)

    def window(self) -> tuple[int, int] | None:
        """The next window [start, end), or None if there is none (yet)."""
        for k, (start, end) in enumerate(self.spans):
            pos = max(self.position, start)
            if end - pos < MIN_WINDOW_SAMPLES:
                continue
            if pos > start and self.audio:  # Whisper stopped short of a piece's end: a leftover
                after = self.spans[k + 1] if k + 1 < len(self.spans) else None
                if after is None and not self.plan_final:
                    return None  # decoded alone it has no context: wait for the next span
                if after is not None and after[0] == end and after[1] - pos <= self.max_window:
                    return pos, after[1]  # the leftover joins the span cut right after it
            return pos, min(pos + self.max_window, end)
        return None

    @property
    def runnable(self) -> bool:
        """A window of this job can be dispatched now."""
        return (
            not self.paused
            and not self.in_flight
            and self.state in (JobState.DECODING, JobState.READY)
            and self.window() is not None
        )

    @property
    def finished(self) -> bool:
        """Every window is committed and no more will be planned."""
        return self.plan_final and not self.in_flight and self.window() is None


class JobQueue:
    """The set of unfinished jobs and the choice of what runs next."""

    def __init__(self, max_window: int = MAX_WINDOW_SAMPLES) -> None:
        self.jobs: dict[str, QueuedJob] = {}
        self.max_window = max_window

    def __contains__(self, job_id: str) -> bool:
        return job_id in self.jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def get(self, job_id: str) -> QueuedJob | None:
        return self.jobs.get(job_id)

    def add(self, job: QueuedJob) -> None:
        job.max_window = self.max_window
        self.jobs[job.id] = job

    def remove(self, job_id: str) -> QueuedJob | None:
        return self.jobs.pop(job_id, None)

    def next_chunk(self, max_rank: int = PRIORITY_RANK[Priority.LOW]) -> QueuedJob | None:
        """The runnable job that should get the transcriber next, among priorities up to
        `max_rank` (a drain hold admits only high: SPEC.md 6.4)."""
        candidates = [j for j in self.jobs.values() if j.runnable and j.priority <= max_rank]
        return min(candidates, key=lambda j: j.key, default=None)

    def next_decode(self) -> QueuedJob | None:
        """The job that should get an ingest worker next (paused jobs wait)."""
        candidates = [j for j in self.jobs.values() if j.state == JobState.QUEUED and not j.paused]
        return min(candidates, key=lambda j: j.key, default=None)

    def depth(self) -> dict[str, int]:
        """Unfinished, unpaused jobs per priority name."""
        depth = dict.fromkeys(PRIORITY_RANK, 0)
        for job in self.jobs.values():
            if not job.paused:
                depth[PRIORITY_NAME[job.priority]] += 1
        return depth
