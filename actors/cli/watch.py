"""The watch command: the watcher's inboxes and their files; add or remove a folder (request:
watch, to the watcher)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from actors.cli.output import UsageError, emit
from actors.runtime.client import Client
from actors.runtime.config import Config
from protocol.ptt import Watch


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


def add_commands(add: Callable[..., argparse.ArgumentParser], data: argparse.ArgumentParser) -> None:
    """The watch command, added with main.build_parser's `add`."""
    p = add(
        "watch",
        cmd_watch,
        "watch folders: status (each inbox's files and their state), add DIR, remove DIR "
        "(request: watch, to the watcher)",
    )
    p.add_argument("action", nargs="?", choices=("status", "add", "remove"), default="status")
    p.add_argument("dir", nargs="?", help="the folder, for add and remove")
