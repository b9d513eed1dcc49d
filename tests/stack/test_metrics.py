"""The Prometheus endpoint (actors/hub/metrics.py) and `sottovoce stats`: the conversion of a STATS
reply into metric families, a collector whose scheduler is away, and the real scheduler process
serving /metrics (agreeing with STATS after a real job), serving nothing by default, and running
on when its port is taken."""

from __future__ import annotations

import json
import socket
import statistics
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.control import Ping, Stats
from tests.support.harness import Stack, pcm16, poll
from tests.support.prometheus import Samples, parse, value

# --- the real scheduler process ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_ports(pid: int) -> set[int]:
    """TCP ports on which process `pid` has a listening socket (Linux /proc)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    inodes = set()
    for fd in fd_dir.iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return parse(response.read().decode())


@pytest.fixture(scope="module")
def metrics_stack() -> Iterator[tuple[Stack, int]]:
    port = free_port()
    with Stack({"metrics.port": port}) as s:
        s.start()
        s.wait_ready()
        yield s, port


@pytest.mark.stack
def test_metrics_agree_with_stats_after_a_job(
    metrics_stack: tuple[Stack, int], utterance: tuple[Path, str]
) -> None:
    stack, port = metrics_stack
    assert port in listening_ports(stack.procs["scheduler"].pid)
    assert stack.log_events("scheduler", "metrics_listening")
    job = stack.wait_job(stack.submit_audio(pcm16(utterance[0]), language="en"), timeout_s=120)
    assert job["state"] == "completed"
    stats = stack.client.call(Stats())
    m = scrape(port)
    assert value(m, "up") == 1
    assert stats["jobs"]["completed"] >= 1
    assert value(m, "jobs", state="completed") == stats["jobs"]["completed"]
    assert value(m, "chunks_measured") == stats["chunks_measured"] >= 1
    for key, quantile in (("p50", "0.5"), ("p95", "0.95")):
        assert value(m, "chunk_compute_seconds", quantile=quantile) == stats["chunk_compute_s"][key]
    assert value(m, "real_time_factor") == stats["real_time_factor"]
    for priority in ("high", "normal", "low"):
        assert value(m, "queue_depth", priority=priority) == stats["queue_depth"][priority] == 0
    assert value(m, "workers_connected", role="transcriber") == 1
    assert value(m, "workers_connected", role="ingest") == 1
    for w in stats["workers"]:
        assert value(m, "worker_healthy", role=w["role"], name=w["name"]) == 1
        assert value(m, "worker_busy", role=w["role"], name=w["name"]) == 0
        if w.get("rss_bytes"):
            assert (value(m, "actor_memory_bytes", role=w["role"], name=w["name"]) or 0) > 0
    if stats["scheduler"].get("rss_bytes"):
        assert (value(m, "actor_memory_bytes", role="scheduler", name="scheduler") or 0) > 0
    assert value(m, "scheduler_bad_frames_total") == stats["scheduler"]["bad_frames"]
    # the scrape itself is a STATS request, counted after the one above
    assert value(m, "scheduler_requests_total") > stats["scheduler"]["requests"]
    assert value(m, "scheduler_uptime_seconds") >= stats["scheduler"]["uptime_s"]


@pytest.mark.stack
def test_stats_command_shows_every_item(metrics_stack: tuple[Stack, int]) -> None:
    stack, _ = metrics_stack
    out = stack.cli("stats")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "queue depth: high 0, normal 0, low 0"
    assert lines[1].startswith("jobs: completed ") and ", failed 0" in lines[1]
    assert lines[2].startswith("chunk compute: p50 ") and "real-time factor 0." in lines[2]
    assert lines[3].startswith("push-to-talk release to text: ")
    assert "transcriber@" in lines[4] and "ingest@" in lines[4]
    assert lines[5].startswith("memory: ")
    data = stack.client.call(Stats())
    if data["scheduler"].get("rss_bytes"):
        assert lines[5].startswith("memory: scheduler ") and " MiB" in lines[5]
    as_json = json.loads(stack.cli("stats", "--json").stdout)
    assert as_json.keys() == data.keys()


@pytest.mark.stack
def test_scrape_latency_on_an_idle_stack(metrics_stack: tuple[Stack, int]) -> None:
    _, port = metrics_stack
    times = []
    for _ in range(20):
        started = time.perf_counter()
        assert value(scrape(port), "up") == 1
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"scrape latency: median {median * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over 20")
    assert median < 0.5


@pytest.mark.stack
def test_no_listener_by_default() -> None:
    with Stack() as stack:
        stack.start("scheduler")
        stack.wait_ready(roles=())
        assert listening_ports(stack.procs["scheduler"].pid) == set()
        assert not stack.log_events("scheduler", "metrics_listening")
        assert not stack.log_events("scheduler", "metrics_bind_failed")


@pytest.mark.stack
def test_port_in_use_is_logged_and_the_scheduler_serves_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with Stack({"metrics.port": port}) as stack:
            stack.start("scheduler")
            stack.wait_ready(roles=())
            failures = poll(lambda: stack.log_events("scheduler", "metrics_bind_failed"), 10.0)
            assert failures[0]["port"] == port and "in use" in failures[0]["reason"]
            assert stack.client.call(Ping(actor="scheduler"))["pid"] == stack.procs["scheduler"].pid
            assert stack.client.call(Stats())["queue_depth"] == {"high": 0, "normal": 0, "low": 0}
            assert listening_ports(stack.procs["scheduler"].pid) == set()
