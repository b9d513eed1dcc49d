"""Stopping and dying (SPEC.md 14): graceful stop finishes or abandons the window in flight,
presence events and memory figures, no orphans, and the warden killing what hangs.

Every test runs real actors over real sockets with the real model; the test process plays the
supervisor (it starts what was killed), so the protocol's side is checked on its own here.
The supervisord-run stack is tested in tests/stack/test_lifecycle.py and tests/stack/test_chaos.py.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import procinfo
from protocol.control import Stats
from tests.support.harness import REPO, Stack, collect_events, poll, transcript

pytestmark = pytest.mark.stack

Transcript = list[tuple[float, float, str]]


def committed(stack: Stack, job_id: str) -> int:
    with sqlite3.connect(stack.cfg.store_path) as db:
        return int(db.execute("SELECT COUNT(*) FROM chunks WHERE job_id=?", (job_id,)).fetchone()[0])


def attempts(stack: Stack, job_id: str) -> int:
    with sqlite3.connect(stack.cfg.store_path) as db:
        return int(db.execute("SELECT attempts FROM jobs WHERE id=?", (job_id,)).fetchone()[0])


def is_dispatch(job: str, chunk: int) -> Any:
    return lambda e: e.kind == "dispatched" and e.job_id == job and e.data["chunk"] == chunk


def wait_for(sub: Any, match: Any, timeout_s: float, seen: list[Any] | None = None) -> Any:
    """The first event matching `match` (events read on the way are added to `seen`)."""
    events = collect_events(sub, lambda es: any(match(e) for e in es), timeout_s)
    if seen is not None:
        seen.extend(events)
    return next(e for e in events if match(e))


def pid_of(worker_name: str) -> int:
    return int(worker_name.rpartition(":")[2])


def gone(pid: int) -> bool:
    return procinfo.state_of(pid) in (None, "Z")


# --- graceful stop ----------------------------------------------------------------------


def test_a_stopping_transcriber_finishes_its_window(long_audio: Path, clean_transcript: Transcript) -> None:
    with Stack() as s:
        s.start()
        s.wait_ready()
        sub = s.subscribe(b"")
        with s.hold_window(chunk=1) as held:
            job = s.submit_file(long_audio, priority="low")
            held.wait()  # window 1 is in the transcriber's hands, not decoded yet
            s.procs["transcriber"].send_signal(signal.SIGTERM)  # acted on once continued
        seen: list[Any] = []
        wait_for(sub, lambda e: e.kind == "progress" and e.job_id == job and e.data["chunk"] == 2, 60, seen)
        assert s.procs["transcriber"].wait(timeout=30) == 0
        kinds = [(e.kind, e.data.get("role")) for e in seen if e.kind in ("left", "lost")]
        assert kinds == [("left", "transcriber")], "it left, said so, and was not lost"
        assert committed(s, job) == 2
        assert attempts(s, job) == 0, "the window it finished counts as done, not as a failure"
        s.start("transcriber")
        assert s.wait_job(job, 120)["state"] == "completed"
        assert transcript(s, job) == clean_transcript
        done = [r["chunk"] for r in s.log_events("transcriber", "chunk_done") if r["job"] == job]
        assert sorted(done) == sorted(set(done)), "no window was transcribed twice"


def test_a_stopping_scheduler_commits_the_window_in_flight(
    long_audio: Path, clean_transcript: Transcript
) -> None:
    with Stack() as s:
        s.start()
        s.wait_ready()
        with s.hold_window(chunk=1) as held:
            job = s.submit_file(long_audio, priority="low")
            held.wait()
            s.procs["scheduler"].send_signal(signal.SIGTERM)
            poll(lambda: s.log_events("scheduler", "stop_requested"), 30, what="the scheduler to be stopping")
        assert s.procs["scheduler"].wait(timeout=30) == 0
        assert committed(s, job) == 2, "the window in flight at SIGTERM was committed before exit"
        assert not (s.cfg.runtime_dir / "control").exists(), "socket files are removed"
        s.start("scheduler")
        assert s.wait_job(job, 120)["state"] == "completed"
        assert transcript(s, job) == clean_transcript
        done = [r["chunk"] for r in s.log_events("transcriber", "chunk_done") if r["job"] == job]
        assert done == sorted(set(done)), f"resumed after the committed window, none redone: {done}"


def test_abandon_redispatches_at_once_and_counts_no_attempt(
    long_audio: Path, clean_transcript: Transcript
) -> None:
    with Stack(settings={"scheduler.on_stop": "abandon"}) as s:
        s.start("scheduler", "ingest", "transcriber", "transcriber#2")
        s.wait_ready()
        poll(lambda: len(s.client.call(Stats())["workers"]) == 3, 30, what="both transcribers")
        sub = s.subscribe(b"job.")
        with s.hold_window(chunk=1) as held:
            job = s.submit_file(long_audio, priority="low")
            first = wait_for(sub, is_dispatch(job, 1), 120)
            assert held.wait() == pid_of(first.data["worker"])
            victim = next(n for n, p in s.procs.items() if p.pid == held.pid)
            s.procs[victim].send_signal(signal.SIGTERM)  # pending until the SIGCONT
            stopped_at = time.monotonic()
        again = wait_for(sub, is_dispatch(job, 1), 30)
        redispatch_s = time.monotonic() - stopped_at
        assert pid_of(again.data["worker"]) != s.procs[victim].pid
        assert redispatch_s < 1.5, f"abandoned work waits for no expiry ({redispatch_s:.2f} s)"
        assert s.procs[victim].wait(timeout=5) == 0
        assert attempts(s, job) == 1, "only the second dispatch counts"
        assert s.wait_job(job, 120)["state"] == "completed"
        assert transcript(s, job) == clean_transcript


def test_an_abandoning_scheduler_stops_at_once(long_audio: Path, clean_transcript: Transcript) -> None:
    with Stack(settings={"scheduler.on_stop": "abandon"}) as s:
        s.start()
        s.wait_ready()
        with s.hold_window(chunk=1) as held:
            job = s.submit_file(long_audio, priority="low")
            held.wait()
            stopped_at = time.monotonic()
            s.procs["scheduler"].send_signal(signal.SIGTERM)
            assert s.procs["scheduler"].wait(timeout=10) == 0
            stop_s = time.monotonic() - stopped_at
        assert stop_s < 1.5, f"it waits for no window ({stop_s:.2f} s)"
        assert committed(s, job) == 1, "the window in flight was abandoned, not committed"
        s.start("scheduler")
        assert s.wait_job(job, 120)["state"] == "completed"
        assert transcript(s, job) == clean_transcript


# --- presence, memory, orphans ----------------------------------------------------------


def test_presence_events_and_memory_per_actor() -> None:
    with Stack() as s:
        s.start("scheduler")
        poll(lambda: (s.cfg.runtime_dir / "events").exists(), 30, what="the events socket")
        sub = s.subscribe(b"worker.")
        s.start("ingest", "transcriber")
        s.wait_ready()
        seen: list[Any] = []
        joined = collect_events(
            sub,
            lambda es: {e.data["role"] for e in es if e.kind == "joined"} >= {"ingest", "transcriber"},
            30,
        )
        assert all(e.data["pid"] == s.procs[e.data["role"]].pid for e in joined if e.kind == "joined")
        stats = poll(
            lambda: (d := s.client.call(Stats())) and all(w["rss_bytes"] for w in d["workers"]) and d,
            10,
            what="memory figures from every worker's heartbeat",
        )
        by_role = {w["role"]: w["rss_bytes"] for w in stats["workers"]}
        assert by_role["transcriber"] > 50 << 20, "the transcriber holds the model"
        assert 10 << 20 < by_role["ingest"] < by_role["transcriber"]
        assert stats["scheduler"]["rss_bytes"] > 10 << 20
        out = s.cli("stats")
        assert "memory" in out.stdout and "transcriber" in out.stdout, out.stdout
        ingest_pid = s.procs["ingest"].pid
        assert procinfo.actor_started_at(ingest_pid, "ingest") == procinfo.started_at(ingest_pid)
        assert procinfo.actor_started_at(ingest_pid, "transcriber") is None, "another role's process"
        assert procinfo.actor_started_at(os.getpid(), "ingest") is None, "not an actor"
        killed_at = time.monotonic()
        s.procs["ingest"].send_signal(signal.SIGKILL)  # not reaped yet: a zombie
        lost = wait_for(sub, lambda e: e.kind == "lost", 10, seen)
        noticed_s = time.monotonic() - killed_at
        s.procs["ingest"].wait(timeout=10)
        assert lost.data["role"] == "ingest" and lost.data["pid"] == ingest_pid
        assert lost.data["why"] == "process exited", lost.data
        assert noticed_s < 1.5, f"at the next heartbeat tick, not after 3 missed beats ({noticed_s:.2f} s)"


def test_no_actor_outlives_its_parent() -> None:
    with Stack() as s:
        wrapper = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import subprocess, sys, time\n"
                "p = subprocess.Popen([sys.executable, '-m', 'actors', 'ingest'])\n"
                "print(p.pid, flush=True)\n"
                "time.sleep(600)\n",
            ],
            env=s.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert wrapper.stdout is not None
        child = int(wrapper.stdout.readline())
        poll(lambda: s.log_events("ingest", "ready_sent"), 30, what="the actor to be up")
        wrapper.kill()
        wrapper.wait()
        poll(lambda: gone(child), 10, what=f"actor {child} to exit after its parent was killed")


# --- the warden -------------------------------------------------------------------------


def test_warden_kills_a_stopped_transcriber_and_its_window_moves_on(
    long_audio: Path, clean_transcript: Transcript
) -> None:
    with Stack() as s:
        s.start("scheduler", "ingest", "transcriber", "warden")
        s.wait_ready(roles=("ingest", "transcriber", "warden"))
        sub = s.subscribe(b"")
        held = s.hold_window(chunk=1)  # the transcriber stops itself holding window 1: hung
        job = s.submit_file(long_audio, priority="low")
        held.wait()
        hung = s.procs["transcriber"]
        stopped_at = time.monotonic()
        seen: list[Any] = []
        killed = wait_for(sub, lambda e: e.kind == "killed", 15, seen)
        detected_s = time.monotonic() - stopped_at
        assert killed.data["pid"] == hung.pid and killed.data["role"] == "transcriber"
        lost = next(e for e in seen if e.kind == "lost")
        assert lost.data["pid"] == hung.pid and lost.data["why"] == "missed heartbeats"
        assert hung.wait(timeout=10) == -signal.SIGKILL
        assert detected_s < 6.0, f"liveness 3 x 1 s, then the kill ({detected_s:.1f} s)"
        s.start("transcriber")  # what the supervisor does with a process that died
        again = wait_for(sub, is_dispatch(job, 1), 60)
        assert pid_of(again.data["worker"]) == s.procs["transcriber"].pid != hung.pid
        assert s.wait_job(job, 120)["state"] == "completed"
        assert transcript(s, job) == clean_transcript


def test_warden_spares_live_workers_and_kills_a_hung_scheduler() -> None:
    with Stack(settings={"warden.scheduler_timeout_s": 6}) as s:
        s.start("scheduler", "ingest", "transcriber", "warden")
        s.wait_ready(roles=("ingest", "transcriber", "warden"))
        sub = s.subscribe(b"worker.")
        scheduler = s.procs["scheduler"]
        # Stopped for 4 s: every worker gives up on it and registers again on a new socket;
        # the old registrations are then lost, but their processes are alive and back.
        scheduler.send_signal(signal.SIGSTOP)
        poll(
            lambda: (
                s.log_events("ingest", "scheduler_silent") and s.log_events("transcriber", "scheduler_silent")
            ),
            15,
            what="both workers to give up on the stopped scheduler",
        )
        scheduler.send_signal(signal.SIGCONT)
        collect_events(sub, lambda es: sum(e.kind == "lost" for e in es) >= 2, 15)
        both = {"ingest", "transcriber"}
        poll(
            lambda: {r["role"] for r in s.log_events("warden", "suspect_recovered")} == both,
            15,
            what="the warden to find both lost workers registered again",
        )
        assert all(s.procs[n].poll() is None for n in ("ingest", "transcriber"))
        assert not s.log_events("warden", "killing")
        # Stopped for longer than warden.scheduler_timeout_s: killed. The workers lost meanwhile
        # cannot be judged while it does not answer, so they are spared.
        scheduler.send_signal(signal.SIGSTOP)
        assert scheduler.wait(timeout=20) == -signal.SIGKILL
        assert [r["role"] for r in s.log_events("warden", "killing")] == ["scheduler"]
        s.start("scheduler")
        s.wait_ready(roles=("ingest", "transcriber", "warden"))
        assert os.path.exists(s.cfg.runtime_dir / "control")


def test_a_window_whose_transcriber_keeps_dying_fails_the_job_with_the_reason(utterance: Any) -> None:
    wav, _text = utterance
    with Stack(settings={"scheduler.max_chunk_attempts": 2}) as s:
        s.start()
        s.wait_ready()
        job = s.submit_file(wav, priority="normal")
        for attempt in (1, 2):  # the store counts each dispatch before it is sent
            poll(lambda n=attempt: attempts(s, job) >= n, 60, what=f"dispatch {attempt} of the window")
            s.signal("transcriber", signal.SIGKILL)  # dies holding the window, every time
            s.start("transcriber")
        final = s.wait_job(job, 60)
        assert final["state"] == "failed", final
        assert final["error"] == "chunk 0 failed 2 times; last error: the transcriber stopped responding"
