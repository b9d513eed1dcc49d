"""History and latency on the real SQLite store: migration from schema 1, retention, search."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from actors.hub.history import History
from actors.hub.latency import derive
from actors.hub.store import MIGRATIONS, HistoryRow, JobRow, Store
from actors.runtime.config import Config


class Log:
    def info(self, *_a: object, **_k: object) -> None:
        pass


def test_schema_1_store_is_migrated_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1])
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute(
        "INSERT INTO jobs(id, seq, kind, source, path, label, priority, state, options, cache_path, created)"
        " VALUES ('j1', 1, 'file', 'cli', '/a.wav', 'a.wav', 1, 'completed', '{}', '/c', 1.0)"
    )
    db.commit()
    db.close()
    store = Store(path)
    job = store.job("j1")
    assert job is not None and job.marks == {} and job.model == ""
    store.update_job("j1", marks={"key_up": 2.0})
    assert store.job("j1").marks == {"key_up": 2.0}  # type: ignore[union-attr]


def row(job_id: str, key_up: float, text: str = "hello", source: str = "ptt") -> JobRow:
    return JobRow(
        id=job_id,
        seq=1,
        kind="audio",
        source=source,
        path="",
        label="u",
        priority=0,
        state="completed",
        options={},
        cache_path="",
        created=key_up,
        samples=32000,
        language="en",
        model="tiny.en",
        marks={"key_up": key_up, "completed": key_up + 0.5, "delivered": key_up + 0.6},
    )


def history(tmp_path: Path, **settings: str) -> History:
    cfg = Config.load(
        path=tmp_path / "none.toml", overrides=[f"history.{k}={v}" for k, v in settings.items()]
    )
    return History(cfg, Store(tmp_path / "s.sqlite3"), Log())


def test_record_search_and_latency(tmp_path: Path) -> None:
    h = history(tmp_path)
    now = time.time()
    h.record(row("a", now - 10, "Open the Settings menu"), "Open the Settings menu")
    h.record(row("b", now - 5, "buy milk"), "buy milk")
    h.record(row("c", now, ""), "")  # empty text: nothing to remember
    h.record(row("d", now, "from a file", source="cli"), "from a file")  # not push-to-talk
    found = h.entries("settings", 0)
    assert found["total"] == 2 and [e["job_id"] for e in found["entries"]] == ["a"]
    assert [e["job_id"] for e in h.entries("", 0)["entries"]] == ["b", "a"]  # newest first
    assert found["entries"][0]["latency"]["release_to_text"] == 0.6
    assert found["entries"][0]["duration_s"] == 2.0


def test_retention_by_age_and_count(tmp_path: Path) -> None:
    h = history(tmp_path, retention_days="1", max_entries="3")
    now = time.time()
    h.store.add_history(HistoryRow("old", now - 2 * 86400, "ancient", 1.0, "en", "m"))
    for i in range(5):
        h.record(row(f"n{i}", now - 60 + i), f"new {i}")
    kept = [e["job_id"] for e in h.entries("", 0)["entries"]]
    assert kept == ["n4", "n3", "n2"]


def test_zero_means_keep_forever(tmp_path: Path) -> None:
    h = history(tmp_path, retention_days="0", max_entries="0")
    h.store.add_history(HistoryRow("old", 1.0, "from 1970", 1.0, "en", "m"))
    assert h.enforce_retention() == 0 and h.entries("", 0)["total"] == 1


def test_derive_needs_both_marks() -> None:
    assert derive({"key_up": 1.0, "submitted": 1.2, "delivered": 2.0}) == {
        "release_to_submit": 0.2,
        "release_to_text": 1.0,
    }
