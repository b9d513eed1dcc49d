"""The durable store: jobs, their planned speech spans, committed windows ("chunks") with
their segments, and push-to-talk history.

SQLite in WAL mode with synchronous=FULL, explicit transactions, and a schema version with
migrations in one place (`MIGRATIONS`). Only the scheduler writes jobs and chunks; a chunk's
result, its segments and the job's new position are committed in one transaction before the
next chunk is dispatched.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.vocab import ACTIVE_STATES, SAMPLE_RATE, JobState
from protocol.work import ChunkResult

SQLITE_MAX_INT = 2**63 - 1
"""The largest INTEGER SQLite stores; a wire int may be larger (msgpack goes to 2**64 - 1)."""
SCHEMA_VERSION = 2

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        label TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        options TEXT NOT NULL,
        cache_path TEXT NOT NULL,
        decoded INTEGER NOT NULL DEFAULT 0,
        plan_final INTEGER NOT NULL DEFAULT 0,
        samples INTEGER NOT NULL DEFAULT 0,
        decode_attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        decode_s REAL NOT NULL DEFAULT 0,
        compute_s REAL NOT NULL DEFAULT 0,
        position INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        mel_max REAL
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE spans (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        idx INTEGER NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        PRIMARY KEY (job_id, idx)
    );
    CREATE TABLE chunks (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        idx INTEGER NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        next_start INTEGER NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        context TEXT NOT NULL DEFAULT '',
        compute_s REAL NOT NULL DEFAULT 0,
        committed REAL NOT NULL,
        PRIMARY KEY (job_id, idx)
    );
    CREATE TABLE segments (
        job_id TEXT NOT NULL,
        chunk_idx INTEGER NOT NULL,
        seg_idx INTEGER NOT NULL,
        start REAL NOT NULL,
        end REAL NOT NULL,
        text TEXT NOT NULL,
        avg_logprob REAL NOT NULL,
        no_speech_prob REAL NOT NULL,
        words TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (job_id, chunk_idx, seg_idx)
    );
    CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        text TEXT NOT NULL,
        duration_s REAL NOT NULL,
        language TEXT NOT NULL,
        model TEXT NOT NULL,
        latency TEXT NOT NULL DEFAULT '{}'
    );
    """,
    2: """
    ALTER TABLE jobs ADD COLUMN marks TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN model TEXT NOT NULL DEFAULT '';
    CREATE INDEX history_created ON history(created)
    """,
}


@dataclass
class JobRow:
    """One job as stored."""

    id: str
    seq: int
    kind: str  # file or audio
    source: str
    path: str
    label: str
    priority: int  # 0 high, 1 normal, 2 low
    state: str  # queued, decoding, ready, completed, failed, cancelled
    options: dict[str, Any]
    cache_path: str
    created: float
    paused: bool = False
    decoded: bool = False
    plan_final: bool = False
    samples: int = 0
    decode_attempts: int = 0
    error: str = ""
    language: str = ""
    started: float | None = None
    finished: float | None = None
    decode_s: float = 0.0
    compute_s: float = 0.0
    position: int = 0
    """Where the next window starts (samples): the last continuation."""
    attempts: int = 0
    """Dispatches of the window at `position` so far."""
    mel_max: float | None = None
    """Log-mel reference level of the whole recording (actors/media/loudness.py)."""
    marks: dict[str, float] = field(default_factory=dict)
    """Push-to-talk latency marks (SPEC.md 12.6)."""
    model: str = ""
    """Model of the transcriber that committed the latest window."""
    n_spans: int = 0
    """Spans planned so far (not a column: counted from `spans`)."""
    n_done: int = 0
    """Windows committed (not a column: counted from `chunks`)."""
    extra: dict[str, Any] = field(default_factory=dict)


_JOB_COLUMNS = (
    "id",
    "seq",
    "kind",
    "source",
    "path",
    "label",
    "priority",
    "state",
    "paused",
    "options",
    "cache_path",
    "decoded",
    "plan_final",
    "samples",
    "decode_attempts",
    "error",
    "language",
    "created",
    "started",
    "finished",
    "decode_s",
    "compute_s",
    "position",
    "attempts",
    "mel_max",
    "marks",
    "model",
)
_JSON_COLUMNS = ("options", "marks")
_BOOL_COLUMNS = ("paused", "decoded", "plan_final")


class Store:
    """Typed access to the SQLite file; one instance per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row["value"]) if row else 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: schema version {current} is newer than this sottovoce "
                    f"({SCHEMA_VERSION}); upgrade sottovoce"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    # --- jobs -------------------------------------------------------------------------

    def next_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM jobs").fetchone()
        return int(row["n"])

    def insert_job(self, job: JobRow, spans: list[list[int]] | None = None) -> None:
        """Store a new job, with its spans when already known, in one transaction."""
        values = [getattr(job, c) for c in _JOB_COLUMNS]
        for name in _JSON_COLUMNS:
            values[_JOB_COLUMNS.index(name)] = json.dumps(getattr(job, name))
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO jobs({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join('?' * len(_JOB_COLUMNS))})",
                values,
            )
            db.executemany(
                "INSERT INTO spans(job_id, idx, start, end) VALUES (?, ?, ?, ?)",
                [(job.id, i, s, e) for i, (s, e) in enumerate(spans or [])],
            )

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set columns of one job in its own transaction."""
        with self.transaction() as db:
            self._update(db, job_id, fields)

    @staticmethod
    def _update(db: sqlite3.Connection, job_id: str, fields: dict[str, Any]) -> None:
        for name in fields:
            if name not in _JOB_COLUMNS:
                raise KeyError(name)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [json.dumps(v) if n in _JSON_COLUMNS else v for n, v in fields.items()]
        db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*values, job_id])

    def _row_to_job(self, row: sqlite3.Row) -> JobRow:
        data = {c: row[c] for c in _JOB_COLUMNS}
        for name in _JSON_COLUMNS:
            data[name] = json.loads(data[name])
        for name in _BOOL_COLUMNS:
            data[name] = bool(data[name])
        job = JobRow(**data)
        counts = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM spans WHERE job_id = ?1) AS n,"
            " (SELECT COUNT(*) FROM chunks WHERE job_id = ?1) AS d",
            (job.id,),
        ).fetchone()
        job.n_spans, job.n_done = int(counts["n"]), int(counts["d"])
        return job

    def job(self, job_id: str) -> JobRow | None:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row_to_job(row) if row else None

    def jobs(self, states: list[str] | tuple[str, ...] = (), limit: int = 50) -> list[JobRow]:
        """Jobs in these states (all when empty), newest first."""
        query, args = "SELECT * FROM jobs", []
        if states:
            query += f" WHERE state IN ({', '.join('?' * len(states))})"
            args = list(states)
        query += " ORDER BY seq DESC LIMIT ?"
        rows = self.db.execute(query, [*args, limit]).fetchall()
        return [self._row_to_job(r) for r in rows]

    def active_jobs(self) -> list[JobRow]:
        """Every job that is not finished, in submission order."""
        rows = self.db.execute(
            f"SELECT * FROM jobs WHERE state IN ({', '.join('?' * len(ACTIVE_STATES))}) ORDER BY seq",
            ACTIVE_STATES,
        ).fetchall()
        return [self._row_to_job(r) for r in rows]

    def state_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        return {r["state"]: int(r["n"]) for r in rows}

    # --- plan and windows ------------------------------------------------------------

    def set_spans(self, job_id: str, first_index: int, spans: list[list[int]]) -> None:
        """Apply a plan update: spans[k] becomes span first_index + k; later ones are dropped."""
        with self.transaction() as db:
            db.execute("DELETE FROM spans WHERE job_id = ? AND idx >= ?", (job_id, first_index))
            db.executemany(
                "INSERT INTO spans(job_id, idx, start, end) VALUES (?, ?, ?, ?)",
                [(job_id, first_index + i, int(s), int(e)) for i, (s, e) in enumerate(spans)],
            )

    def spans(self, job_id: str) -> list[list[int]]:
        rows = self.db.execute(
            "SELECT start, end FROM spans WHERE job_id = ? ORDER BY idx", (job_id,)
        ).fetchall()
        return [[int(r["start"]), int(r["end"])] for r in rows]

    def append_piece(self, job_id: str, index: int, span: list[int], **fields: Any) -> None:
        """A streamed audio piece: its span and the job's new fields, in one transaction."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO spans(job_id, idx, start, end) VALUES (?, ?, ?, ?)", (job_id, index, *span)
            )
            self._update(db, job_id, fields)

    def finish_plan(self, job_id: str, samples: int, decode_s: float) -> None:
        self.update_job(
            job_id, plan_final=1, decoded=1, samples=samples, decode_s=decode_s, state=JobState.READY
        )

    def window_attempt(self, job_id: str) -> int:
        """Count one more dispatch of the job's next window; returns the attempt number."""
        with self.transaction() as db:
            db.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", (job_id,))
            row = db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return int(row["attempts"])

    def refund_window_attempt(self, job_id: str) -> None:
        """Take back the attempt counted for a dispatch its worker dropped on purpose."""
        with self.transaction() as db:
            db.execute("UPDATE jobs SET attempts = MAX(attempts - 1, 0) WHERE id = ?", (job_id,))

    def commit_chunk(self, result: ChunkResult, start: int, end: int) -> bool:
        """Commit a window's result, its segments and the job's new position, atomically.

        Returns False (and writes nothing) if that window index was already committed.
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT 1 FROM chunks WHERE job_id = ? AND idx = ?", (result.job_id, result.index)
            ).fetchone()
            if row is not None:
                return False
            text = " ".join(s.text.strip() for s in result.segments).strip()
            db.execute(
                "INSERT INTO chunks(job_id, idx, start, end, next_start, text, context, compute_s, "
                "committed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.job_id,
                    result.index,
                    start,
                    end,
                    result.continuation.next_start,
                    text,
                    result.continuation.context,
                    result.compute_s,
                    time.time(),
                ),
            )
            db.executemany(
                "INSERT INTO segments(job_id, chunk_idx, seg_idx, start, end, text, avg_logprob, "
                "no_speech_prob, words) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        result.job_id,
                        result.index,
                        i,
                        s.start,
                        s.end,
                        s.text,
                        s.avg_logprob,
                        s.no_speech_prob,
                        json.dumps(s.words),
                    )
                    for i, s in enumerate(result.segments)
                ],
            )
            db.execute(
                "UPDATE jobs SET compute_s = compute_s + ?, language = ?, position = ?, attempts = 0 "
                "WHERE id = ?",
                (result.compute_s, result.language, result.continuation.next_start, result.job_id),
            )
        return True

    def last_context(self, job_id: str) -> str:
        """The continuation context of the job's last committed window."""
        row = self.db.execute(
            "SELECT context FROM chunks WHERE job_id = ? ORDER BY idx DESC LIMIT 1", (job_id,)
        ).fetchone()
        return str(row["context"]) if row else ""

    def segments(self, job_id: str) -> list[dict[str, Any]]:
        """All committed segments of a job, in order."""
        rows = self.db.execute(
            "SELECT start, end, text, avg_logprob, no_speech_prob, words FROM segments "
            "WHERE job_id = ? ORDER BY chunk_idx, seg_idx",
            (job_id,),
        ).fetchall()
        return [
            {
                "start": r["start"],
                "end": r["end"],
                "text": r["text"],
                "avg_logprob": r["avg_logprob"],
                "no_speech_prob": r["no_speech_prob"],
                "words": json.loads(r["words"]),
            }
            for r in rows
        ]

    def chunk_timings(self, limit: int = 1000) -> list[tuple[float, float]]:
        """(compute_s, audio_s) of the most recent committed chunks."""
        rows = self.db.execute(
            f"SELECT compute_s, (end - start) / {float(SAMPLE_RATE)} AS audio_s FROM chunks "
            "ORDER BY committed DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [(float(r["compute_s"]), float(r["audio_s"])) for r in rows]

    def ptt_marks(self, limit: int = 1000) -> list[dict[str, float]]:
        """Latency marks of the latest completed push-to-talk jobs."""
        rows = self.db.execute(
            "SELECT marks FROM jobs WHERE source = 'ptt' AND state = 'completed' ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [json.loads(r["marks"]) for r in rows]

    # --- push-to-talk history ---------------------------------------------------------

    def add_history(self, entry: HistoryRow) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO history(job_id, created, text, duration_s, language, model, latency)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.job_id,
                    entry.created,
                    entry.text,
                    entry.duration_s,
                    entry.language,
                    entry.model,
                    json.dumps(entry.latency),
                ),
            )

    def set_history_latency(self, job_id: str, latency: dict[str, float]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE history SET latency = ? WHERE job_id = ?", (json.dumps(latency), job_id))

    def history(self, search: str = "", limit: int = 50) -> tuple[list[HistoryRow], int]:
        """Entries newest first (all when limit is 0), and the total stored."""
        rows = self.db.execute("SELECT * FROM history ORDER BY created DESC, id DESC").fetchall()
        if search:  # in Python: SQLite's lower() folds ASCII only
            needle = search.casefold()
            rows = [r for r in rows if needle in r["text"].casefold()]
        if limit:
            rows = rows[:limit]
        total = int(self.db.execute("SELECT COUNT(*) AS n FROM history").fetchone()["n"])
        entries = [
            HistoryRow(
                id=r["id"],
                job_id=r["job_id"],
                created=r["created"],
                text=r["text"],
                duration_s=r["duration_s"],
                language=r["language"],
                model=r["model"],
                latency=json.loads(r["latency"]),
            )
            for r in rows
        ]
        return entries, total

    def clear_history(self) -> int:
        with self.transaction() as db:
            return db.execute("DELETE FROM history").rowcount

    def prune_history(self, older_than: float | None, keep: int) -> int:
        """Delete entries created before `older_than` (epoch s), then all but the newest `keep`
        (0: no limit). Returns how many were deleted."""
        with self.transaction() as db:
            deleted = 0
            if older_than is not None:
                deleted += db.execute("DELETE FROM history WHERE created < ?", (older_than,)).rowcount
            if keep > 0:
                deleted += db.execute(
                    "DELETE FROM history WHERE id NOT IN "
                    "(SELECT id FROM history ORDER BY created DESC, id DESC LIMIT ?)",
                    (keep,),
                ).rowcount
            return deleted


@dataclass
class HistoryRow:
    """One push-to-talk dictation as remembered."""

    job_id: str
    created: float
    text: str
    duration_s: float
    language: str
    model: str
    latency: dict[str, float] = field(default_factory=dict)
    id: int = 0
