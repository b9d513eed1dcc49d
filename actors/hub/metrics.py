"""Prometheus text endpoint, off by default: with `metrics.port` > 0 the scheduler process
serves http://ADDRESS:PORT/metrics (prometheus_client's HTTP server, daemon threads).

A scrape never touches the scheduler's objects from another thread: the collector asks the
scheduler for STATS (SPEC.md 5.3) over the control socket, like any client, and turns the reply
into metric families. If the call fails, the scrape says `sottovoce_up 0` and why.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from actors.runtime.client import Client, ClientError
from actors.runtime.config import Config
from protocol.control import Stats
from protocol.vocab import ACTIVE_STATES, FINAL_STATES, WORKER_ROLES

STATS_TIMEOUT_S = 2.0
"""Always exported (0 when none is connected): a stack without them does no work."""
QUANTILES = (("p50", "0.5"), ("p95", "0.95"))
PTT_SPANS = ("release_to_text", "release_to_result")


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"sottovoce_{name}", doc, labels=labels)


def _single(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"sottovoce_{name}", doc, value=value)


def _quantiles(
    family: GaugeMetricFamily, p: dict[str, Any] | None, labels: tuple[str, ...] = (), scale: float = 1.0
) -> None:
    """Add p50 and p95 of `p` (a STATS percentile map) as quantile 0.5 and 0.95, if known."""
    for key, quantile in QUANTILES:
        value = (p or {}).get(key)
        if value is not None:
            family.add_metric([*labels, quantile], float(value) * scale)


def families(data: dict[str, Any]) -> list[Metric]:
    """The metric families of one STATS reply's `data`. Absent keys give no sample."""
    out: list[Metric] = []

    depth = _gauge("queue_depth", "Unfinished, unpaused jobs per priority.", ["priority"])
    for priority, n in (data.get("queue_depth") or {}).items():
        depth.add_metric([priority], n)
    out.append(depth)

    jobs = _gauge("jobs", "Jobs per stored state, all time.", ["state"])
    counts = data.get("jobs") or {}
    for state in dict.fromkeys((*ACTIVE_STATES, *FINAL_STATES, *counts)):
        jobs.add_metric([state], counts.get(state, 0))
    out.append(jobs)

    if "chunks_measured" in data:
        out.append(
            _single(
                "chunks_measured",
                "Committed windows in the timing sample (the latest 1000 at most).",
                data["chunks_measured"],
            )
        )
    compute = _gauge(
        "chunk_compute_seconds",
        "Model seconds per window over the sample, nearest-rank quantile.",
        ["quantile"],
    )
    _quantiles(compute, data.get("chunk_compute_s"))
    out.append(compute)
    if data.get("real_time_factor") is not None:
        out.append(
            _single(
                "real_time_factor",
                "Model compute seconds per second of audio over the sample.",
                data["real_time_factor"],
            )
        )
    overhead = _gauge(
        "chunk_overhead_seconds",
        "Dispatch-to-result time minus model time per window since the scheduler started.",
        ["quantile"],
    )
    _quantiles(overhead, data.get("chunk_overhead_ms"), scale=0.001)
    out.append(overhead)

    latency = _gauge(
        "ptt_latency_seconds",
        "Push-to-talk latency over recent utterances: key release to text delivered or to result.",
        ["span", "quantile"],
    )
    measured = _gauge("ptt_latency_measured", "Push-to-talk utterances in the latency sample.", ["span"])
    ptt = data.get("ptt_latency_s") or {}
    for span in PTT_SPANS:
        if span in ptt:
            _quantiles(latency, ptt[span], (span,))
            measured.add_metric([span], ptt[span].get("count", 0))
    out += [latency, measured]

    connected = _gauge("workers_connected", "Connected actors per role (workers and members).", ["role"])
    busy = _gauge("worker_busy", "1 while the actor holds a task.", ["role", "name"])
    healthy = _gauge("worker_healthy", "1 if the actor reports ok health, 0 if degraded.", ["role", "name"])
    memory = _gauge("actor_memory_bytes", "Resident memory per actor process.", ["role", "name"])
    workers = data.get("workers") or []
    per_role = dict.fromkeys(WORKER_ROLES, 0)
    for w in workers:
        per_role[w["role"]] = per_role.get(w["role"], 0) + 1
        labels = [w["role"], w["name"]]
        busy.add_metric(labels, 1 if w.get("busy") else 0)
        healthy.add_metric(labels, 1 if w.get("health", "ok") == "ok" else 0)
        if w.get("rss_bytes"):
            memory.add_metric(labels, w["rss_bytes"])
    for role, n in per_role.items():
        connected.add_metric([role], n)
    scheduler = data.get("scheduler") or {}
    if scheduler.get("rss_bytes"):
        memory.add_metric(["scheduler", "scheduler"], scheduler["rss_bytes"])
    out += [connected, busy, healthy, memory]

    for key, doc in (
        ("requests", "Control requests received."),
        ("errors_replied", "Control requests answered with an error."),
        ("bad_frames", "Control and work frames rejected by the codec or of an unexpected type."),
    ):
        if key in scheduler:
            out.append(CounterMetricFamily(f"sottovoce_scheduler_{key}", doc, value=scheduler[key]))
    if "uptime_s" in scheduler:
        out.append(
            _single("scheduler_uptime_seconds", "Seconds since the scheduler started.", scheduler["uptime_s"])
        )
    return out


class StatsCollector:
    """A prometheus_client collector that asks the scheduler for STATS on every scrape.

    Scrapes arrive on the HTTP server's threads; one lock serialises them, so the one DEALER
    socket is used by one thread at a time."""

    def __init__(self, cfg: Config, timeout_s: float = STATS_TIMEOUT_S) -> None:
        self.client = Client(cfg, timeout_s=timeout_s, name="metrics")
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        doc = "1 if the scheduler answered STATS for this scrape, else 0."
        try:
            with self.lock:
                data = self.client.call(Stats())
            found = families(data)
        except ClientError as exc:
            error = str(exc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # read tolerantly, fail clearly
            error = f"unexpected STATS reply: {type(exc).__name__}: {exc}"
        else:
            yield from found
            yield _single("up", doc, 1)
            return
        yield _single("up", doc, 0)
        yield InfoMetricFamily("sottovoce_scrape_error", "Why STATS failed.", value={"error": error})


def serve(cfg: Config, log: Any) -> Any | None:
    """Start the endpoint if `metrics.port` > 0; returns the server (None if off or the
    address cannot be bound: that is logged, and the scheduler runs on without metrics)."""
    port = int(cfg.get("metrics.port"))
    address = str(cfg.get("metrics.address"))
    if port <= 0:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(cfg))
    try:
        server, _thread = start_http_server(port, addr=address, registry=registry)
    except (OSError, OverflowError) as exc:
        log.error(
            "metrics_bind_failed",
            address=address,
            port=port,
            reason=str(exc),
            hint="set metrics.port to a free port, or 0 to turn metrics off",
        )
        return None
    host = f"[{address}]" if ":" in address else address
    log.info("metrics_listening", url=f"http://{host}:{port}/metrics")
    return server
