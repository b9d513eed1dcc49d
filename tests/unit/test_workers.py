"""Worker handlers with fake or real domain objects, no sockets: what each task replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.runtime.config import Config
from actors.workers.ingest import Ingest
from actors.workers.model import ChunkOutput
from actors.workers.transcriber import Transcriber
from protocol.codec import Envelope
from protocol.control import JobOptions
from protocol.records import Record
from protocol.work import Chunk, ChunkError, ChunkResult, Decode, DecodeError, Plan

ENV = Envelope(type="x", id="m1", parent="", sender="s", time=0.0)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config.load(path=tmp_path / "none.toml", overrides=[f"paths.runtime_dir={tmp_path}/r"])


def run(worker: Any, record: Record) -> list[tuple[Record, str]]:
    replies: list[tuple[Record, str]] = []
    worker.perform(record, ENV, lambda r, parent: replies.append((r, parent)))
    return replies


class Backend:
    model_name = "fake"

    def __init__(self, fail: Exception | None = None, consumed: int | None = None) -> None:
        self.fail, self.consumed, self.calls = fail, consumed, []

    def load(self) -> None:
        if isinstance(self.fail, OSError):
            raise RuntimeError("cannot load model 'fake': no such file")

    def transcribe(self, audio, offset_s, options, prompt, mel_max=None) -> ChunkOutput:
        self.calls.append((len(audio), offset_s, prompt, mel_max))
        if self.fail:
            raise self.fail
        seg = {
            "start": offset_s,
            "end": offset_s + 1,
            "text": " hi",
            "avg_logprob": -0.1,
            "no_speech_prob": 0.0,
            "words": [],
        }
        return ChunkOutput([seg], "en", 0.01, self.consumed if self.consumed is not None else len(audio))


RESOLVED = {
    "task": "transcribe",
    "beam_size": 5,
    "word_timestamps": False,
    "condition_on_previous_text": False,
}
"""Options as the scheduler sends them: every one resolved (language None = detect)."""


def chunk(options: JobOptions | None = None, **kw: Any) -> Chunk:
    given = {k: v for k, v in (options or JobOptions()).to_wire().items() if v is not None}
    resolved = JobOptions.from_wire({**RESOLVED, **given})
    return Chunk(
        job_id="j", index=2, start=32000, pcm=b"\x00\x00" * 16000, mel_max=1.5, options=resolved, **kw
    )


def test_transcriber_replies_with_segments_and_the_continuation(cfg: Config) -> None:
    backend = Backend(consumed=12000)
    [(reply, parent)] = run(Transcriber(cfg, backend), chunk())
    assert parent == "m1" and isinstance(reply, ChunkResult)
    assert reply.continuation.next_start == 32000 + 12000 and reply.continuation.next_index == 3
    assert backend.calls == [(16000, 2.0, None, 1.5)]


def test_transcriber_conditions_on_context_only_when_asked(cfg: Config) -> None:
    backend = Backend()
    worker = Transcriber(cfg, backend)
    run(worker, chunk(context="before", options=JobOptions(initial_prompt="Names")))
    run(worker, chunk(context="before", options=JobOptions(condition_on_previous_text=True)))
    [(reply, _)] = run(worker, chunk(options=JobOptions(condition_on_previous_text=True)))
    assert [c[2] for c in backend.calls] == ["Names", "before", None]
    assert reply.continuation.context == "hi"


def test_a_chunk_without_resolved_options_is_refused(cfg: Config) -> None:
    """The scheduler resolves every option; the transcriber has no defaults of its own."""
    backend = Backend()
    bare = Chunk(job_id="j", index=2, start=32000, pcm=b"\x00\x00" * 16000)
    [(reply, _)] = run(Transcriber(cfg, backend), bare)
    assert isinstance(reply, ChunkError) and reply.code == "bad_message" and "task" in reply.reason
    assert backend.calls == []


def test_a_chunk_that_raises_gets_an_error_and_the_worker_goes_on(cfg: Config) -> None:
    worker = Transcriber(cfg, Backend(fail=ValueError("bad window")))
    [(reply, _)] = run(worker, chunk())
    assert isinstance(reply, ChunkError) and reply.code == "chunk_failed" and "bad window" in reply.reason


def test_a_model_that_did_not_load_answers_every_chunk(cfg: Config) -> None:
    worker = Transcriber(cfg, Backend(fail=OSError()))
    worker.load()
    assert worker.ready_message().health == "degraded"
    [(reply, _)] = run(worker, chunk())
    assert isinstance(reply, ChunkError) and reply.code == "model_unavailable"


def test_ingest_decodes_plans_and_measures(cfg: Config, long_audio: Path, tmp_path: Path) -> None:
    replies = run(Ingest(cfg), Decode(job_id="j", path=str(long_audio), cache_path=str(tmp_path / "j.pcm")))
    plans = [r for r, _ in replies]
    assert all(isinstance(p, Plan) for p in plans)
    assert plans[-1].final and not plans[-1].spans and plans[-1].samples == 90 * 16000
    assert all(p.mel_max is not None for p in plans)
    assert (tmp_path / "j.pcm").stat().st_size == 2 * 90 * 16000
    # a second DECODE (after a crash) reuses the cache and skips the stored spans
    again = run(
        Ingest(cfg),
        Decode(
            job_id="j",
            path=str(long_audio),
            cache_path=str(tmp_path / "j.pcm"),
            first_index=plans[-1].first_index - 1,
        ),
    )
    assert all(p.first_index >= plans[-1].first_index - 1 for p, _ in again)


def test_ingest_reports_undecodable_files(cfg: Config, tmp_path: Path) -> None:
    bad = tmp_path / "x.mp3"
    bad.write_text("no audio here\n" * 50)
    [(reply, _)] = run(Ingest(cfg), Decode(job_id="j", path=str(bad), cache_path=str(tmp_path / "j.pcm")))
    assert isinstance(reply, DecodeError) and "not a media file" in reply.reason
    assert not (tmp_path / "j.pcm").exists()


def test_ingest_failure_reply_for_crashes(cfg: Config) -> None:
    reply = Ingest(cfg).failure(Decode(job_id="j", path="/x", cache_path="/y"), "boom")
    assert isinstance(reply, DecodeError) and reply.code == "internal"
