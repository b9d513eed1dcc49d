"""Job commands: transcribe, say, jobs, job, cancel, pause, resume, priority, result.

Each maps to one control request (submit_file, submit_audio, list_jobs, job_status, cancel,
pause, resume, set_priority, fetch_result; protocol/SPEC.md "Control").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.cli.output import UsageError, emit, job_line, when
from actors.media.formats import FORMATS, RENDERERS, parse_formats, write_outputs
from actors.runtime.client import Client, ClientError, read_events
from actors.runtime.config import Config
from protocol.control import (
    Cancel,
    FetchResult,
    JobOptions,
    JobStatus,
    ListJobs,
    Pause,
    Resume,
    SetPriority,
    SubmitAudio,
    SubmitFile,
)
from protocol.vocab import FINAL_STATES, Priority

STATUS_POLL_S = 1.0


# --- job waiting, shared by transcribe --wait and say ---------------------------------------


def wait_jobs(
    client: Client, sub: Any, job_ids: list[str], show_progress: bool, timeout_s: float | None = None
) -> dict[str, dict[str, Any]]:
    """Follow jobs to a final state using events, with status polls as a safety net."""
    bars: dict[str, Any] = {}
    if show_progress:
        from tqdm import tqdm

        for pos, job_id in enumerate(job_ids):
            bars[job_id] = tqdm(
                total=None,
                desc=job_id,
                unit="s",
                position=pos,
                leave=True,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} s audio{postfix}",
            )
    jobs: dict[str, dict[str, Any]] = {}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    next_poll = 0.0
    try:
        while True:
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + STATUS_POLL_S
                for job_id in job_ids:
                    if jobs.get(job_id, {}).get("state") not in FINAL_STATES:
                        jobs[job_id] = client.call(JobStatus(job_id=job_id))["job"]
                        _update_bar(bars.get(job_id), jobs[job_id])
            if all(jobs[j]["state"] in FINAL_STATES for j in job_ids):
                return jobs
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"timed out after {timeout_s:.0f} s waiting for {', '.join(job_ids)}")
            for event in read_events(sub, max(0.0, next_poll - time.monotonic())):
                if event.job_id in jobs and event.kind in ("progress", "decoded", *FINAL_STATES):
                    next_poll = 0.0  # refresh this job's view now
                    break
    finally:
        for bar in bars.values():
            bar.close()


def _update_bar(bar: Any, job: dict[str, Any]) -> None:
    if bar is None:
        return
    if job["duration_s"] is not None and bar.total != job["duration_s"]:
        bar.total = round(job["duration_s"], 1)
    bar.n = round(job["audio_done_s"], 1) if job["state"] != "completed" else bar.total or bar.n
    bar.set_postfix_str(job["state"], refresh=False)
    bar.refresh()


def job_options(args: argparse.Namespace) -> JobOptions:
    return JobOptions(
        language=args.language,
        task=args.task,
        beam_size=args.beam_size,
        initial_prompt=args.initial_prompt,
        word_timestamps=args.word_timestamps or None,
        condition_on_previous_text=args.condition_on_previous_text,
    )


def unique_stems(paths: list[Path]) -> list[str]:
    """Output stems: the file's stem, with -2, -3, ... when two inputs share one."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        stems.append(path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}")
    return stems


def cmd_transcribe(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    formats = parse_formats(args.format)
    paths = [Path(p).expanduser().resolve() for p in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    sub = client.subscribe() if args.wait else None
    submitted = []
    for path in paths:
        data = client.call(
            SubmitFile(
                path=str(path),
                priority=args.priority,
                options=job_options(args),
                label=path.name,
                source="cli",
            )
        )
        submitted.append(data["job"])
    if not args.wait:
        emit(args, {"jobs": submitted}, "\n".join(f"{j['id']}  queued  {j['label']}" for j in submitted))
        return 0
    assert sub is not None
    try:
        ids = [j["id"] for j in submitted]
        final = wait_jobs(client, sub, ids, show_progress=not args.json and sys.stderr.isatty())
    finally:
        sub.close(linger=0)
    out_dir = Path(args.output_dir).expanduser() if args.output_dir else Path.cwd()
    report, failed = [], False
    for path, job_id, stem in zip(paths, ids, unique_stems(paths), strict=True):
        job = final[job_id]
        entry: dict[str, Any] = {"job": job, "file": str(path)}
        if job["state"] == "completed":
            result = client.call(FetchResult(job_id=job_id))
            entry["outputs"] = [str(p) for p in write_outputs(result, out_dir / stem, formats)]
        else:
            failed = True
        report.append(entry)
    lines = []
    for entry in report:
        job = entry["job"]
        if job["state"] == "completed":
            lines.append(f"{entry['file']}: {', '.join(entry['outputs'])}")
        else:
            lines.append(f"{entry['file']}: {job['state']}: {job['error'] or 'no reason given'}")
    emit(args, {"results": report}, "\n".join(lines))
    return 1 if failed else 0


def cmd_say(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    from actors.media.audiofile import DecodeFailure, decode_to_array

    try:
        pcm = decode_to_array(args.wav)
    except DecodeFailure as exc:
        raise UsageError(f"{args.wav}: {exc}") from exc
    sub = client.subscribe()
    try:
        started = time.perf_counter()
        job = client.call(
            SubmitAudio(
                pcm=pcm.astype("<i2").tobytes(),
                priority=args.priority,
                options=job_options(args),
                label=Path(args.wav).name,
                source="cli",
            )
        )["job"]
        final = wait_jobs(client, sub, [job["id"]], show_progress=False, timeout_s=args.wait_timeout)[
            job["id"]
        ]
        latency = time.perf_counter() - started
    finally:
        sub.close(linger=0)
    if final["state"] != "completed":
        raise ClientError(f"job {job['id']} {final['state']}: {final['error']}")
    result = client.call(FetchResult(job_id=job["id"]))
    emit(
        args,
        {
            "job": final,
            "text": result["text"],
            "segments": result["segments"],
            "latency_s": round(latency, 3),
        },
        result["text"],
    )
    return 0


def cmd_jobs(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    jobs = client.call(ListJobs(states=args.state or [], limit=args.limit))["jobs"]
    emit(args, {"jobs": jobs}, "\n".join(job_line(j) for j in jobs) or "no jobs")
    return 0


def cmd_job(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    job = client.call(JobStatus(job_id=args.id))["job"]
    shown = {k: when(v) if k in ("created", "started", "finished") else v for k, v in job.items()}
    text = "\n".join(f"{k:>13}: {v}" for k, v in shown.items() if k != "options")
    emit(args, {"job": job}, text)
    return 0


def _simple(request: Any) -> Any:
    def command(args: argparse.Namespace, cfg: Config, client: Client) -> int:
        job = client.call(request(job_id=args.id))["job"]
        emit(args, {"job": job}, job_line(job))
        return 0

    return command


def cmd_priority(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    job = client.call(SetPriority(job_id=args.id, priority=args.level))["job"]
    emit(args, {"job": job}, job_line(job))
    return 0


def cmd_result(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    result = client.call(FetchResult(job_id=args.id))
    if args.json:
        emit(args, result, "")
    else:
        sys.stdout.write(RENDERERS[args.format](result))
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser], data: argparse.ArgumentParser) -> None:
    """The job commands, added with main.build_parser's `add`."""
    decoding = argparse.ArgumentParser(add_help=False)
    decoding.add_argument("--language", help="language code; default: auto-detect")
    decoding.add_argument("--task", choices=("transcribe", "translate"))
    decoding.add_argument("--beam-size", type=int)
    decoding.add_argument("--initial-prompt", help="text that conditions the first chunk")
    decoding.add_argument("--word-timestamps", action="store_true", help="also time every word")
    decoding.add_argument(
        "--condition-on-previous-text",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="give each chunk the previous chunk's text as context",
    )
    p = add(
        "transcribe",
        cmd_transcribe,
        "submit files for transcription (request: submit_file); --wait shows progress and writes outputs",
        parents=[data, decoding],
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files")
    p.add_argument("--priority", choices=tuple(Priority), default=Priority.NORMAL)
    p.add_argument("--wait", action="store_true", help="follow progress, then write the transcripts")
    p.add_argument("--format", default="txt", help=f"comma-separated, from {', '.join(FORMATS)} (txt)")
    p.add_argument("--output-dir", help="where --wait writes FILE_STEM.FORMAT (current directory)")
    p = add(
        "say",
        cmd_say,
        "transcribe a recorded utterance at high priority and print the text (request: submit_audio)",
        parents=[data, decoding],
    )
    p.add_argument("wav", metavar="WAV", help="a recording (any format ffmpeg reads)")
    p.add_argument("--priority", choices=tuple(Priority), default=Priority.HIGH)
    p.add_argument("--wait-timeout", type=float, default=300.0, help="seconds to wait for the text (300)")
    p = add("jobs", cmd_jobs, "list jobs, newest first (request: list_jobs)")
    p.add_argument("--state", action="append", help="only this state; repeatable")
    p.add_argument("--limit", type=int, default=50)
    p = add("job", cmd_job, "show one job (request: job_status)")
    p.add_argument("id")
    for name, request, text in (
        ("cancel", Cancel, "cancel a queued, running or paused job (request: cancel)"),
        ("pause", Pause, "pause a job after its chunk in flight (request: pause)"),
        ("resume", Resume, "resume a paused job from its first uncommitted chunk (request: resume)"),
    ):
        add(name, _simple(request), text).add_argument("id")
    p = add("priority", cmd_priority, "change a job's priority (request: set_priority)")
    p.add_argument("id")
    p.add_argument("level", choices=tuple(Priority))
    p = add("result", cmd_result, "print a completed job's transcript (request: fetch_result)")
    p.add_argument("id")
    p.add_argument("--format", choices=FORMATS, default="txt")
