"""`sottovoce`: the CLI probe. Every command maps to one control request of protocol/SPEC.md
(named in its help) and talks only ZeroMQ to the running stack. `up`, `down`, `status`, `logs`
and `restart` manage the background stack under supervisord (actors/cli/supervise.py); `run`
starts it in the foreground (actors/cli/runner.py).

Exit codes: 0 ok; 1 the call failed or timed out (with a hint); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from actors.cli import supervise
from actors.media.formats import FORMATS, RENDERERS, parse_formats, write_atomic, write_outputs
from actors.runtime.client import Client, ClientError, read_events
from actors.runtime.config import Config, ConfigError, add_arguments
from protocol.control import (
    Cancel,
    ClearHistory,
    FetchResult,
    JobOptions,
    JobStatus,
    ListHistory,
    ListJobs,
    Pause,
    Ping,
    Resume,
    SetPriority,
    Stats,
    SubmitAudio,
    SubmitFile,
)
from protocol.ptt import Ptt, Watch
from protocol.vocab import FINAL_STATES, ROSTER, Priority

STATUS_POLL_S = 1.0


class UsageError(Exception):
    pass


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON with --json, else the human-readable `text`."""
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    elif text:
        print(text)


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def job_line(job: dict[str, Any]) -> str:
    total = job["duration_s"]
    progress = f"{job['chunks_done']} chunks"
    audio = f"{job['audio_done_s']:.1f}/{fmt_s(total)}"
    error = f"  {job['error']}" if job["error"] else ""
    return (
        f"{job['id']}  {job['state']:<9} {job['priority']:<6} {progress:<10} {audio:<14} "
        f"{job['label']}{error}"
    )


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


# --- commands -----------------------------------------------------------------------------


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
    shown = {k: _when(v) if k in ("created", "started", "finished") else v for k, v in job.items()}
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


def cmd_ping(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    started = time.perf_counter()
    data = client.call(Ping(actor=args.actor))
    data["rtt_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if args.actor == "scheduler":
        text = f"scheduler pid {data['pid']} up {data['uptime_s']:.0f}s, {data['rtt_ms']} ms"
    else:
        text = "\n".join(
            f"{w['name']}  {w['health']}  busy={w['busy']}  last heartbeat "
            f"{w['last_heartbeat_s']:.1f}s ago {w['detail']}"
            for w in data["workers"]
        )
    emit(args, data, text)
    return 0


def cmd_stats(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    data = client.call(Stats())
    p = data["chunk_compute_s"]
    jobs = {"completed": 0, "failed": 0, **dict(sorted(data["jobs"].items()))}
    rtf = data["real_time_factor"]
    memory = [("scheduler", data["scheduler"].get("rss_bytes"))]
    memory += [(w["name"], w.get("rss_bytes")) for w in data["workers"]]
    lines = [
        "queue depth: " + ", ".join(f"{k} {v}" for k, v in data["queue_depth"].items()),
        "jobs: " + ", ".join(f"{k} {v}" for k, v in jobs.items()),
        f"chunk compute: p50 {fmt_s(p['p50'])}, p95 {fmt_s(p['p95'])} over {data['chunks_measured']} chunks; "
        f"real-time factor {'-' if rtf is None else f'{rtf:.3f}'}",
        "push-to-talk release to text: "
        + _pcts(data["ptt_latency_s"]["release_to_text"])
        + "; release to result: "
        + _pcts(data["ptt_latency_s"]["release_to_result"])
        + "; "
        + _busy(data["ptt_latency_s"].get("busy_at_key_up")),
        "workers: "
        + (
            ", ".join(
                f"{w['name']} ({'busy' if w['busy'] else 'idle'}"
                + ("" if w.get("health", "ok") == "ok" else f", {w['health']}")
                + ")"
                for w in data["workers"]
            )
            or "none connected"
        ),
        "memory: "
        + (", ".join(f"{name} {rss / 2**20:.0f} MiB" for name, rss in memory if rss) or "not reported"),
    ]
    emit(args, data, "\n".join(lines))
    return 0


def _busy(b: dict[str, Any] | None) -> str:
    """How often a key release found the transcriber busy with other work (SPEC.md 12.6)."""
    if not b or not b["count"]:
        return "found the transcriber busy: none measured yet"
    return f"found the transcriber busy: {b['busy']} of {b['count']} ({b['fraction']:.0%})"


def _pcts(p: dict[str, Any]) -> str:
    if not p["count"]:
        return "none yet"
    return f"p50 {fmt_s(p['p50'])}, p95 {fmt_s(p['p95'])} over {p['count']}"


def cmd_events(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    sub = client.subscribe(args.topic.encode())
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while deadline is None or time.monotonic() < deadline:
            window = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            for event in read_events(sub, window):
                if args.json:
                    print(
                        json.dumps(
                            {"kind": event.kind, "job_id": event.job_id, **event.data},
                            ensure_ascii=False,
                            default=str,
                        ),
                        flush=True,
                    )
                else:
                    details = " ".join(f"{k}={v}" for k, v in event.data.items())
                    print(f"{time.strftime('%H:%M:%S')} {event.kind:<9} {event.job_id} {details}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sub.close(linger=0)
    return 0


def cmd_ptt(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    ptt = Client(cfg, timeout_s=args.timeout, endpoint="ptt")
    try:
        data = ptt.call(Ptt(action=args.action, at=time.time(), origin="cli"))
    finally:
        ptt.close()
    state = "recording" if data["recording"] else "idle"
    text = f"{data['outcome']}: {state}"
    if data["recording"]:
        text += f" ({data['duration_s']:.1f}s)"
    if args.action == "status":
        text += (
            f"; device {data.get('device') or '-'} ({data.get('health')}) {data.get('detail', '')}".rstrip()
        )
    emit(args, data, text)
    return 0


def cmd_watch(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    path = ""
    if args.action in ("add", "remove"):
        if not args.dir:
            raise UsageError(f"watch {args.action} needs a folder")
        path = str(Path(args.dir).expanduser().resolve())
    watcher = Client(cfg, timeout_s=args.timeout, endpoint="watch")
    try:
        data = watcher.call(Watch(action=args.action, path=path))
    finally:
        watcher.close()
    lines = []
    for inbox in data["inboxes"]:
        lines.append(f"{inbox['path']}  (out: {inbox['outbox']})")
        lines += [f"  {f['state']:<10} {f['name']}" for f in inbox["files"]] or ["  (empty)"]
    emit(args, data, "\n".join(lines) or "no folder is watched; add one with `sottovoce watch add DIR`")
    return 0


def history_line(entry: dict[str, Any]) -> str:
    latency = entry["latency"].get("release_to_text")
    shown = f"{latency:.2f}s" if latency is not None else "-"
    return f"{_when(entry['created'])}  {entry['duration_s']:5.1f}s  {shown:>6}  {entry['text']}"


def cmd_history(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    if args.action == "clear":
        data = client.call(ClearHistory())
        emit(args, data, f"deleted {data['deleted']} entries")
        return 0
    limit = 0 if args.action == "export" else args.limit
    data = client.call(ListHistory(search=args.search or "", limit=limit))
    if args.action == "list":
        lines = [history_line(e) for e in data["entries"]]
        emit(args, data, "\n".join(lines) or "no history")
        return 0
    if args.format == "json":
        out = json.dumps(data["entries"], ensure_ascii=False, indent=2) + "\n"
    else:
        out = "".join(f"[{_when(e['created'])}] {e['text']}\n" for e in reversed(data["entries"]))
    if args.output:
        write_atomic(Path(args.output).expanduser(), out)
        print(f"{len(data['entries'])} entries written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    return 0


def cmd_run(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    from actors.cli.runner import Runner

    return Runner(cfg).run()


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sottovoce",
        description="Local speech-to-text. Talks to the running sottovoce stack over ZeroMQ.",
        epilog="Exit codes: 0 ok, 1 call failed or timed out, 2 usage error. "
        "Settings: config.toml in the user config dir, SOTTOVOCE_SECTION_KEY variables, or --set.",
    )
    add_arguments(parser)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (10)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--json", action="store_true", help="print JSON instead of text")

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

    def add(
        name: str, func: Any, help_text: str, parents: list[Any] | None = None
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=parents or [data])
        p.set_defaults(func=func)
        return p

    add(
        "run",
        cmd_run,
        f"start every actor ({', '.join(ROSTER)}) in the foreground; Ctrl+C stops them. "
        "`sottovoce up` runs them in the background",
        parents=[],
    )
    supervise.add_commands(add, data)
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
    p = add("ping", cmd_ping, "check that an actor is alive (request: ping)")
    p.add_argument(
        "actor",
        nargs="?",
        default="scheduler",
        choices=ROSTER,
    )
    add("stats", cmd_stats, "queue depths, job counts, chunk timings, push-to-talk latency (request: stats)")
    p = add(
        "ptt",
        cmd_ptt,
        "push-to-talk from a shell: bind `sottovoce ptt toggle` to a desktop shortcut "
        "(request: ptt, to the audio actor)",
    )
    p.add_argument(
        "action",
        choices=("start", "stop", "toggle", "cancel", "status"),
        help="start or stop recording, toggle between the two, cancel (discard), or show the state",
    )
    p = add(
        "watch",
        cmd_watch,
        "watch folders: status (each inbox's files and their state), add DIR, remove DIR "
        "(request: watch, to the watcher)",
    )
    p.add_argument("action", nargs="?", choices=("status", "add", "remove"), default="status")
    p.add_argument("dir", nargs="?", help="the folder, for add and remove")
    p = add(
        "history",
        cmd_history,
        "push-to-talk history: list (default, newest first), export, or clear "
        "(requests: list_history, clear_history)",
    )
    p.add_argument("action", nargs="?", choices=("list", "export", "clear"), default="list")
    p.add_argument("--search", help="only entries whose text contains this (case-insensitive)")
    p.add_argument("--limit", type=int, default=20, help="list at most this many (20; 0: all)")
    p.add_argument("--format", choices=("txt", "json"), default="txt", help="export format (txt)")
    p.add_argument("--output", help="export to this file instead of standard output")
    p = add("events", cmd_events, "print the live event stream (events endpoint)")
    p.add_argument(
        "--topic", default="", help="subscription prefix, e.g. job.completed or ptt. (default: everything)"
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(path=args.config, overrides=args.set)
    except ConfigError as exc:
        parser.error(str(exc))
    client = Client(cfg, timeout_s=args.timeout)
    try:
        return int(args.func(args, cfg, client))
    except UsageError as exc:
        print(f"sottovoce {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # parse_formats and friends
        print(f"sottovoce {args.command}: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"sottovoce {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
