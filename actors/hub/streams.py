"""The scheduler's side of drain and streaming (SPEC.md 12): drain holds, streamed pieces of
open push-to-talk jobs, and whether the model was busy with other work at a key release.

AudioStreams sees the job book only through the small `Book` interface below (the store, the
queue, a job's row and view, finishing a job, publishing). The book calls in when an audio job
is submitted, committed or ended; the scheduler calls in directly for HOLD from the audio
actor's member socket, APPEND-AUDIO, a member forgotten, a worker's window starting and ending,
and the periodic tick. Releasing a hold or closing an open job is published as it happens.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from actors.hub.holds import BusyLog, Holds, Released
from actors.hub.replies import error as _error
from protocol.control import AppendAudio, Reply
from protocol.errors import ErrorCode
from protocol.vocab import SAMPLE_WIDTH_BYTES, JobState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from actors.hub.runqueue import JobQueue
    from actors.hub.store import JobRow, Store
    from actors.runtime.config import Config
    from protocol.work import Segment


class Book(Protocol):
    """What AudioStreams uses of the job book (actors/hub/jobbook.py)."""

    cfg: Config
    log: Any
    store: Store
    queue: JobQueue

    def row(self, job_id: str) -> JobRow | None: ...
    def view(self, row: JobRow) -> dict[str, Any]: ...
    def finish(self, job_id: str, state: str, reason: str = "") -> None: ...
    def emit(self, event: str, job_id: str, /, **data: Any) -> None: ...


@dataclass
class OpenJob:
    """A streamed utterance whose final piece has not come yet."""

    member: str
    """The audio actor's member name ("" after a scheduler restart: only the timeout closes it)."""
    last_piece: float
    """Monotonic time of the last piece."""


MEL_MAX_RANGE = (-50.0, 50.0)
"""A log-mel reference level outside this is no recording's (real ones lie in about [-10, 3]);
the model would return NaN for every window."""


def audio_problem(pcm: bytes, marks: dict[str, float], mel_max: float | None) -> str:
    """Why SUBMIT-AUDIO or APPEND-AUDIO fields cannot be used, or ""."""
    if len(pcm) % SAMPLE_WIDTH_BYTES:
        return "pcm must be whole int16 samples"
    if not all(math.isfinite(v) for v in marks.values()):
        return "marks must be finite numbers"
    if mel_max is not None and not MEL_MAX_RANGE[0] <= mel_max <= MEL_MAX_RANGE[1]:
        return f"mel_max must be a number between {MEL_MAX_RANGE[0]:g} and {MEL_MAX_RANGE[1]:g}"
    return ""


class AudioStreams:
    def __init__(self, book: Book) -> None:
        self.book = book
        self.holds = Holds()
        self.busy = BusyLog()
        self.open: dict[str, OpenJob] = {}
        self.texts: dict[str, str] = {}  # an audio job's text so far, for job.partial
        self.open_timeout_s = float(book.cfg.get("scheduler.open_audio_timeout_s"))

    # --- holds ------------------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """A key is down somewhere: only high-priority windows may start (SPEC.md 6.4)."""
        return self.holds.active

    def window_started(self, worker: bytes, job_id: str) -> None:
        self.busy.started(worker, job_id)

    def window_ended(self, worker: bytes) -> None:
        self.busy.ended(worker)

    def take_hold(self, hold_id: str, sender: bytes, max_s: float) -> None:
        known = hold_id in self.holds.holds
        hold = self.holds.take(hold_id, sender, max_s if math.isfinite(max_s) else 0.0)
        if not known:
            self.book.log.info("hold_on", hold=hold_id, max_s=max_s)
            self.book.emit("hold", hold.job_id, hold_id=hold_id, state="on")

    def released(self, ended: list[Released]) -> None:
        for r in ended:
            self.book.log.info("hold_off", hold=r.hold.hold_id, why=r.why, held_s=r.held_s)
            data = {"hold_id": r.hold.hold_id, "state": "off", "why": r.why, "held_s": r.held_s}
            self.book.emit("hold", r.hold.job_id, **data)

    def release_hold(self, hold_id: str) -> None:
        self.released(self.holds.release(hold_id))

    def attach(self, hold_id: str, job_id: str) -> None:
        if hold_id:
            self.holds.attach(hold_id, job_id)

    def job_ended(self, job_id: str) -> None:
        self.released(self.holds.job_ended(job_id))
        self.open.pop(job_id, None)
        self.texts.pop(job_id, None)

    def member_gone(self, identity: bytes, name: str, name_still_registered: bool) -> None:
        """A member registration was forgotten: its holds end; if the process has no other
        registration (it did not just reconnect), its open jobs are closed as they are."""
        self.released(self.holds.sender_lost(identity))
        if name_still_registered:
            return
        for job_id in [j for j, o in self.open.items() if o.member == name]:
            self.close(job_id, f"its sender {name} went away")

    def tick(self) -> None:
        self.released(self.holds.expire())
        now = time.monotonic()
        for job_id in [j for j, o in self.open.items() if now - o.last_piece > self.open_timeout_s]:
            self.close(job_id, f"no piece for {self.open_timeout_s:.0f} s")

    # --- open jobs --------------------------------------------------------------------

    def opened(self, job_id: str, member: str) -> None:
        self.open[job_id] = OpenJob(member, time.monotonic())

    def mark_busy(self, job_id: str, marks: dict[str, float]) -> None:
        """Add `busy_at_key_up` once the key release is known (SPEC.md 12.6)."""
        if "key_up" in marks and "busy_at_key_up" not in marks:
            marks["busy_at_key_up"] = 1.0 if self.busy.busy_with_other(marks["key_up"], job_id) else 0.0

    def append(self, req: AppendAudio) -> Reply:
        book = self.book
        row = book.row(req.job_id)
        if row is None:
            return _error(ErrorCode.NOT_FOUND, f"no job {req.job_id!r}")
        problem = audio_problem(req.pcm, req.marks, req.mel_max)
        if problem:
            return _error(ErrorCode.INVALID_ARGUMENT, problem)
        samples = len(req.pcm) // SAMPLE_WIDTH_BYTES
        applied = req.offset >= 0 and req.offset + samples <= row.samples and (samples or row.plan_final)
        if row.kind == "audio" and applied:
            return Reply(status="ok", data={"job": book.view(row)})  # sent again: applied already
        job = book.queue.get(req.job_id)
        if row.kind != "audio" or job is None or row.plan_final or req.job_id not in self.open:
            return _error(ErrorCode.INVALID_STATE, f"job {req.job_id} is not an open audio job")
        if req.offset != row.samples:
            return _error(
                ErrorCode.INVALID_ARGUMENT,
                f"the piece starts at sample {req.offset} but the job has {row.samples} samples",
            )
        with open(row.cache_path, "ab") as cache:
            cache.write(req.pcm)
            cache.flush()
            os.fsync(cache.fileno())
        marks = {**row.marks, **req.marks}
        self.mark_busy(req.job_id, marks)
        fields: dict[str, Any] = {"samples": row.samples + samples, "marks": marks}
        if req.mel_max is not None:
            fields["mel_max"] = req.mel_max
        if req.final:
            fields.update(plan_final=1)
        if samples:
            span = [row.samples, row.samples + samples]
            book.store.append_piece(req.job_id, len(job.spans), span, **fields)
            job.spans.append(span)
        else:
            book.store.update_job(req.job_id, **fields)
        self.open[req.job_id].last_piece = time.monotonic()
        if req.final:
            job.plan_final = True
            self.open.pop(req.job_id, None)
        if job.finished:
            book.finish(req.job_id, JobState.COMPLETED)
        return Reply(status="ok", data={"job": book.view(book.row(req.job_id) or row)})

    def close(self, job_id: str, why: str) -> None:
        """Close an open job with the audio it has."""
        self.open.pop(job_id, None)
        job = self.book.queue.get(job_id)
        if job is None:
            return
        self.book.log.warning("open_audio_closed", job=job_id, why=why)
        self.book.store.update_job(job_id, plan_final=1)
        job.plan_final = True
        if job.finished:
            self.book.finish(job_id, JobState.COMPLETED)

    def partial(self, job_id: str, segments: list[Segment] | None, chunks: int) -> None:
        """`job.partial` after a committed window of an audio job: its text so far, kept per
        job and extended by the window's new `segments` (read from the store after a restart,
        or when `segments` is None: the window had been committed already)."""
        text = self.texts.get(job_id)
        if text is None or segments is None:
            text = joined(s["text"] for s in self.book.store.segments(job_id))
        else:
            text = joined([text, *(s.text for s in segments)])
        self.texts[job_id] = text
        self.book.emit("partial", job_id, text=text, chunks=chunks)


def joined(texts: Iterable[str]) -> str:
    """Texts stripped and joined with single spaces, empty ones left out (as a job's text)."""
    return " ".join(t.strip() for t in texts if t.strip())
