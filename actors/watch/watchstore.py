"""The watcher's own SQLite file (SPEC.md 13): which contents it has seen, submitted, exported.

One row per distinct content (SHA-256), so a file dropped twice, or found again after a
restart, is never submitted twice. The scheduler's store stays single-writer; this file is
written only by the watcher. WAL and synchronous=FULL, like the main store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    inbox TEXT NOT NULL,
    path TEXT NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT NOT NULL DEFAULT '',
    stem TEXT NOT NULL DEFAULT '',
    outputs TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT '',
    seen REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS inboxes (
    path TEXT PRIMARY KEY,
    watched INTEGER NOT NULL
)
"""
UNFINISHED = ("submitted", "exporting")


@dataclass
class WatchedFile:
    sha256: str
    inbox: str
    path: str
    """Where the file was when it was submitted."""
    state: str  # submitted, exporting, exported, failed
    job_id: str = ""
    stem: str = ""
    """Output stem chosen for the export (stored before any output is written)."""
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    seen: float = 0.0
    finished: float | None = None


class WatchStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get(self, sha256: str) -> WatchedFile | None:
        row = self.db.execute("SELECT * FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return self._row(row) if row else None

    def unfinished(self) -> list[WatchedFile]:
        rows = self.db.execute(
            f"SELECT * FROM files WHERE state IN ({', '.join('?' * len(UNFINISHED))}) ORDER BY seen",
            UNFINISHED,
        ).fetchall()
        return [self._row(r) for r in rows]

    def all(self) -> list[WatchedFile]:
        return [self._row(r) for r in self.db.execute("SELECT * FROM files ORDER BY seen").fetchall()]

    def inbox_changes(self) -> dict[str, bool]:
        """Folders added at run time (True) or removed (False), by path."""
        rows = self.db.execute("SELECT path, watched FROM inboxes").fetchall()
        return {r["path"]: bool(r["watched"]) for r in rows}

    def set_inbox(self, path: str, watched: bool) -> None:
        self.db.execute("INSERT OR REPLACE INTO inboxes(path, watched) VALUES (?, ?)", (path, int(watched)))

    def add(self, entry: WatchedFile) -> None:
        self.db.execute(
            "INSERT INTO files(sha256, inbox, path, state, job_id, seen) VALUES (?, ?, ?, ?, ?, ?)",
            (entry.sha256, entry.inbox, entry.path, entry.state, entry.job_id, entry.seen or time.time()),
        )

    def update(self, sha256: str, **fields: object) -> None:
        if "outputs" in fields:
            fields["outputs"] = json.dumps(fields["outputs"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(f"UPDATE files SET {assignments} WHERE sha256 = ?", [*fields.values(), sha256])

    @staticmethod
    def _row(row: sqlite3.Row) -> WatchedFile:
        data = dict(row)
        data["outputs"] = json.loads(data["outputs"])
        return WatchedFile(**data)
