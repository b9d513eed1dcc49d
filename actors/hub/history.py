"""Push-to-talk history: what was dictated, when, and how fast it arrived (SPEC.md 12.7).

The scheduler records a completed `ptt` job with non-empty text and applies retention
(`history.retention_days`, `history.max_entries`) after every insert and at start.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from actors.hub.latency import derive
from actors.hub.store import HistoryRow, JobRow, Store
from actors.runtime.config import Config
from protocol.vocab import SAMPLE_RATE

DAY_S = 86400.0


class History:
    def __init__(self, cfg: Config, store: Store, log: Any) -> None:
        self.store = store
        self.log = log
        self.retention_s = float(cfg.get("history.retention_days")) * DAY_S
        self.max_entries = int(cfg.get("history.max_entries"))

    def record(self, row: JobRow, text: str) -> None:
        """Remember a completed push-to-talk job."""
        if row.source != "ptt" or not text:
            return
        self.store.add_history(
            HistoryRow(
                job_id=row.id,
                created=row.marks.get("key_up", row.created),
                text=text,
                duration_s=round(row.samples / SAMPLE_RATE, 3),
                language=row.language,
                model=row.model,
                latency=derive(row.marks),
            )
        )
        self.enforce_retention()

    def enforce_retention(self) -> int:
        older_than = time.time() - self.retention_s if self.retention_s > 0 else None
        deleted = self.store.prune_history(older_than, self.max_entries)
        if deleted:
            self.log.info("history_pruned", deleted=deleted)
        return deleted

    def entries(self, search: str, limit: int) -> dict[str, Any]:
        rows, total = self.store.history(search, limit)
        return {"entries": [asdict(r) for r in rows], "total": total}
