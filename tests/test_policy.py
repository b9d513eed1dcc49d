"""Scheduling policy and job bookkeeping, without sockets: JobQueue alone, then JobBook with a
real SQLite store and a list for events (the scheduler's domain object, no fakes needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.config import Config
from actors.jobs import JobBook
from actors.policy import PRIORITY_RANK, JobQueue, QueuedJob
from actors.store import Store
from protocol.control import JobOptions, SubmitAudio, SubmitFile
from protocol.events import Event
from protocol.work import ChunkResult, Continuation, Plan, Segment


def q(job_id: str, seq: int, priority: str, **kw) -> QueuedJob:
    return QueuedJob(
        id=job_id,
        seq=seq,
        priority=PRIORITY_RANK[priority],
        state="ready",
        n_chunks=kw.pop("n_chunks", 3),
        plan_final=True,
        **kw,
    )


def test_highest_priority_first_then_fifo() -> None:
    queue = JobQueue()
    for job in (q("low1", 1, "low"), q("norm", 2, "normal"), q("low2", 3, "low"), q("high", 4, "high")):
        queue.add(job)
    order = []
    while (job := queue.next_chunk()) is not None:
        order.append(job.id)
        queue.remove(job.id)
    assert order == ["high", "norm", "low1", "low2"]


def test_one_chunk_in_flight_per_job_and_paused_jobs_wait() -> None:
    queue = JobQueue()
    queue.add(q("a", 1, "high", in_flight=True))
    queue.add(q("b", 2, "low", paused=True))
    queue.add(q("c", 3, "low"))
    assert queue.next_chunk().id == "c"


def test_continuation_advances_until_finished() -> None:
    job = q("a", 1, "normal", n_chunks=2)
    assert job.runnable and not job.finished
    job.next_index = 2
    assert not job.runnable and job.finished


def test_chunks_run_while_planning_continues() -> None:
    job = QueuedJob(id="a", seq=1, priority=1, state="decoding", n_chunks=1)
    assert job.runnable and not job.finished


def test_decode_order_skips_paused_and_planned_jobs() -> None:
    queue = JobQueue()
    queue.add(QueuedJob(id="p", seq=1, priority=0, paused=True))
    queue.add(QueuedJob(id="r", seq=2, priority=0, state="ready"))
    queue.add(QueuedJob(id="l", seq=3, priority=2))
    queue.add(QueuedJob(id="n", seq=4, priority=1))
    assert queue.next_decode().id == "n"


# --- JobBook --------------------------------------------------------------------------------


@pytest.fixture
def book(tmp_path: Path) -> tuple[JobBook, list[Event]]:
    cfg = Config.load(path=tmp_path / "none.toml", overrides=[f"paths.data_dir={tmp_path}"])
    events: list[Event] = []
    store = Store(cfg.store_path)

    class Log:
        def __getattr__(self, _name):
            return lambda *a, **k: None

    return JobBook(cfg, store, Log(), events.append), events


def plan(book: JobBook, job_id: str, n: int) -> None:
    book.decode_request(job_id)
    book.planned(
        Plan(job_id, 0, [[i * 16000, (i + 1) * 16000] for i in range(n)], final=True, samples=n * 16000)
    )


def result(job_id: str, index: int, text: str) -> ChunkResult:
    seg = Segment(start=index, end=index + 1, text=f" {text}", avg_logprob=-0.1, no_speech_prob=0.0)
    return ChunkResult(job_id, index, [seg], Continuation(job_id, index + 1, context=""), "en", 0.5, 1.0)


def submit(book: JobBook, tmp_path: Path, priority: str, n: int) -> str:
    reply = book.submit_file(SubmitFile(path=str(tmp_path / "x.flac"), priority=priority))
    job_id = reply.data["job"]["id"]
    Path(book.store.job(job_id).cache_path).write_bytes(b"\x00\x00" * 16000 * n)
    plan(book, job_id, n)
    return job_id


def run_one(book: JobBook) -> tuple[str, int]:
    job = book.queue.next_chunk()
    chunk = book.chunk_request(job.id)
    book.chunk_done(result(chunk.job_id, chunk.index, f"{chunk.job_id}-{chunk.index}"))
    return chunk.job_id, chunk.index


def test_high_priority_runs_right_after_the_chunk_in_flight(book, tmp_path: Path) -> None:
    book, events = book
    low = submit(book, tmp_path, "low", 3)
    job = book.queue.next_chunk()
    chunk = book.chunk_request(job.id)  # low chunk 0 in flight
    high = book.submit_audio(SubmitAudio(pcm=b"\x00\x00" * 16000)).data["job"]["id"]
    assert book.queue.next_chunk().id == high  # the other job is runnable, not the busy one
    book.chunk_done(result(low, chunk.index, "a"))
    assert [run_one(book) for _ in range(3)] == [(high, 0), (low, 1), (low, 2)]
    kinds = [(e.kind, e.job_id) for e in events if e.kind in ("completed",)]
    assert kinds == [("completed", high), ("completed", low)]
    assert book.result(low).data["text"] == "a low-1 low-2".replace("low", low)


def test_pause_keeps_the_chunk_in_flight_and_resume_continues(book, tmp_path: Path) -> None:
    book, events = book
    job_id = submit(book, tmp_path, "normal", 3)
    chunk = book.chunk_request(job_id)
    assert book.pause(job_id).data["job"]["state"] == "paused"
    book.chunk_done(result(job_id, chunk.index, "zero"))  # committed although paused
    assert book.queue.next_chunk() is None
    assert book.store.job(job_id).n_done == 1
    book.resume(job_id)
    assert run_one(book) == (job_id, 1)
    assert [e.kind for e in events if e.job_id == job_id].count("paused") == 1


def test_cancel_drops_the_late_result_and_frees_the_queue(book, tmp_path: Path) -> None:
    book, _events = book
    job_id = submit(book, tmp_path, "normal", 3)
    chunk = book.chunk_request(job_id)
    book.cancel(job_id)
    book.chunk_done(result(job_id, chunk.index, "late"))
    assert book.store.job(job_id).state == "cancelled"
    assert book.store.job(job_id).n_done == 0
    assert book.cancel(job_id).code == "invalid_state"
    assert book.queue.next_chunk() is None


def test_priority_change_reorders(book, tmp_path: Path) -> None:
    book, _ = book
    first = submit(book, tmp_path, "normal", 1)
    second = submit(book, tmp_path, "low", 1)
    book.set_priority(second, "high")
    assert book.queue.next_chunk().id == second
    assert book.set_priority(first, "urgent").code == "invalid_argument"


def test_chunk_errors_retry_then_fail_with_the_reason(book, tmp_path: Path) -> None:
    book, events = book
    job_id = submit(book, tmp_path, "normal", 2)
    for _ in range(book.max_chunk_attempts):
        chunk = book.chunk_request(job_id)
        book.chunk_failed(job_id, chunk.index, "model_unavailable: cannot load model")
    assert book.chunk_request(job_id) is None
    row = book.store.job(job_id)
    assert row.state == "failed" and "cannot load model" in row.error
    assert events[-1].kind == "failed"


def test_recovery_resumes_from_first_uncommitted_chunk(book, tmp_path: Path) -> None:
    book, _ = book
    job_id = submit(book, tmp_path, "normal", 3)
    run_one(book)
    book.chunk_request(job_id)  # chunk 1 in flight when the "crash" happens
    fresh = JobBook(book.cfg, Store(book.cfg.store_path), book.log, lambda e: None)
    fresh.recover()
    job = fresh.queue.get(job_id)
    assert (job.next_index, job.in_flight, job.plan_final) == (1, False, True)
    assert fresh.chunk_request(job_id).index == 1


def test_submit_validation(book, tmp_path: Path) -> None:
    book, _ = book
    assert book.submit_file(SubmitFile(path="relative.wav")).code == "invalid_argument"
    assert book.submit_file(SubmitFile(path="/x.wav", priority="urgent")).code == "invalid_argument"
    assert book.submit_audio(SubmitAudio(pcm=b"\x00")).code == "invalid_argument"
    assert book.submit_audio(SubmitAudio(pcm=b"\x00\x00" * 100)).code == "invalid_argument"
    bad = SubmitFile(path="/x.wav", options=JobOptions(task="summarise"))
    assert book.submit_file(bad).code == "invalid_argument"
    assert book.status("nope").code == "not_found"


def test_recovery_completes_a_job_whose_last_chunk_was_committed(book, tmp_path: Path) -> None:
    book, _ = book
    job_id = submit(book, tmp_path, "normal", 2)
    run_one(book)
    chunk = book.chunk_request(job_id)
    book.store.commit_chunk(result(job_id, chunk.index, "last"))  # crash before completion
    events: list[Event] = []
    fresh = JobBook(book.cfg, Store(book.cfg.store_path), book.log, events.append)
    fresh.recover()
    assert fresh.store.job(job_id).state == "completed"
    assert [e.kind for e in events] == ["completed"]
    assert fresh.result(job_id).data["text"].endswith("last")


def test_cancelled_job_has_no_result(book, tmp_path: Path) -> None:
    book, _ = book
    job_id = submit(book, tmp_path, "normal", 1)
    book.cancel(job_id)
    reply = book.result(job_id)
    assert (reply.code, "cancelled" in reply.reason) == ("invalid_state", True)
