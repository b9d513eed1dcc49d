"""Recovery benchmark (issue 5): the stack started by `sottovoce up` (supervisord) against bare
faster-whisper on the same file, in one run on one machine, and what each failure costs.

1. throughput: the 237 s reading (../shared/data), bare `transcribe(file)` (warm model) against
   the supervised stack's submit-to-completed time, clean and with a SIGKILL of the
   scheduler, ingest or transcriber (in turn) every `--kill-every` seconds. Ratios bare/stack;
   the chaos transcript must equal the clean one.
2. detection, each repeated `--repeats` times with a window in flight (its `dispatched` event):
   - transcriber SIGKILL: kill to the same window dispatched again (its exit seen at the next
     heartbeat tick, SPEC.md 11);
   - transcriber SIGSTOP: stop to the window dispatched to a new transcriber (expiry, warden
     kill, supervisord restart);
   - scheduler SIGKILL: kill to the next window dispatched (restart, recovery, reconnects).
3. stop: `sottovoce down` with a window in flight, scheduler.on_stop finish against abandon:
   wall time, and windows started twice (`chunk_start` in the transcriber's log) by the time
   the job completes after the next `up`: 0 when the window in flight is finished and
   committed, 1 when it is abandoned and done again.
4. memory per actor (STATS, from READY/HEARTBEAT `rss`).

    .venv/bin/python tests/bench/recovery.py [--repeats N] [--kill-every S] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from actors.cli.supervise import Supervisor  # noqa: E402
from actors.runtime.client import read_events  # noqa: E402
from protocol.control import Stats  # noqa: E402
from tests.bench.core import load_bare_model, machine_info, median, rnd, say  # noqa: E402
from tests.support.harness import LONG_FLAC, Stack, poll, transcript  # noqa: E402

LANGUAGE, BEAM_SIZE = "en", 5


def up(settings: dict[str, Any] | None = None) -> Stack:
    stack = Stack(settings={"scheduler.max_chunk_attempts": 20, **(settings or {})})
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "PULSE_SERVER"):
        stack.env.pop(var, None)
    out = stack.cli("up", timeout_s=180)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return stack


def down(stack: Stack) -> float:
    started = time.perf_counter()
    out = stack.cli("down", timeout_s=180)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return time.perf_counter() - started


def pid(stack: Stack, name: str) -> int:
    return int(
        poll(
            lambda: (p := Supervisor(stack.cfg).processes()[name])["statename"] == "RUNNING" and p["pid"],
            60,
            interval_s=0.05,
            what=f"{name} running",
        )
    )


def dispatched(sub: Any, job: str, timeout_s: float = 120, index: int | None = None, not_pid: int = 0) -> Any:
    """The first matching `dispatched` event, returned as soon as it arrives."""

    def match(e: Any) -> bool:
        return (
            e.kind == "dispatched"
            and e.job_id == job
            and (index is None or e.data["chunk"] == index)
            and not e.data["worker"].endswith(f":{not_pid}")
        )

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in read_events(sub, 0.05):
            if match(event):
                return event
    raise TimeoutError(f"no dispatch of job {job} window {index} within {timeout_s} s")


def stack_run(stack: Stack, kill_every: float = 0.0) -> tuple[float, list[Any], list[str]]:
    """Submit-to-completed seconds and transcript; with kill_every, SIGKILL core actors in turn."""
    victims = ["transcriber", "scheduler", "ingest"]
    kills: list[str] = []
    started = time.perf_counter()
    job = stack.submit_file(LONG_FLAC, priority="normal", language=LANGUAGE, beam_size=BEAM_SIZE)
    next_kill = time.monotonic() + kill_every

    def done() -> bool:
        nonlocal next_kill
        if kill_every and time.monotonic() >= next_kill:
            victim = victims[len(kills) % len(victims)]
            os.kill(pid(stack, victim), signal.SIGKILL)
            kills.append(victim)
            next_kill = time.monotonic() + kill_every
        try:
            return stack.job(job)["state"] in ("completed", "failed")
        except Exception:
            return False

    poll(done, 900, interval_s=0.05, what="the file")
    wall = time.perf_counter() - started
    assert stack.job(job)["state"] == "completed", stack.job(job)
    return wall, transcript(stack, job), kills


def throughput(kill_every: float) -> dict[str, Any]:
    say("bare faster-whisper (warm)")
    model = load_bare_model()
    list(model.transcribe(str(LONG_FLAC), language=LANGUAGE, beam_size=BEAM_SIZE)[0])
    started = time.perf_counter()
    list(model.transcribe(str(LONG_FLAC), language=LANGUAGE, beam_size=BEAM_SIZE)[0])
    bare_s = time.perf_counter() - started
    del model
    stack = up()
    try:
        say("stack under supervisord, clean")
        clean_s, clean, _ = stack_run(stack)
        say(f"stack under supervisord, a SIGKILL every {kill_every} s")
        chaos_s, chaotic, kills = stack_run(stack, kill_every)
        memory = {
            f"{w['role']}": round(w["rss_bytes"] / 2**20) for w in stack.client.call(Stats())["workers"]
        }
        memory["scheduler"] = round(stack.client.call(Stats())["scheduler"]["rss_bytes"] / 2**20)
    finally:
        down(stack)
        stack.cleanup()
    return {
        "bare_s": rnd(bare_s),
        "stack_clean_s": rnd(clean_s),
        "ratio_clean": rnd(bare_s / clean_s),
        "stack_chaos_s": rnd(chaos_s),
        "ratio_chaos": rnd(bare_s / chaos_s),
        "kills": kills,
        "chaos_transcript_identical": chaotic == clean,
        "memory_mib": memory,
    }


def detection(repeats: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {
        "transcriber_sigkill": [],
        "transcriber_sigstop": [],
        "scheduler_sigkill": [],
    }
    stack = up()
    try:
        for _ in range(repeats):
            for case in out:
                sub = stack.subscribe(b"job.")
                job = stack.submit_file(LONG_FLAC, priority="low", language=LANGUAGE, beam_size=BEAM_SIZE)
                first = dispatched(sub, job, index=1)
                victim = "scheduler" if case.startswith("scheduler") else "transcriber"
                target = pid(stack, victim)
                started = time.perf_counter()
                os.kill(target, signal.SIGSTOP if case.endswith("sigstop") else signal.SIGKILL)
                if case == "scheduler_sigkill":
                    dispatched(sub, job, 60)
                elif case == "transcriber_sigstop":
                    dispatched(sub, job, 60, index=1, not_pid=target)
                else:
                    dispatched(sub, job, 60, index=first.data["chunk"])
                out[case].append(time.perf_counter() - started)
                say(f"{case}: {out[case][-1]:.2f} s")
                stack.cli("cancel", job)
                sub.close(linger=0)
    finally:
        down(stack)
        stack.cleanup()
    return {case: {"median_s": rnd(median(v)), "runs_s": [rnd(x) for x in v]} for case, v in out.items()}


def stopping(repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for mode in ("finish", "abandon"):
        times, redone = [], []
        for _ in range(repeats):
            stack = up({"scheduler.on_stop": mode})
            try:
                sub = stack.subscribe(b"job.")
                job = stack.submit_file(LONG_FLAC, priority="low", language=LANGUAGE, beam_size=BEAM_SIZE)
                dispatched(sub, job, index=2)
                sub.close(linger=0)
                times.append(down(stack))
                out = stack.cli("up", timeout_s=180)
                assert out.returncode == 0, out.stdout + out.stderr
                stack.wait_job(job, 600)
                starts = stack.log_events("transcriber", "chunk_start")
                started = [r["chunk"] for r in starts if r["job"] == job]
                redone.append(len(started) - len(set(started)))
            finally:
                down(stack)
                stack.cleanup()
            say(f"down with on_stop={mode}: {times[-1]:.2f} s, windows redone {redone[-1]}")
        result[mode] = {
            "down_median_s": rnd(median(times)),
            "down_runs_s": [rnd(t) for t in times],
            "windows_started_twice": redone,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--parts", default="throughput,detection,stop", help="which parts to run")
    parser.add_argument("--out", type=Path, help="write (or update, with --parts) this JSON file")
    args = parser.parse_args(argv)
    if not LONG_FLAC.exists():
        print(f"needs {LONG_FLAC} (../shared/data)", file=sys.stderr)
        return 2
    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    report.update(machine=machine_info(), audio={"file": LONG_FLAC.name, "duration_s": 237.0})
    parts = args.parts.split(",")
    if "throughput" in parts:
        report["throughput"] = throughput(args.kill_every)
    if "detection" in parts:
        report["detection"] = detection(args.repeats)
    if "stop" in parts:
        report["stop"] = stopping(args.repeats)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
