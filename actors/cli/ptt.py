"""Push-to-talk commands: ptt (start, stop, toggle, cancel, status; to the audio actor) and
history (list, export, clear; requests list_history, clear_history)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.cli.output import emit, when
from actors.media.formats import write_atomic
from actors.runtime.client import Client
from actors.runtime.config import Config
from protocol.control import ClearHistory, ListHistory
from protocol.ptt import Ptt


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


def history_line(entry: dict[str, Any]) -> str:
    latency = entry["latency"].get("release_to_text")
    shown = f"{latency:.2f}s" if latency is not None else "-"
    return f"{when(entry['created'])}  {entry['duration_s']:5.1f}s  {shown:>6}  {entry['text']}"


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
        out = "".join(f"[{when(e['created'])}] {e['text']}\n" for e in reversed(data["entries"]))
    if args.output:
        write_atomic(Path(args.output).expanduser(), out)
        print(f"{len(data['entries'])} entries written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser], data: argparse.ArgumentParser) -> None:
    """ptt and history, added with main.build_parser's `add`."""
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
