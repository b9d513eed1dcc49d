"""The real stack: scheduler, ingest and transcriber as processes over real ipc sockets, the
real tiny.en model and the real SQLite store. Preemption, identity, durability, bad input."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from actors.runtime.client import read_events
from protocol.control import Pause, Ping, Resume
from tests.support.harness import Stack, collect_events, pcm16, poll, transcript

pytestmark = pytest.mark.stack


def words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c == " ").split())


def committed(stack: Stack, job_id: str) -> int:
    with sqlite3.connect(stack.cfg.store_path) as db:
        return db.execute("SELECT COUNT(*) FROM chunks WHERE job_id=?", (job_id,)).fetchone()[0]


def transcribed_chunks(stack: Stack, job_id: str) -> list[int]:
    return [r["chunk"] for r in stack.log_events("transcriber", "chunk_done") if r["job"] == job_id]


# --- the basics -------------------------------------------------------------------------


def test_say_returns_the_utterance(shared_stack: Stack, utterance: tuple[Path, str]) -> None:
    wav, text = utterance
    out = shared_stack.cli("say", str(wav))
    assert out.returncode == 0, out.stderr
    assert words(out.stdout) == words(text)


def test_transcribe_wait_writes_every_format(shared_stack: Stack, long_audio: Path, tmp_path: Path) -> None:
    out = shared_stack.cli(
        "transcribe",
        str(long_audio),
        "--wait",
        "--format",
        "txt,srt,vtt,json",
        "--output-dir",
        str(tmp_path),
        "--language",
        "en",
    )
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["long.json", "long.srt", "long.txt", "long.vtt"]
    assert "printing" in (tmp_path / "long.txt").read_text().lower() or (tmp_path / "long.txt").stat().st_size
    assert (tmp_path / "long.srt").read_text().startswith("1\n00:00:")
    listing = shared_stack.cli("jobs", "--json")
    assert listing.returncode == 0 and '"completed"' in listing.stdout


def test_cli_exit_codes(tmp_path: Path) -> None:
    with Stack() as idle:  # never started: nothing listens
        out = idle.cli("jobs")
        assert out.returncode == 1
        assert "not running" in out.stderr and "sottovoce run" in out.stderr
        assert idle.cli("transcribe").returncode == 2  # usage
        assert idle.cli("result", "x", "--format", "docx").returncode == 2


# --- preemption -------------------------------------------------------------------------


def test_high_priority_runs_before_the_files_next_chunk(
    shared_stack: Stack, long_audio: Path, utterance: tuple[Path, str]
) -> None:
    stack = shared_stack  # it kills and reconfigures nothing
    wav, text = utterance
    sub = stack.subscribe()
    with stack.hold_window() as held:  # the file's first window stays in flight meanwhile
        file_job = stack.submit_file(long_audio, priority="low")
        held.wait()
        collect_events(sub, lambda ev: any(e.kind == "dispatched" and e.job_id == file_job for e in ev), 60)
        say_job = stack.submit_audio(pcm16(wav), priority="high")  # queued when this returns
    events = collect_events(
        sub,
        lambda ev: (
            sum(e.kind == "dispatched" and e.job_id == file_job for e in ev) >= 1
            and any(e.kind == "completed" and e.job_id == say_job for e in ev)
        ),
        120,
    )
    order = [(e.kind, e.job_id) for e in events if e.kind in ("dispatched", "completed")]
    say_done = order.index(("completed", say_job))
    next_file_chunk = order.index(("dispatched", file_job))
    assert say_done < next_file_chunk, order
    assert words(stack.result(say_job)["text"]) == words(text)
    assert stack.wait_job(file_job)["state"] == "completed"


# --- identity ---------------------------------------------------------------------------


def test_identical_when_interrupted_by_high_priority_jobs(
    shared_stack: Stack, long_audio: Path, utterance: tuple[Path, str], clean_transcript
) -> None:
    stack = shared_stack  # it kills and reconfigures nothing
    wav, _ = utterance
    sub = stack.subscribe()
    job = stack.submit_file(long_audio, priority="low")
    says = []
    for n in range(3):  # one utterance after each of the first chunks
        collect_events(
            sub, lambda ev, n=n: sum(e.kind == "dispatched" and e.job_id == job for e in ev) >= 1, 60
        )
        says.append(stack.submit_audio(pcm16(wav)))
        if stack.job(job)["state"] == "completed":
            break
    assert stack.wait_job(job)["state"] == "completed"
    assert all(stack.wait_job(s)["state"] == "completed" for s in says)
    assert transcript(stack, job) == clean_transcript


def test_identical_after_pause_and_resume(shared_stack: Stack, long_audio: Path, clean_transcript) -> None:
    stack = shared_stack  # it kills and reconfigures nothing
    sub = stack.subscribe()
    job = stack.submit_file(long_audio, priority="normal")
    collect_events(sub, lambda ev: any(e.kind == "progress" and e.job_id == job for e in ev), 60)
    stack.client.call(Pause(job_id=job))
    view = stack.wait_job(job, states=("paused",))
    poll(lambda: not stack.job(job)["in_flight"], 30, what="the chunk in flight to commit")
    done = committed(stack, job)
    list(read_events(sub, 0.3))  # what was published before the pause took hold
    # nothing is dispatched while paused: the committed count stays put
    with pytest.raises(TimeoutError):
        collect_events(sub, lambda ev: any(e.kind == "dispatched" and e.job_id == job for e in ev), 2.5)
    assert committed(stack, job) == done
    stack.client.call(Resume(job_id=job))
    assert stack.wait_job(job)["state"] == "completed"
    assert view["chunks_done"] >= 1
    assert transcript(stack, job) == clean_transcript
    assert len(transcribed_chunks(stack, job)) == len(set(transcribed_chunks(stack, job)))  # nothing redone


# --- durability -------------------------------------------------------------------------


def test_scheduler_sigkill_resumes_from_first_uncommitted_chunk(
    stack: Stack, long_audio: Path, clean_transcript
) -> None:
    job = stack.submit_file(long_audio, priority="low")
    poll(lambda: committed(stack, job) >= 1, 60, what="a committed chunk")
    stack.signal("scheduler", signal.SIGKILL)
    done_before = committed(stack, job)
    stack.start("scheduler")
    stack.wait_ready()
    final = stack.wait_job(job)
    assert final["state"] == "completed", final["error"]
    assert transcript(stack, job) == clean_transcript
    chunks = transcribed_chunks(stack, job)
    for index in range(done_before):  # committed before the crash: never transcribed again
        assert chunks.count(index) == 1, chunks
    assert len(stack.log_events("ingest", "decoded")) == 1  # the cache was reused


def test_transcriber_sigkill_mid_chunk(stack: Stack, long_audio: Path, clean_transcript) -> None:
    held = stack.hold_window(chunk=1)
    job = stack.submit_file(long_audio, priority="low")
    held.wait()
    stack.signal("transcriber", signal.SIGKILL)  # chunk 1 is in flight
    stack.start("transcriber")
    assert stack.wait_job(job)["state"] == "completed"
    assert transcript(stack, job) == clean_transcript


def test_ingest_sigkill_while_planning(stack: Stack, long_audio: Path, tmp_path: Path) -> None:
    # 30 s of speech, 5 minutes of silence, the speech again: planned in 120 s VAD blocks, the
    # second copy's spans in a later batch than the first's; ingest is held before that batch
    speech, silence = tmp_path / "speech.flac", tmp_path / "silence.flac"
    subprocess.run(["sox", str(long_audio), str(speech), "trim", "0", "30"], check=True)
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", "300"], check=True
    )
    padded = tmp_path / "padded.flac"
    subprocess.run(["sox", str(speech), str(silence), str(speech), str(padded)], check=True)
    sub = stack.subscribe()
    with stack.hold_planning(batch=1) as held:
        job = stack.submit_file(padded, priority="low")
        held.wait()
        collect_events(sub, lambda ev: any(e.kind == "dispatched" and e.job_id == job for e in ev), 60)
        assert not stack.job(job)["plan_final"], "ingest is held mid-planning"
        stack.signal("ingest", signal.SIGKILL)
    stack.start("ingest")
    final = stack.wait_job(job, timeout_s=300)
    assert final["state"] == "completed", final["error"]
    segments = stack.result(job)["segments"]
    assert segments[-1]["end"] > 360 * 0.95  # the second copy too, planned by the new ingest
    assert not [s for s in segments if 35 < s["start"] < 325]  # the silence was skipped
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # nothing planned twice
    assert len(stack.log_events("ingest", "decoded")) == 1  # decoded once, re-planned from the cache
    assert len(stack.log_events("ingest", "planned")) == 1  # the killed ingest never finished


# --- bad input --------------------------------------------------------------------------


def test_bad_files_fail_clearly_and_good_ones_still_complete(
    stack: Stack, long_audio: Path, utterance: tuple[Path, str], tmp_path: Path
) -> None:
    wav, text = utterance
    (tmp_path / "text.mp3").write_text("this is a text file renamed to mp3\n" * 20)
    (tmp_path / "empty.flac").write_bytes(b"")
    data = long_audio.read_bytes()
    (tmp_path / "truncated.flac").write_bytes(data[: len(data) // 3])
    subprocess.run(["sox", str(wav), str(tmp_path / "short.wav"), "trim", "0", "0.1"], check=True)
    expected = {
        "text.mp3": "not a media file",
        "empty.flac": "empty",
        "truncated.flac": "truncated",
        "short.wav": "at least",
    }
    jobs = {name: stack.submit_file(tmp_path / name) for name in expected}
    good = stack.submit_file(wav)
    for name, job in jobs.items():
        final = stack.wait_job(job)
        assert final["state"] == "failed", (name, final)
        assert expected[name] in final["error"], (name, final["error"])
    assert stack.wait_job(good)["state"] == "completed"
    assert words(stack.result(good)["text"]) == words(text)
    assert stack.cli("result", jobs["text.mp3"]).returncode == 1


def test_model_that_fails_to_load_fails_jobs_with_the_reason(utterance: tuple[Path, str]) -> None:
    wav, _ = utterance
    with Stack({"transcriber.model": "/nonexistent/model"}) as s:
        s.start()
        s.wait_ready()
        final = s.wait_job(s.submit_audio(pcm16(wav)), timeout_s=60)
        assert final["state"] == "failed"
        assert "cannot load model" in final["error"] and "/nonexistent/model" in final["error"]
        assert s.procs["transcriber"].poll() is None  # the worker stays up


def test_say_real_recordings(shared_stack: Stack, real_speech: Path) -> None:
    """Real human speech through the CLI's `say`: the text matches the reference."""
    import csv

    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    with open(real_speech / "manifest.tsv", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if 2.0 <= float(r["duration_s"]) <= 12.0]
    picked = [r for r in rows if "jfk" in r["file"]] + rows[1:4]
    refs, hyps = [], []
    for row in picked:
        out = shared_stack.cli("say", str(real_speech / row["file"]))
        assert out.returncode == 0, out.stderr
        refs.append(norm(row["reference"]))
        hyps.append(norm(out.stdout))
    assert jiwer.wer(refs, hyps) < 0.15, list(zip(refs, hyps, strict=True))


def test_cli_controls_jobs(stack: Stack, long_audio: Path) -> None:
    """pause, priority, resume, cancel and events through the real CLI."""
    import json

    sub = stack.subscribe()
    running = stack.submit_file(long_audio, priority="normal")
    queued = json.loads(stack.cli("transcribe", str(long_audio), "--priority", "low", "--json").stdout)
    waiting = queued["jobs"][0]["id"]
    collect_events(sub, lambda ev: any(e.kind == "dispatched" and e.job_id == running for e in ev), 60)
    assert json.loads(stack.cli("pause", running, "--json").stdout)["job"]["state"] == "paused"
    moved = json.loads(stack.cli("priority", waiting, "high", "--json").stdout)["job"]
    assert moved["priority"] == "high"
    # the paused job's chunk in flight commits, then the reprioritised job runs
    collect_events(sub, lambda ev: any(e.kind == "dispatched" and e.job_id == waiting for e in ev), 60)
    assert stack.cli("cancel", waiting).returncode == 0
    assert stack.wait_job(waiting)["state"] == "cancelled"
    assert stack.cli("resume", running).returncode == 0
    assert stack.wait_job(running)["state"] == "completed"
    listing = json.loads(stack.cli("jobs", "--state", "cancelled", "--json").stdout)["jobs"]
    assert [j["id"] for j in listing] == [waiting]
    stats = json.loads(stack.cli("stats", "--json").stdout)
    assert stats["jobs"]["completed"] == 1 and stats["jobs"]["cancelled"] == 1
    assert stats["chunk_compute_s"]["p95"] > 0 and stats["chunk_overhead_ms"]["count"] >= 1


def test_two_transcribers_share_the_queue(long_audio: Path, clean_transcript) -> None:
    with Stack() as s:
        s.start("scheduler", "ingest", "transcriber", "transcriber#2")
        s.wait_ready()
        poll(lambda: len(s.client.call(Ping(actor="transcriber"))["workers"]) == 2, 60)
        sub = s.subscribe()
        jobs = [s.submit_file(long_audio, priority="low") for _ in range(2)]
        events = collect_events(sub, lambda ev: sum(e.kind == "completed" for e in ev) == 2, 300)
        workers = {e.data["worker"] for e in events if e.kind == "dispatched"}
        assert len(workers) == 2  # both did work, one job each at a time
        assert [transcript(s, j) for j in jobs] == [clean_transcript, clean_transcript]


def test_silence_completes_with_an_empty_transcript(shared_stack: Stack, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", "8"], check=True
    )
    job = shared_stack.submit_file(silence)
    assert shared_stack.wait_job(job)["state"] == "completed"
    assert shared_stack.result(job)["text"] == ""
