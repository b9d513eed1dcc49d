"""Scheduling policy and job bookkeeping, without sockets: JobQueue alone, then JobBook with a
real SQLite store and a list for events (the scheduler's domain object, no fakes needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.hub.jobbook import JobBook
from actors.hub.runqueue import PRIORITY_RANK, JobQueue, QueuedJob
from actors.hub.store import Store
from actors.runtime.config import Config
from protocol.control import JobOptions, SubmitAudio, SubmitFile
from protocol.events import Event
from protocol.work import Chunk, ChunkResult, Continuation, Plan, Segment

SECOND = 16000


def q(job_id: str, seq: int, priority: str, **kw) -> QueuedJob:
    return QueuedJob(
        id=job_id,
        seq=seq,
        priority=PRIORITY_RANK[priority],
        state=kw.pop("state", "ready"),
        spans=kw.pop("spans", [[0, 3 * SECOND]]),
        plan_final=kw.pop("plan_final", True),
        max_window=SECOND,
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


def test_one_window_in_flight_per_job_and_paused_jobs_wait() -> None:
    queue = JobQueue()
    queue.add(q("a", 1, "high", in_flight=True))
    queue.add(q("b", 2, "low", paused=True))
    queue.add(q("c", 3, "low"))
    assert queue.next_chunk().id == "c"


def test_windows_walk_spans_from_each_continuation() -> None:
    job = q("a", 1, "normal", spans=[[0, int(2.5 * SECOND)], [10 * SECOND, 11 * SECOND]])
    assert job.window() == (0, SECOND)
    job.position = int(0.7 * SECOND)  # Whisper stopped at its last complete segment
    assert job.window() == (int(0.7 * SECOND), int(1.7 * SECOND))
    job.position = int(2.45 * SECOND)  # a tail under 0.1 s is skipped: the silence too
    assert job.window() == (10 * SECOND, 11 * SECOND)
    job.position = 11 * SECOND
    assert job.window() is None and job.finished


def test_a_plan_in_progress_runs_the_spans_it_has() -> None:
    job = q("a", 1, "normal", spans=[[0, int(1.5 * SECOND)]], plan_final=False, state="decoding")
    assert job.window() == (0, SECOND)
    job.position = SECOND
    assert job.window() == (SECOND, int(1.5 * SECOND))  # every span sent is decided
    job.position = int(1.5 * SECOND)
    assert job.window() is None and not job.finished  # more spans may come
    job.set_spans(1, [[int(1.5 * SECOND), 3 * SECOND]])
    assert job.window() == (int(1.5 * SECOND), int(2.5 * SECOND))
    job.position = int(2.2 * SECOND)  # a file's leftover runs alone (measured: see SPEC 10.3)
    assert job.window() == (int(2.2 * SECOND), 3 * SECOND)


def test_a_dictations_leftover_joins_the_piece_cut_right_after_it_when_both_fit() -> None:
    """Whisper stopped short of a streamed piece's end (its last words had no closing timestamp,
    or it ran out of text): decoded alone the leftover has no context, so it starts the next
    window, and waits for the next piece while the dictation goes on."""
    job = q("a", 1, "normal", spans=[[0, SECOND], [SECOND, int(1.6 * SECOND)]], plan_final=False, audio=True)
    job.max_window = 2 * SECOND
    assert job.window() == (0, SECOND)  # a span from its start: cut where the span was cut
    job.position = int(0.7 * SECOND)
    assert job.window() == (int(0.7 * SECOND), int(1.6 * SECOND))
    job.position = int(1.4 * SECOND)  # the leftover is in the last span: wait for the next
    assert job.window() is None
    job.set_spans(2, [[int(1.6 * SECOND), int(3.5 * SECOND)]])  # leftover + span > max_window
    assert job.window() == (int(1.4 * SECOND), int(1.6 * SECOND))
    job.position = int(1.6 * SECOND)
    assert job.window() == (int(1.6 * SECOND), int(3.5 * SECOND))
    job.position, job.plan_final = int(2.5 * SECOND), True  # plan final: nothing to wait for
    assert job.window() == (int(2.5 * SECOND), int(3.5 * SECOND))


def test_a_files_leftover_runs_alone() -> None:
    """Measured on the long-file benchmark, joining made no difference to the mean WER and
    dropped one clip more, so a file's windows end where its spans were cut (SPEC 10.3)."""
    job = q("a", 1, "normal", spans=[[0, SECOND], [SECOND, int(1.6 * SECOND)]])
    job.max_window = 2 * SECOND
    job.position = int(0.7 * SECOND)
    assert job.window() == (int(0.7 * SECOND), SECOND)


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
    cfg = Config.load(
        path=tmp_path / "none.toml", overrides=[f"paths.data_dir={tmp_path}", "ingest.max_chunk_s=1.0"]
    )
    events: list[Event] = []
    store = Store(cfg.store_path)

    class Log:
        def __getattr__(self, _name):
            return lambda *a, **k: None

    return JobBook(cfg, store, Log(), events.append), events


def plan(book: JobBook, job_id: str, n: int) -> None:
    """n seconds of speech in one span: n one-second windows."""
    book.decode_request(job_id)
    book.planned(Plan(job_id, 0, [[0, n * SECOND]], final=True, samples=n * SECOND))


def result(chunk: Chunk, text: str, consumed: int | None = None) -> ChunkResult:
    end = chunk.start + (consumed if consumed is not None else len(chunk.pcm) // 2)
    seg = Segment(
        start=chunk.start / SECOND, end=end / SECOND, text=f" {text}", avg_logprob=-0.1, no_speech_prob=0.0
    )
    cont = Continuation(chunk.job_id, chunk.index + 1, next_start=end)
    return ChunkResult(chunk.job_id, chunk.index, [seg], cont, "en", 0.5, 1.0)


def submit(book: JobBook, tmp_path: Path, priority: str, n: int) -> str:
    reply = book.submit_file(SubmitFile(path=str(tmp_path / "x.flac"), priority=priority))
    job_id = reply.data["job"]["id"]
    Path(book.store.job(job_id).cache_path).write_bytes(b"\x00\x00" * SECOND * n)
    plan(book, job_id, n)
    return job_id


def run_one(book: JobBook) -> tuple[str, int]:
    job = book.queue.next_chunk()
    chunk = book.chunk_request(job.id)
    book.chunk_done(result(chunk, f"{chunk.job_id}-{chunk.index}"))
    return chunk.job_id, chunk.index


def test_high_priority_runs_right_after_the_chunk_in_flight(book, tmp_path: Path) -> None:
    book, events = book
    low = submit(book, tmp_path, "low", 3)
    job = book.queue.next_chunk()
    chunk = book.chunk_request(job.id)  # low chunk 0 in flight
    high = book.submit_audio(SubmitAudio(pcm=b"\x00\x00" * SECOND)).data["job"]["id"]
    assert book.queue.next_chunk().id == high  # the other job is runnable, not the busy one
    book.chunk_done(result(chunk, "a"))
    assert [run_one(book) for _ in range(3)] == [(high, 0), (low, 1), (low, 2)]
    kinds = [(e.kind, e.job_id) for e in events if e.kind in ("completed",)]
    assert kinds == [("completed", high), ("completed", low)]
    assert book.views.result(low).data["text"] == "a low-1 low-2".replace("low", low)


def test_pause_keeps_the_chunk_in_flight_and_resume_continues(book, tmp_path: Path) -> None:
    book, events = book
    job_id = submit(book, tmp_path, "normal", 3)
    chunk = book.chunk_request(job_id)
    assert book.pause(job_id).data["job"]["state"] == "paused"
    book.chunk_done(result(chunk, "zero"))  # committed although paused
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
    book.chunk_done(result(chunk, "late"))
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
    assert (job.next_index, job.position, job.in_flight, job.plan_final) == (1, SECOND, False, True)
    again = fresh.chunk_request(job_id)
    assert (again.index, again.start) == (1, SECOND)


def test_submit_validation(book, tmp_path: Path) -> None:
    book, _ = book
    assert book.submit_file(SubmitFile(path="relative.wav")).code == "invalid_argument"
    assert book.submit_file(SubmitFile(path="/x.wav", priority="urgent")).code == "invalid_argument"
    assert book.submit_audio(SubmitAudio(pcm=b"\x00")).code == "invalid_argument"
    assert book.submit_audio(SubmitAudio(pcm=b"\x00\x00" * 100)).code == "invalid_argument"
    bad = SubmitFile(path="/x.wav", options=JobOptions(task="summarise"))
    assert book.submit_file(bad).code == "invalid_argument"
    assert book.views.status("nope").code == "not_found"


def test_recovery_completes_a_job_whose_last_chunk_was_committed(book, tmp_path: Path) -> None:
    book, _ = book
    job_id = submit(book, tmp_path, "normal", 2)
    run_one(book)
    chunk = book.chunk_request(job_id)
    book.store.commit_chunk(result(chunk, "last"), chunk.start, chunk.start + len(chunk.pcm) // 2)
    events: list[Event] = []
    fresh = JobBook(book.cfg, Store(book.cfg.store_path), book.log, events.append)
    fresh.recover()
    assert fresh.store.job(job_id).state == "completed"
    assert [e.kind for e in events] == ["completed"]
    assert fresh.views.result(job_id).data["text"].endswith("last")


def test_partial_consumption_moves_the_next_window(book, tmp_path: Path) -> None:
    book, _ = book
    job_id = submit(book, tmp_path, "normal", 2)
    first = book.chunk_request(job_id)
    book.chunk_done(result(first, "one", consumed=int(0.6 * SECOND)))
    second = book.chunk_request(job_id)
    assert (second.index, second.start, len(second.pcm) // 2) == (1, int(0.6 * SECOND), SECOND)
    bad = result(second, "x", consumed=0)  # no progress: rejected, the window runs again
    book.chunk_done(bad)
    assert book.store.job(job_id).n_done == 1
    assert book.chunk_request(job_id).start == int(0.6 * SECOND)


def test_cancelled_job_has_no_result(book, tmp_path: Path) -> None:
    book, _ = book
    job_id = submit(book, tmp_path, "normal", 1)
    book.cancel(job_id)
    reply = book.views.result(job_id)
    assert (reply.code, "cancelled" in reply.reason) == ("invalid_state", True)


def test_recovery_sweeps_caches_of_ended_jobs(book, tmp_path: Path) -> None:
    book, _ = book
    alive = submit(book, tmp_path, "normal", 2)
    cache = book.cfg.cache_dir
    (cache / "deadbeef0000.pcm").write_bytes(b"\x00\x00")
    (cache / "deadbeef0000.pcm.part").write_bytes(b"\x00\x00")
    fresh = JobBook(book.cfg, Store(book.cfg.store_path), book.log, lambda e: None)
    fresh.recover()
    assert sorted(p.name for p in cache.iterdir()) == [f"{alive}.pcm"]


def test_invalid_plans_fail_the_job_instead_of_corrupting_it(book, tmp_path: Path) -> None:
    book, _ = book
    for bad in (
        Plan("x", -1, [[0, 100]], final=False),
        Plan("x", 3, [[0, 100]], final=False),
        Plan("x", 0, [[100, 50]], final=False),
        Plan("x", 0, [[0, 10, 20]], final=False),
        Plan("x", 0, [[0, 100], [50, 200]], final=False),
        Plan("x", 0, [[0, 100]], final=True, samples=50),
    ):
        reply = book.submit_file(SubmitFile(path=str(tmp_path / "x.flac")))
        job_id = reply.data["job"]["id"]
        book.decode_request(job_id)
        book.planned(Plan(job_id, bad.first_index, bad.spans, bad.final, bad.samples))
        row = book.store.job(job_id)
        assert row.state == "failed" and "invalid plan" in row.error, bad
        assert book.store.spans(job_id) == []


def test_a_chunk_error_for_another_index_still_frees_the_job(book, tmp_path: Path) -> None:
    book, _ = book
    job_id = submit(book, tmp_path, "normal", 2)
    chunk = book.chunk_request(job_id)
    book.chunk_failed(job_id, chunk.index + 5, "odd")
    assert book.queue.next_chunk().id == job_id


def test_percentile_is_nearest_rank() -> None:
    from actors.hub.jobviews import percentile

    assert percentile([1, 2], 50) == 1
    assert percentile(list(range(1, 11)), 50) == 5
    assert percentile(list(range(1, 11)), 95) == 10
    assert percentile([], 50) is None
