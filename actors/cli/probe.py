"""Probe commands: ping an actor, the stack's stats, the live event stream (requests ping
and stats, the events endpoint)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from actors.cli.output import emit, fmt_s
from actors.runtime.client import Client, read_events
from actors.runtime.config import Config
from protocol.control import Ping, Stats
from protocol.vocab import ROSTER


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


def add_commands(add: Callable[..., argparse.ArgumentParser], data: argparse.ArgumentParser) -> None:
    """ping, stats and events, added with main.build_parser's `add`."""
    p = add("ping", cmd_ping, "check that an actor is alive (request: ping)")
    p.add_argument("actor", nargs="?", default="scheduler", choices=ROSTER)
    add("stats", cmd_stats, "queue depths, job counts, chunk timings, push-to-talk latency (request: stats)")
    p = add("events", cmd_events, "print the live event stream (events endpoint)")
    p.add_argument(
        "--topic", default="", help="subscription prefix, e.g. job.completed or ptt. (default: everything)"
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
