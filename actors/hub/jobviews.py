"""The job book's read side: a job as clients see it, lists, results, push-to-talk latency and
the scheduler's stats. It reads the store and the run queue and changes neither."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from actors.hub.history import History
from actors.hub.latency import derive
from actors.hub.replies import error, ok
from actors.hub.runqueue import PRIORITY_NAME, JobQueue
from actors.hub.store import SQLITE_MAX_INT, JobRow, Store
from actors.hub.streams import joined
from protocol.control import Reply
from protocol.errors import ErrorCode
from protocol.vocab import FINAL_STATES, SAMPLE_RATE, JobState


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class JobViews:
    def __init__(self, store: Store, queue: JobQueue, history: History, overhead_s: deque[float]) -> None:
        self.store = store
        self.queue = queue
        self.history = history
        self.overhead_s = overhead_s
        """Per chunk: dispatch-to-result time minus the model's compute time (the book appends)."""

    def row(self, job_id: str) -> JobRow | None:
        return self.store.job(job_id)

    def display_state(self, row: JobRow) -> str:
        if row.state in FINAL_STATES:
            return row.state
        if row.paused:
            return "paused"
        job = self.queue.get(row.id)
        if (job and job.in_flight) or row.n_done:
            return "running"
        return JobState.DECODING if row.state == JobState.DECODING else JobState.QUEUED

    def view(self, row: JobRow) -> dict[str, Any]:
        """The job as clients see it."""
        done_s = row.position / SAMPLE_RATE
        duration = row.samples / SAMPLE_RATE if row.plan_final else None
        return {
            "id": row.id,
            "kind": row.kind,
            "source": row.source,
            "label": row.label,
            "path": row.path,
            "priority": PRIORITY_NAME[row.priority],
            "state": self.display_state(row),
            "error": row.error,
            "in_flight": bool((job := self.queue.get(row.id)) and job.in_flight),
            "chunks_done": row.n_done,
            "spans": row.n_spans,
            "plan_final": row.plan_final,
            "audio_done_s": round(done_s, 3),
            "duration_s": duration,
            "created": row.created,
            "started": row.started,
            "finished": row.finished,
            "decode_s": round(row.decode_s, 3),
            "compute_s": round(row.compute_s, 3),
            "language": row.language,
            "options": row.options,
            "marks": row.marks,
        }

    def status(self, job_id: str) -> Reply:
        row = self.row(job_id)
        if row is None:
            return error(ErrorCode.NOT_FOUND, f"no job {job_id!r}")
        return ok(job=self.view(row))

    def list_jobs(self, states: list[str], limit: int) -> Reply:
        if limit < 1:
            return error(ErrorCode.INVALID_ARGUMENT, f"limit must be at least 1, got {limit}")
        scan = min(limit * 20 if states else limit, SQLITE_MAX_INT)
        views = [self.view(r) for r in self.store.jobs(limit=scan)]
        if states:
            views = [v for v in views if v["state"] in states]
        return ok(jobs=views[:limit])

    def result(self, job_id: str) -> Reply:
        row = self.row(job_id)
        if row is None:
            return error(ErrorCode.NOT_FOUND, f"no job {job_id!r}")
        if row.state in (JobState.FAILED, JobState.CANCELLED):
            why = f": {row.error}" if row.error else ""
            return error(ErrorCode.INVALID_STATE, f"job {job_id} {row.state}{why}; it has no result")
        if row.state != JobState.COMPLETED:
            return error(ErrorCode.NOT_READY, f"job {job_id} is {self.display_state(row)}; no result yet")
        segments = self.store.segments(job_id)
        text = joined(s["text"] for s in segments)
        return ok(job=self.view(row), segments=segments, text=text, language=row.language)

    def ptt_latency(self) -> dict[str, Any]:
        """p50/p95 of release-to-text and release-to-result over recent push-to-talk jobs."""
        marks = self.store.ptt_marks(1000)
        derived = [derive(m) for m in marks]
        out: dict[str, Any] = {}
        for name in ("release_to_text", "release_to_result"):
            values = [d[name] for d in derived if name in d]
            out[name] = {
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "count": len(values),
            }
        busy = [m["busy_at_key_up"] for m in marks if "busy_at_key_up" in m]
        out["busy_at_key_up"] = {
            "count": len(busy),
            "busy": int(sum(busy)),
            "fraction": round(sum(busy) / len(busy), 3) if busy else None,
        }
        return out

    def list_history(self, search: str, limit: int) -> Reply:
        if limit < 0:
            return error(ErrorCode.INVALID_ARGUMENT, f"limit must be 0 (all) or more, got {limit}")
        return ok(**self.history.entries(search, limit))

    def stats(self) -> dict[str, Any]:
        timings = self.store.chunk_timings(1000)
        compute = [c for c, _ in timings]
        audio = sum(a for _, a in timings)
        counts = self.store.state_counts()
        return {
            "queue_depth": self.queue.depth(),
            "jobs": counts,
            "chunks_measured": len(compute),
            "chunk_compute_s": {"p50": percentile(compute, 50), "p95": percentile(compute, 95)},
            "real_time_factor": round(sum(compute) / audio, 4) if audio else None,
            "chunk_overhead_ms": {
                "p50": _ms(percentile(list(self.overhead_s), 50)),
                "p95": _ms(percentile(list(self.overhead_s), 95)),
                "count": len(self.overhead_s),
            },
            "ptt_latency_s": self.ptt_latency(),
        }
