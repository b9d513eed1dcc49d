"""JobBook: the scheduler's domain object. Owns the store and the queue, applies every job
state change in the same order on disk and in memory, and publishes the matching event.

Job life (SPEC.md, "Job states"): queued -> decoding -> ready -> completed | failed |
cancelled; `paused` is a flag on any unfinished job. A chunk's result is committed before
the next chunk of any job is dispatched. No sockets here: the Scheduler calls in.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.hub.history import History
from actors.hub.jobviews import JobViews
from actors.hub.latency import derive
from actors.hub.replies import error as _error
from actors.hub.replies import ok as _ok
from actors.hub.runqueue import JobQueue, QueuedJob
from actors.hub.store import SQLITE_MAX_INT, JobRow, Store
from actors.hub.streams import MEL_MAX_RANGE, AudioStreams, audio_problem, joined
from actors.runtime.config import Config
from actors.runtime.files import fsync_dir
from protocol.control import JobOptions, Reply, Report, SubmitAudio, SubmitFile
from protocol.errors import ErrorCode
from protocol.events import Event
from protocol.vocab import PRIORITY_RANK, REPORTED_KINDS, SAMPLE_RATE, SAMPLE_WIDTH_BYTES, JobState
from protocol.work import Chunk, ChunkResult, Decode, Plan

MAX_BEAM_SIZE = 32
"""Beyond this a window takes seconds per beam and CTranslate2 can exhaust memory."""
OPTION_KEYS = (
    "language",
    "task",
    "beam_size",
    "initial_prompt",
    "word_timestamps",
    "condition_on_previous_text",
)


def _number(value: Any) -> bool:
    """A finite int or float (not a bool): what a latency mark can be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def plan_problem(msg: Plan, stored: int, spans: list[list[int]]) -> str:
    """Why a PLAN cannot be applied to a job with `stored` spans, or "" if it can."""
    if not 0 <= msg.first_index <= stored:
        return f"first_index {msg.first_index} with {stored} spans stored"
    previous = spans[msg.first_index - 1][1] if msg.first_index else 0
    for span in msg.spans:
        if len(span) != 2 or not previous <= span[0] < span[1] <= SQLITE_MAX_INT:
            return f"span {span} is not an ordered [start, end) after {previous}"
        previous = span[1]
    if msg.final and not previous <= msg.samples <= SQLITE_MAX_INT:
        return f"spans end at {previous} but the audio has {msg.samples} samples"
    low, high = MEL_MAX_RANGE
    if not math.isfinite(msg.decode_s) or not (msg.mel_max is None or low <= msg.mel_max <= high):
        return f"decode_s {msg.decode_s} must be finite and mel_max {msg.mel_max} in [{low:g}, {high:g}]"
    return ""


def result_problem(msg: ChunkResult) -> str:
    """Why a CHUNK-RESULT cannot be stored (SQLite turns NaN into NULL, JSON holds no bytes),
    or "" if it can."""
    if not math.isfinite(msg.compute_s):
        return f"compute_s is {msg.compute_s}"
    for i, segment in enumerate(msg.segments):
        if not (math.isfinite(segment.start) and math.isfinite(segment.end)):
            return f"segment {i} has times {segment.start}, {segment.end}"
        if math.isnan(segment.avg_logprob) or math.isnan(segment.no_speech_prob):
            return f"segment {i} has a NaN avg_logprob or no_speech_prob"
        try:
            json.dumps(segment.words)
        except (TypeError, ValueError) as exc:
            return f"segment {i} has words that cannot be stored: {exc}"
    return ""


class JobBook:
    def __init__(self, cfg: Config, store: Store, log: Any, publish: Callable[[Event], None]) -> None:
        self.cfg = cfg
        self.store = store
        self.log = log
        self.publish = publish
        self.queue = JobQueue(max_window=int(cfg.get("ingest.max_chunk_s") * SAMPLE_RATE))
        self.max_chunk_attempts = int(cfg.get("scheduler.max_chunk_attempts"))
        self.max_decode_attempts = int(cfg.get("scheduler.max_decode_attempts"))
        self.min_samples = int(cfg.get("ingest.min_duration_s") * SAMPLE_RATE)
        self.overhead_s: deque[float] = deque(maxlen=1000)
        """Per chunk: dispatch-to-result time minus the model's compute time."""
        self.defaults = {key: cfg.get(f"defaults.{key}") for key in OPTION_KEYS if key != "initial_prompt"}
        self.history = History(cfg, store, log)
        self.models: dict[str, str] = {}
        """Per unfinished job: model of the transcriber that committed its latest window."""
        self.views = JobViews(store, self.queue, self.history, self.overhead_s)
        """The read side: views, lists, results, stats."""
        self.streams = AudioStreams(self)
        """Drain holds and streamed pieces of push-to-talk jobs (SPEC.md 12)."""

    def emit(self, event: str, job_id: str, /, **data: Any) -> None:
        self.publish(Event(kind=event, job_id=job_id, data=data))

    # --- recovery -----------------------------------------------------------------------

    def recover(self) -> None:
        """Load every unfinished job; each continues from its first uncommitted chunk."""
        for row in self.store.active_jobs():
            state = JobState.READY if row.plan_final or row.kind == "audio" else JobState.QUEUED
            if row.state != state:
                self.store.update_job(row.id, state=state)
            self.queue.add(
                QueuedJob(
                    id=row.id,
                    seq=row.seq,
                    priority=row.priority,
                    state=state,
                    paused=row.paused,
                    spans=self.store.spans(row.id),
                    position=row.position,
                    next_index=row.n_done,
                    plan_final=row.plan_final,
                    context=self.store.last_context(row.id),
                    mel_max_known=row.mel_max is not None,
                    audio=row.kind == "audio",
                )
            )
            if row.kind == "audio" and not row.plan_final:  # a streamed utterance, still open
                self.streams.opened(row.id, member="")
            self.log.info(
                "job_recovered",
                job=row.id,
                chunks_done=row.n_done,
                spans=row.n_spans,
                state=state,
                paused=row.paused,
            )
            if self.queue.jobs[row.id].finished:  # crashed between last commit and completion
                self.finish(row.id, JobState.COMPLETED)
        self._sweep_cache()
        self.history.enforce_retention()

    def _sweep_cache(self) -> None:
        """Delete cache files of jobs that ended while no one could clean up (crashes)."""
        for path in self.cfg.cache_dir.iterdir():
            if path.name.split(".", 1)[0] not in self.queue:
                path.unlink(missing_ok=True)
                self.log.info("cache_swept", file=path.name)

    # --- submissions --------------------------------------------------------------------

    def _resolve_options(self, options: JobOptions) -> dict[str, Any]:
        resolved = dict(self.defaults)
        resolved["initial_prompt"] = None
        for key, value in options.to_wire().items():
            if key in OPTION_KEYS and value is not None:
                resolved[key] = value
        if resolved["task"] not in ("transcribe", "translate"):
            raise ValueError(f"task must be transcribe or translate, not {resolved['task']!r}")
        if not 1 <= int(resolved["beam_size"]) <= MAX_BEAM_SIZE:
            raise ValueError(f"beam_size must be from 1 to {MAX_BEAM_SIZE}")
        return resolved

    def _new_row(
        self, kind: str, path: str, label: str, source: str, priority: str, options: JobOptions
    ) -> JobRow:
        if priority not in PRIORITY_RANK:
            raise ValueError(f"priority must be one of high, normal, low, not {priority!r}")
        job_id = os.urandom(6).hex()
        return JobRow(
            id=job_id,
            seq=self.store.next_seq(),
            kind=kind,
            source=source,
            path=path,
            label=label or Path(path).name,
            priority=PRIORITY_RANK[priority],
            state=JobState.QUEUED,
            options=self._resolve_options(options),
            cache_path=str(self.cfg.cache_dir / f"{job_id}.pcm"),
            created=time.time(),
        )

    def submit_file(self, req: SubmitFile) -> Reply:
        if not os.path.isabs(req.path):
            return _error(ErrorCode.INVALID_ARGUMENT, f"path must be absolute, got {req.path!r}")
        try:
            row = self._new_row("file", req.path, req.label, req.source, req.priority, req.options)
        except ValueError as exc:
            return _error(ErrorCode.INVALID_ARGUMENT, str(exc))
        self.store.insert_job(row)
        self.queue.add(QueuedJob(id=row.id, seq=row.seq, priority=row.priority))
        self.emit("queued", row.id, kind="file", priority=req.priority, label=row.label, source=row.source)
        return _ok(job=self.view(row))

    def submit_audio(self, req: SubmitAudio) -> Reply:
        if req.sample_rate != SAMPLE_RATE:
            return _error(
                ErrorCode.INVALID_ARGUMENT, f"sample_rate must be {SAMPLE_RATE}, got {req.sample_rate}"
            )
        problem = audio_problem(req.pcm, req.marks, req.mel_max)
        if problem:
            return _error(ErrorCode.INVALID_ARGUMENT, problem)
        samples = len(req.pcm) // SAMPLE_WIDTH_BYTES
        if samples < self.min_samples:
            return _error(
                ErrorCode.INVALID_ARGUMENT,
                f"audio is {samples / SAMPLE_RATE:.2f} s long; at least "
                f"{self.min_samples / SAMPLE_RATE:.2f} s is needed",
            )
        try:
            row = self._new_row("audio", "", req.label or "utterance", req.source, req.priority, req.options)
        except ValueError as exc:
            return _error(ErrorCode.INVALID_ARGUMENT, str(exc))
        tmp = f"{row.cache_path}.part"
        with open(tmp, "wb") as out:
            out.write(req.pcm)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, row.cache_path)
        fsync_dir(self.cfg.cache_dir)
        row.decoded, row.samples = True, samples
        row.state, row.plan_final = JobState.READY, not req.open  # one span per piece: no planning
        row.marks = {**req.marks, "received": time.time()}
        self.streams.mark_busy(row.id, row.marks)
        row.mel_max = req.mel_max
        self.store.insert_job(row, [[0, samples]])
        job = QueuedJob(
            id=row.id,
            seq=row.seq,
            priority=row.priority,
            state=JobState.READY,
            plan_final=not req.open,
            spans=[[0, samples]],
            mel_max_known=req.mel_max is not None,
            audio=True,
        )
        self.queue.add(job)
        self.streams.attach(req.hold, row.id)
        if req.open:
            self.streams.opened(row.id, req.member)
        self.emit(
            "queued",
            row.id,
            kind="audio",
            priority=req.priority,
            label=row.label,
            source=row.source,
            duration_s=samples / SAMPLE_RATE,
        )
        if job.finished:  # shorter than the shortest window: nothing to transcribe
            self.finish(row.id, JobState.COMPLETED)
        return _ok(job=self.view(row))

    def row(self, job_id: str) -> JobRow | None:
        return self.store.job(job_id)

    def view(self, row: JobRow) -> dict[str, Any]:
        """The job as clients see it (actors/hub/jobviews.py)."""
        return self.views.view(row)

    def display_state(self, row: JobRow) -> str:
        return self.views.display_state(row)

    # --- members' reports -------------------------------------------------------

    def report(self, req: Report) -> Reply:
        """Publish a member's event; `delivered` also completes the job's latency record."""
        if req.kind not in REPORTED_KINDS:
            return _error(
                ErrorCode.INVALID_ARGUMENT,
                f"cannot report {req.kind!r}; one of {', '.join(REPORTED_KINDS)}",
            )
        if req.kind != "delivered":
            self.emit(req.kind, req.job_id, **req.data)
            return _ok()
        row = self.row(req.job_id)
        if row is None:
            return _error(ErrorCode.NOT_FOUND, f"no job {req.job_id!r}")
        added = req.data.get("marks")
        if isinstance(added, dict):
            row.marks.update({k: float(v) for k, v in added.items() if isinstance(k, str) and _number(v)})
        latency = derive(row.marks)
        self.store.update_job(row.id, marks=row.marks)
        self.store.set_history_latency(row.id, latency)
        self.emit("delivered", row.id, **{**req.data, "marks": row.marks, "latency": latency})
        return _ok()

    def clear_history(self) -> Reply:
        return _ok(deleted=self.store.clear_history())

    # --- control of running jobs ----------------------------------------------------------

    def _active(self, job_id: str, verb: str) -> QueuedJob | Reply:
        """The unfinished job, or the error reply that says why it cannot be changed."""
        job = self.queue.get(job_id)
        if job is not None:
            return job
        row = self.row(job_id)
        if row is None:
            return _error(ErrorCode.NOT_FOUND, f"no job {job_id!r}")
        return _error(ErrorCode.INVALID_STATE, f"cannot {verb} job {job_id}: it is {row.state}")

    def _current(self, job_id: str) -> Reply:
        row = self.row(job_id)
        assert row is not None
        return _ok(job=self.view(row))

    def cancel(self, job_id: str) -> Reply:
        job = self._active(job_id, "cancel")
        if isinstance(job, Reply):
            return job
        self.finish(job_id, JobState.CANCELLED)
        return self._current(job_id)

    def pause(self, job_id: str) -> Reply:
        job = self._active(job_id, "pause")
        if isinstance(job, Reply):
            return job
        if not job.paused:
            job.paused = True
            self.store.update_job(job_id, paused=1)
            self.emit("paused", job_id, chunks_done=job.next_index)
        return self._current(job_id)

    def resume(self, job_id: str) -> Reply:
        job = self._active(job_id, "resume")
        if isinstance(job, Reply):
            return job
        if job.paused:
            job.paused = False
            self.store.update_job(job_id, paused=0)
            self.emit("resumed", job_id, chunks_done=job.next_index)
        return self._current(job_id)

    def set_priority(self, job_id: str, priority: str) -> Reply:
        if priority not in PRIORITY_RANK:
            return _error(
                ErrorCode.INVALID_ARGUMENT, f"priority must be high, normal or low, not {priority!r}"
            )
        job = self._active(job_id, "reprioritise")
        if isinstance(job, Reply):
            return job
        job.priority = PRIORITY_RANK[priority]
        self.store.update_job(job_id, priority=job.priority)
        self.emit("priority", job_id, priority=priority)
        return self._current(job_id)

    # --- work ---------------------------------------------------------------------------

    def decode_request(self, job_id: str) -> Decode | None:
        """Mark the job decoding and build the request, or fail it after too many tries."""
        row = self.row(job_id)
        job = self.queue.get(job_id)
        if row is None or job is None:
            return None
        attempts = row.decode_attempts + 1
        if attempts > self.max_decode_attempts:
            self.fail(
                job_id,
                f"decoding was interrupted {row.decode_attempts} times "
                "(the ingest worker stopped responding)",
            )
            return None
        job.state = JobState.DECODING
        self.store.update_job(job_id, state=JobState.DECODING, decode_attempts=attempts)
        path = "" if row.decoded else row.path
        return Decode(
            job_id=job_id, path=path, cache_path=row.cache_path, first_index=max(0, len(job.spans) - 1)
        )

    def chunk_request(self, job_id: str) -> Chunk | None:
        """Build the job's next window (reading its PCM from the cache), or fail the job."""
        row = self.row(job_id)
        job = self.queue.get(job_id)
        window = job.window() if job else None
        if row is None or job is None or window is None:
            return None
        attempts = self.store.window_attempt(job_id)
        if attempts > self.max_chunk_attempts:
            self.fail(
                job_id,
                f"chunk {job.next_index} failed {attempts - 1} times; last error: "
                f"{job.last_error or 'the transcriber stopped responding'}",
            )
            return None
        start, end = window
        try:
            with open(row.cache_path, "rb") as cache:
                cache.seek(start * SAMPLE_WIDTH_BYTES)
                pcm = cache.read((end - start) * SAMPLE_WIDTH_BYTES)
        except OSError as exc:
            self.fail(job_id, f"the audio cache is unreadable: {exc}")
            return None
        job.in_flight, job.in_flight_window = True, window
        if row.started is None:
            now = time.time()
            if row.kind == "audio":
                self.store.update_job(job_id, started=now, marks={**row.marks, "dispatched": now})
            else:
                self.store.update_job(job_id, started=now)
            self.emit("started", job_id, wait_s=round(time.time() - row.created, 3))
        return Chunk(
            job_id=job_id,
            index=job.next_index,
            start=start,
            pcm=pcm,
            options=JobOptions.from_wire(row.options),
            context=job.context,
            mel_max=row.mel_max,
        )

    def chunk_done(self, msg: ChunkResult, model: str = "") -> None:
        job = self.queue.get(msg.job_id)
        if job is None:
            self.log.info("result_dropped", job=msg.job_id, chunk=msg.index, why="job finished")
            return
        job.in_flight = False
        start, end = job.in_flight_window
        cont = msg.continuation
        fits = start < cont.next_start <= end
        if msg.index != job.next_index or cont.next_index != msg.index + 1 or not fits:
            self.log.warning(
                "result_rejected",
                job=msg.job_id,
                chunk=msg.index,
                expected=job.next_index,
                next_start=cont.next_start,
                window=[start, end],
            )
            job.last_error = "the transcriber's result does not fit the window it was given"
            return  # not in flight any more: the same window is dispatched again
        problem = result_problem(msg)
        if problem:
            self.log.warning("result_rejected", job=msg.job_id, chunk=msg.index, problem=problem)
            job.last_error = f"the transcriber's result cannot be stored: {problem}"
            return
        fresh = self.store.commit_chunk(msg, start, end)
        if not fresh:
            self.log.warning("result_duplicate", job=msg.job_id, chunk=msg.index)
        if model and self.models.get(msg.job_id) != model:
            self.models[msg.job_id] = model
            self.store.update_job(msg.job_id, model=model)
        job.next_index, job.position, job.context = cont.next_index, cont.next_start, cont.context
        job.last_error = ""
        self.emit(
            "progress",
            msg.job_id,
            chunk=msg.index + 1,
            plan_final=job.plan_final,
            audio_done_s=round(job.position / SAMPLE_RATE, 3),
            duration_s=(self._duration(msg.job_id) if job.plan_final else None),
            compute_s=round(msg.compute_s, 3),
        )
        if job.audio:  # its text so far (SPEC.md 12.4)
            self.streams.partial(msg.job_id, msg.segments if fresh else None, msg.index + 1)
        if job.finished:
            self.finish(msg.job_id, JobState.COMPLETED)

    def _duration(self, job_id: str) -> float | None:
        row = self.row(job_id)
        return row.samples / SAMPLE_RATE if row else None

    def chunk_failed(self, job_id: str, index: int, reason: str) -> None:
        job = self.queue.get(job_id)
        if job is None:
            return
        job.in_flight = False  # the same window is dispatched again, up to max_chunk_attempts
        job.last_error = reason if index == job.next_index else f"{reason} (reported for chunk {index})"
        self.log.warning("chunk_error", job=job_id, chunk=index, reason=reason)

    def planned(self, msg: Plan) -> None:
        job = self.queue.get(msg.job_id)
        if job is None:
            if msg.final:  # the job ended while ingest worked: drop its cache now
                row = self.row(msg.job_id)
                if row is not None:
                    Path(row.cache_path).unlink(missing_ok=True)
            return
        problem = plan_problem(msg, len(job.spans), job.spans)
        if problem:
            self.log.error("plan_invalid", job=msg.job_id, problem=problem)
            self.decode_failed(msg.job_id, f"ingest sent an invalid plan: {problem}")
            return
        if msg.mel_max is not None and not job.mel_max_known:
            self.store.update_job(msg.job_id, mel_max=msg.mel_max)
            job.mel_max_known = True
        if msg.spans or msg.first_index < len(job.spans):
            self.store.set_spans(msg.job_id, msg.first_index, msg.spans)
            job.set_spans(msg.first_index, msg.spans)
        if msg.final:
            self.store.finish_plan(msg.job_id, msg.samples, msg.decode_s)
            job.plan_final, job.state = True, JobState.READY
            speech = sum(e - s for s, e in job.spans) / SAMPLE_RATE
            self.emit(
                "decoded",
                msg.job_id,
                duration_s=msg.samples / SAMPLE_RATE,
                speech_s=round(speech, 3),
                spans=len(job.spans),
                decode_s=round(msg.decode_s, 3),
            )
            if job.finished:  # no speech at all: an empty transcript
                self.finish(msg.job_id, JobState.COMPLETED)

    def decode_failed(self, job_id: str, reason: str) -> None:
        if job_id in self.queue:
            self.fail(job_id, reason)
        row = self.row(job_id)
        if row is not None:  # ingest is done with it either way
            Path(row.cache_path).unlink(missing_ok=True)

    def task_lost(self, kind: str, job_id: str, index: int, refund: bool = False) -> None:
        """A worker died holding this job's task: it will be dispatched again. `refund`: the
        worker dropped it on purpose (a stop), so the attempt does not count (SPEC.md 6.5)."""
        job = self.queue.get(job_id)
        if job is None:
            return
        if kind == "chunk" and index == job.next_index and job.in_flight:
            job.in_flight = False
            if refund:
                self.store.refund_window_attempt(job_id)
            else:
                job.last_error = "the transcriber stopped responding"
        elif kind == "decode":
            job.state = JobState.QUEUED
            row = self.row(job_id)
            if refund and row is not None and row.decode_attempts > 0:
                self.store.update_job(job_id, state=JobState.QUEUED, decode_attempts=row.decode_attempts - 1)
            else:
                self.store.update_job(job_id, state=JobState.QUEUED)

    # --- endings ------------------------------------------------------------------------

    def fail(self, job_id: str, reason: str) -> None:
        self.finish(job_id, JobState.FAILED, reason)

    def finish(self, job_id: str, state: str, reason: str = "") -> None:
        now = time.time()
        row = self.row(job_id)
        assert row is not None
        fields: dict[str, Any] = {"state": state, "error": reason, "finished": now}
        if row.kind == "audio":
            row.marks[state] = now
            fields["marks"] = row.marks
        self.store.update_job(job_id, **fields)
        job = self.queue.remove(job_id)
        self.models.pop(job_id, None)
        self.streams.job_ended(job_id)
        if not (job and job.state == JobState.DECODING and not job.plan_final):
            Path(row.cache_path).unlink(missing_ok=True)  # else when ingest reports back
        data: dict[str, Any] = {
            "kind": row.kind,
            "label": row.label,
            "source": row.source,
            "wall_s": round(now - row.created, 3),
            "decode_s": round(row.decode_s, 3),
            "compute_s": round(row.compute_s, 3),
        }
        if row.started is not None:
            data["wait_s"] = round(row.started - row.created, 3)
        if state == JobState.COMPLETED:
            audio_s = row.samples / SAMPLE_RATE
            data.update(
                duration_s=audio_s,
                chunks=row.n_done,
                rtf=round(row.compute_s / audio_s, 4) if audio_s else None,
            )
            if row.kind == "audio":
                segments = self.store.segments(job_id)
                data["text"] = joined(s["text"] for s in segments)
                data["marks"] = row.marks
        if reason:
            data["reason"] = reason
        self.log.info(f"job_{state}", job=job_id, **{k: v for k, v in data.items() if k != "text"})
        self.emit(state, job_id, **data)
        if state == JobState.COMPLETED and row.kind == "audio":  # after the event: not on the text's path
            self.history.record(row, data["text"])
