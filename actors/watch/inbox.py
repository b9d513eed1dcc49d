"""Inbox folders: their layout, which files count, and when a file is complete.

Layout (SPEC.md 13), each folder configurable: `out/`, `done/` and `failed/` beside the inbox.
A file counts if its name matches `watch.include` and none of `watch.exclude` (temporary
names of browsers and copy tools are excluded by default). It is complete when it was moved
in, or when its size and mtime have not changed for `settle_s`: a copy in progress keeps
changing them, so it is never taken half-written.
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from actors.runtime.config import Config


@dataclass(frozen=True)
class Inbox:
    path: Path
    outbox: Path
    done: Path
    failed: Path

    @classmethod
    def from_config(cls, config: Config, folder: str) -> Inbox:
        path = Path(folder).expanduser().resolve()

        def beside(key: str, name: str) -> Path:
            value = config.get(f"watch.{key}")
            return Path(value).expanduser().resolve() if value else path.parent / name

        return cls(path, beside("outbox", "out"), beside("done_dir", "done"), beside("failed_dir", "failed"))

    def create(self) -> None:
        for folder in (self.path, self.outbox, self.done, self.failed):
            folder.mkdir(parents=True, exist_ok=True)


def globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def wanted(name: str, include: list[str], exclude: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, g) for g in include) and not any(
        fnmatch.fnmatch(name, g) for g in exclude
    )


def free_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `stem-2.ext`, `stem-3.ext`, ... if taken: never overwrite."""
    candidate = folder / name
    stem, suffix = os.path.splitext(name)
    n = 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


@dataclass
class Candidate:
    size: int
    mtime_ns: int
    changed: float
    moved: bool = False


@dataclass
class Settler:
    """Files seen but not yet complete, and the rule that says when they are."""

    settle_s: float
    files: dict[Path, Candidate] = field(default_factory=dict)

    def note(self, path: Path, moved: bool = False) -> None:
        try:
            st = path.stat()
        except OSError:
            self.files.pop(path, None)
            return
        old = self.files.get(path)
        if old is None or (st.st_size, st.st_mtime_ns) != (old.size, old.mtime_ns):
            self.files[path] = Candidate(st.st_size, st.st_mtime_ns, time.monotonic(), moved)
        elif moved:
            old.moved = True

    def ready(self) -> list[Path]:
        """Complete files, removed from the watch list; a vanished file is forgotten."""
        now = time.monotonic()
        done = []
        for path, cand in list(self.files.items()):
            try:
                st = path.stat()
            except OSError:
                del self.files[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                self.files[path] = Candidate(st.st_size, st.st_mtime_ns, now)
                continue
            if cand.moved or now - cand.changed >= self.settle_s:
                del self.files[path]
                done.append(path)
        return done
