"""Reading the actors' logs for people: `sottovoce logs`.

Each actor's log is DATA_DIR/logs/ACTOR.log: structlog JSON lines (actors/runtime/logs.py), written by
the actor itself under `sottovoce run`, or by supervisord from the actor's stderr under
`sottovoce up` (rotated to ACTOR.log.1, .2, ...). A line that is not JSON (a traceback, a
warning from a library) is kept as it is, and sorts with the JSON line before it.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

TAIL_BLOCK_BYTES = 64 * 1024
SHOWN_FIRST = ("timestamp", "level", "actor", "event", "exception")


@dataclass(frozen=True)
class Line:
    """One line of a log, with the time it sorts by (ISO 8601 UTC, as the actors write it)."""

    key: str
    text: str


def tail(path: Path, count: int) -> list[str]:
    """The last `count` lines of a file (fewer if it is shorter), read from its end."""
    if count <= 0:
        return []
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= count:
            step = min(TAIL_BLOCK_BYTES, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]


def tail_rotated(path: Path, count: int) -> list[str]:
    """The last `count` lines of a log, reaching into its first rotated file (`.1`) when the
    current one is shorter."""
    lines = tail(path, count)
    if len(lines) < count:
        lines = tail(path.with_name(path.name + ".1"), count - len(lines)) + lines
    return lines


def keyed(lines: Iterable[str], key: str = "") -> Iterator[Line]:
    """Lines with their sort key: a JSON line's timestamp, else the key of the line before."""
    for text in lines:
        stamp = _record(text).get("timestamp")
        if isinstance(stamp, str):
            key = stamp
        yield Line(key, text)


def merged(per_file: Iterable[list[str]]) -> list[Line]:
    """Lines of several logs in time order (each log is in time order already)."""
    return list(heapq.merge(*(list(keyed(lines)) for lines in per_file), key=lambda line: line.key))


def _record(text: str) -> dict[str, Any]:
    if not text.startswith("{"):
        return {}
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(text, ensure_ascii=False) if not text or any(c in text for c in ' =\n"') else text


def _local_time(stamp: str) -> str:
    try:
        when = datetime.fromisoformat(stamp).astimezone()
    except ValueError:
        return stamp
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def render(text: str) -> str:
    """A JSON log line as `time level actor event key=value ...` (local time, the
    traceback on the lines after); any other line as it is."""
    record = _record(text)
    if "event" not in record:
        return text
    head = (
        f"{_local_time(str(record.get('timestamp', '-')))} {record.get('level', '-')!s:<7} "
        f"{record.get('actor', '-')!s:<11} {record['event']}"
    )
    rest = " ".join(f"{k}={_value(v)}" for k, v in record.items() if k not in SHOWN_FIRST)
    out = f"{head} {rest}" if rest else head
    if record.get("exception"):
        out += "\n" + "\n".join(f"    {line}" for line in str(record["exception"]).splitlines())
    return out


class Follower:
    """New lines appended to a log, across rotation: when the path names a new file (its
    inode changed) or the file shrank, what is left of the old one is read first, then the
    new one from its start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] | None = None
        self.inode: int | None = None
        self.partial = b""
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        self.handle = handle
        self.inode = os.fstat(handle.fileno()).st_ino
        if at_end:
            handle.seek(0, os.SEEK_END)

    def read(self) -> list[str]:
        """Complete lines written since the last call."""
        if self.handle is None:
            self._open(at_end=False)
            if self.handle is None:
                return []
        data = self.handle.read()
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None  # rotated away, the new file not made yet: read the old one again later
        if now is not None and (now.st_ino != self.inode or now.st_size < self.handle.tell()):
            if now.st_ino == self.inode:  # truncated in place
                self.handle.seek(0)
            else:
                data += self.handle.read()
                self.handle.close()
                self._open(at_end=False)
            if self.handle is not None:
                data += self.handle.read()
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        return data[:cut].decode("utf-8", errors="replace").splitlines()

    def close(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
            self.handle = None
