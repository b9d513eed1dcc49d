"""What the socket fuzzing (tests/stack/test_fuzz.py) found, pinned as unit tests without processes:
each case used to raise inside a barrier (an `internal` reply on control, a
`work_handler_crashed` log on work) or was answered as if well framed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from actors.hub.jobbook import JobBook
from actors.hub.store import Store
from actors.runtime.config import Config
from actors.runtime.endpoint import Endpoint
from protocol import ErrorCode, ProtocolError, decode, encode
from protocol.codec import MAX_NESTING
from protocol.control import ListJobs, Reply, Report, SubmitAudio, SubmitFile
from protocol.events import Event
from protocol.ptt import Ptt
from protocol.work import ChunkResult, Continuation, Plan, Segment

SECOND = 16000


class Log:
    def __getattr__(self, _name: str) -> Any:
        return lambda *a, **k: None


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config.load(
        path=tmp_path / "none.toml",
        overrides=[f"paths.data_dir={tmp_path}/d", f"paths.runtime_dir={tmp_path}/r"],
    )


@pytest.fixture
def book(cfg: Config) -> JobBook:
    events: list[Event] = []
    return JobBook(cfg, Store(cfg.store_path), Log(), events.append)


# --- codec ----------------------------------------------------------------------------------


def report(depth: int) -> bytes:
    """A REPORT whose data nests `depth` arrays (the envelope, body and data maps add 3)."""
    data: Any = 1
    for _ in range(depth):
        data = [data]
    return msgpack.packb(
        {
            "v": 1,
            "type": "report",
            "id": "i",
            "sender": "s",
            "body": {"kind": "recording", "data": {"k": data}},
        }
    )


def test_frames_nested_past_the_limit_are_bad_frames() -> None:
    """REPORT data 900 arrays deep decoded, then re-encoding its event blew Python's stack."""
    _, record = decode(report(MAX_NESTING - 3))
    encode(record, "scheduler")  # whatever is accepted can be sent on
    for depth in (MAX_NESTING - 2, 900):
        with pytest.raises(ProtocolError) as caught:
            decode(report(depth))
        assert caught.value.code == ErrorCode.BAD_FRAME


# --- control handlers -----------------------------------------------------------------------


@pytest.mark.parametrize("states", [[], ["queued"]])
def test_list_jobs_takes_any_wire_limit(book: JobBook, states: list[str]) -> None:
    """limit 2**64 - 1 reached SQLite's LIMIT: OverflowError."""
    book.submit_file(SubmitFile(path="/x.wav"))
    reply = book.views.list_jobs(ListJobs(states=states, limit=2**64 - 1).states, 2**64 - 1)
    assert reply.status == "ok" and len(reply.data["jobs"]) == 1


@pytest.mark.parametrize(
    "fields",
    [{"mel_max": math.inf}, {"mel_max": math.nan}, {"marks": {"key_up": math.nan}}],
    ids=["mel_max inf", "mel_max nan", "a nan mark"],
)
def test_submit_audio_refuses_numbers_that_are_not_finite(book: JobBook, fields: dict[str, Any]) -> None:
    """mel_max inf made the transcriber return NaN log-probs (15 s a window); a NaN key_up
    became a NULL history.created when the job completed."""
    reply = book.submit_audio(SubmitAudio(pcm=bytes(2 * SECOND), source="ptt", **fields))
    assert (reply.status, reply.code) == ("error", ErrorCode.INVALID_ARGUMENT)


def test_delivered_marks_keep_only_str_keys_and_finite_numbers(book: JobBook) -> None:
    """A bin key in data.marks reached json.dumps: TypeError."""
    job = book.submit_audio(SubmitAudio(pcm=bytes(2 * SECOND), source="ptt")).data["job"]["id"]
    marks = {b"bin": 1.0, "nan": math.nan, "flag": True, "delivered": 5.0}
    reply = book.report(Report(kind="delivered", job_id=job, data={"marks": marks}))
    assert reply.status == "ok"
    stored = book.store.job(job)
    assert stored is not None and stored.marks["delivered"] == 5.0
    assert not {"bin", "nan", "flag"} & set(stored.marks)


# --- work handlers --------------------------------------------------------------------------


def running_window(book: JobBook) -> tuple[str, int]:
    """A new job with its first window in flight: (job id, the window's end)."""
    job = book.submit_audio(SubmitAudio(pcm=bytes(2 * SECOND), priority="normal")).data["job"]["id"]
    chunk = book.chunk_request(job)
    assert chunk is not None
    return job, chunk.start + len(chunk.pcm) // 2


@pytest.mark.parametrize(
    "segment, compute_s",
    [
        (Segment(0.0, 1.0, " x", -0.1, 0.0, words=[{b"start": 0.0}]), 0.1),
        (Segment(0.0, 1.0, " x", -0.1, 0.0, words=[{"start": b"\x00"}]), 0.1),
        (Segment(0.0, 1.0, " x", math.nan, 0.0), 0.1),
        (Segment(math.inf, 1.0, " x", -0.1, 0.0), 0.1),
        (Segment(0.0, 1.0, " x", -0.1, 0.0), math.nan),
    ],
    ids=["a bin key in words", "bytes in words", "a NaN avg_logprob", "an infinite start", "a NaN compute_s"],
)
def test_a_result_that_cannot_be_stored_is_rejected_and_retried(
    book: JobBook, segment: Segment, compute_s: float
) -> None:
    """These raised in store.commit_chunk (json.dumps; NaN into a NOT NULL column) after the
    window was already marked done, so the handler crashed and the job's error said nothing;
    an infinite time was stored as is."""
    job, end = running_window(book)
    result = ChunkResult(job, 0, [segment], Continuation(job, 1, end), "en", compute_s, 1.0)
    book.chunk_done(result)
    queued = book.queue.get(job)
    assert queued is not None and not queued.in_flight and queued.next_index == 0
    assert "cannot be stored" in queued.last_error
    assert book.store.job(job) is not None and book.store.job(job).n_done == 0  # type: ignore[union-attr]
    assert book.chunk_request(job) is not None  # the window goes out again


@pytest.mark.parametrize(
    "plan",
    [
        dict(spans=[[0, 2**64 - 1]], final=False),
        dict(spans=[], final=True, samples=2**64 - 1),
        dict(spans=[[0, SECOND]], final=True, samples=SECOND, decode_s=math.nan),
        dict(spans=[[0, SECOND]], final=False, mel_max=math.inf),
    ],
    ids=[
        "a span past SQLite's INTEGER",
        "samples past SQLite's INTEGER",
        "a NaN decode_s",
        "an infinite mel_max",
    ],
)
def test_a_plan_that_cannot_be_stored_fails_the_job(book: JobBook, plan: dict[str, Any]) -> None:
    """These raised in store.set_spans / finish_plan (OverflowError, NOT NULL) after the
    scheduler had released the ingest worker, so the job stayed `decoding` with no task; an
    infinite mel_max was stored and sent in every CHUNK (the model then returns NaN)."""
    job = book.submit_file(SubmitFile(path="/x.wav")).data["job"]["id"]
    assert book.decode_request(job) is not None
    book.planned(Plan(job_id=job, first_index=0, **plan))
    row = book.store.job(job)
    assert row is not None and row.state == "failed" and "invalid plan" in row.error


# --- member endpoint ------------------------------------------------------------------------


def test_member_endpoint_answers_extra_routing_frames_with_bad_frame(cfg: Config) -> None:
    """Frames as on control (SPEC.md 3.3): it served such a request as if well framed."""
    cfg.runtime_dir.mkdir(parents=True, exist_ok=True)
    endpoint = Endpoint(cfg, "ptt", Log())
    peer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    peer.connect(cfg.endpoint("ptt"))
    handled: list[Ptt] = []

    def handle(req: Ptt) -> Reply:
        handled.append(req)
        return Reply(status="ok")

    try:
        codes = []
        for frames in (
            [b"", b"", encode(Ptt(action="status"), "t")],
            [b"", encode(Ptt(action="status"), "t")],
        ):
            peer.send_multipart(frames)
            assert endpoint.socket.poll(5000)
            endpoint.serve(Ptt, handle, "audio")
            assert peer.poll(5000)
            got = peer.recv_multipart()
            assert got[:-1] == frames[:-1]
            codes.append(decode(got[-1])[1].code or "ok")  # type: ignore[attr-defined]
        assert codes == ["bad_frame", "ok"] and len(handled) == 1
    finally:
        peer.close()
        endpoint.close()
