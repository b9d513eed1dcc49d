"""The conversion of a STATS reply into Prometheus metric families (actors/hub/metrics.py), and
a collector whose scheduler is away; no processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from prometheus_client import CollectorRegistry, generate_latest

from actors.hub.metrics import StatsCollector, families
from actors.runtime.config import Config
from tests.support.prometheus import Samples, parse, value

CANNED: dict[str, Any] = {
    "queue_depth": {"high": 1, "normal": 0, "low": 4},
    "jobs": {"completed": 7, "cancelled": 1, "queued": 5},
    "chunks_measured": 12,
    "chunk_compute_s": {"p50": 0.41, "p95": 1.2},
    "real_time_factor": 0.0512,
    "chunk_overhead_ms": {"p50": 2.5, "p95": 4.0, "count": 12},
    "ptt_latency_s": {
        "release_to_text": {"p50": 0.76, "p95": 0.85, "count": 3},
        "release_to_result": {"p50": None, "p95": None, "count": 0},
    },
    "workers": [
        {
            "role": "transcriber",
            "name": "transcriber@h:11",
            "busy": True,
            "health": "ok",
            "rss_bytes": 3 << 27,
        },
        {"role": "ingest", "name": "ingest@h:12", "busy": False, "health": "ok", "rss_bytes": 0},
        {"role": "audio", "name": "audio@h:13", "busy": False, "health": "degraded", "detail": "no mic"},
    ],
    "scheduler": {
        "requests": 40,
        "errors_replied": 2,
        "bad_frames": 3,
        "uptime_s": 61.5,
        "rss_bytes": 1 << 26,
    },
}


def render(collector: Any) -> Samples:
    registry = CollectorRegistry()
    registry.register(collector)
    return parse(generate_latest(registry).decode())


class Canned:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def collect(self) -> Any:
        return families(self.data)


# --- conversion and collector, no processes ----------------------------------------------


def test_families_from_a_canned_stats_reply() -> None:
    m = render(Canned(CANNED))
    assert [value(m, "queue_depth", priority=p) for p in ("high", "normal", "low")] == [1, 0, 4]
    assert value(m, "jobs", state="completed") == 7 and value(m, "jobs", state="queued") == 5
    assert value(m, "jobs", state="failed") == 0, "every known state is exported, 0 when none"
    assert value(m, "chunks_measured") == 12
    assert value(m, "chunk_compute_seconds", quantile="0.5") == 0.41
    assert value(m, "chunk_compute_seconds", quantile="0.95") == 1.2
    assert value(m, "real_time_factor") == 0.0512
    assert value(m, "chunk_overhead_seconds", quantile="0.95") == pytest.approx(0.004)
    assert value(m, "ptt_latency_seconds", span="release_to_text", quantile="0.5") == 0.76
    assert value(m, "ptt_latency_seconds", span="release_to_text", quantile="0.95") == 0.85
    assert value(m, "ptt_latency_measured", span="release_to_text") == 3
    assert value(m, "ptt_latency_measured", span="release_to_result") == 0
    assert value(m, "ptt_latency_seconds", span="release_to_result", quantile="0.5") is None
    assert value(m, "workers_connected", role="transcriber") == 1
    assert value(m, "workers_connected", role="audio") == 1
    assert value(m, "worker_busy", role="transcriber", name="transcriber@h:11") == 1
    assert value(m, "worker_busy", role="ingest", name="ingest@h:12") == 0
    assert value(m, "worker_healthy", role="transcriber", name="transcriber@h:11") == 1
    assert value(m, "worker_healthy", role="audio", name="audio@h:13") == 0
    assert value(m, "actor_memory_bytes", role="transcriber", name="transcriber@h:11") == 3 << 27
    assert value(m, "actor_memory_bytes", role="scheduler", name="scheduler") == 1 << 26
    # rss_bytes 0 (unknown) or absent: no sample rather than a false 0
    assert value(m, "actor_memory_bytes", role="ingest", name="ingest@h:12") is None
    assert value(m, "actor_memory_bytes", role="audio", name="audio@h:13") is None
    assert value(m, "scheduler_requests_total") == 40
    assert value(m, "scheduler_errors_replied_total") == 2
    assert value(m, "scheduler_bad_frames_total") == 3
    assert value(m, "scheduler_uptime_seconds") == 61.5


def test_families_tolerate_missing_keys() -> None:
    """An empty stack (and a scheduler without rss_bytes) gives zeros where a count is known
    and no sample where a value is not."""
    data = {
        **CANNED,
        "jobs": {},
        "chunks_measured": 0,
        "chunk_compute_s": {"p50": None, "p95": None},
        "real_time_factor": None,
        "workers": [],
        "scheduler": {"requests": 1, "errors_replied": 0, "bad_frames": 0, "uptime_s": 0.5},
    }
    m = render(Canned(data))
    assert value(m, "jobs", state="completed") == 0
    assert value(m, "workers_connected", role="transcriber") == 0
    assert value(m, "workers_connected", role="ingest") == 0
    assert value(m, "real_time_factor") is None
    assert value(m, "chunk_compute_seconds", quantile="0.5") is None
    assert not [k for k in m if k[0] == "sottovoce_actor_memory_bytes"]


def test_collector_says_down_and_why(tmp_path: Path) -> None:
    cfg = Config.load(
        tmp_path / "none.toml", [f"paths.runtime_dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"]
    )
    m = render(StatsCollector(cfg, timeout_s=0.2))
    assert value(m, "up") == 0
    (error,) = [dict(k[1])["error"] for k in m if k[0] == "sottovoce_scrape_error_info"]
    assert "not running" in error
    # a control socket nobody answers: a short timeout, then down again
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(cfg.endpoint("control"))
    try:
        started = time.monotonic()
        m = render(StatsCollector(cfg, timeout_s=0.2))
        assert time.monotonic() - started < 2.0
        assert value(m, "up") == 0
        (error,) = [dict(k[1])["error"] for k in m if k[0] == "sottovoce_scrape_error_info"]
        assert "no reply to stats" in error
    finally:
        sock.close()
        Path(cfg.endpoint("control").removeprefix("ipc://")).unlink(missing_ok=True)


def test_collector_says_down_on_a_reply_it_cannot_read(tmp_path: Path) -> None:
    class Odd:
        def call(self, _record: Any) -> dict[str, Any]:
            return {"workers": [{"name": "no role"}]}

    collector = StatsCollector(Config.load(tmp_path / "none.toml"))
    collector.client = Odd()  # type: ignore[assignment]
    m = render(collector)
    assert value(m, "up") == 0
    (error,) = [dict(k[1])["error"] for k in m if k[0] == "sottovoce_scrape_error_info"]
    assert error.startswith("unexpected STATS reply: KeyError")
