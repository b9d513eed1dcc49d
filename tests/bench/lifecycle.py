"""Lifecycle benchmark: how long the background stack's commands take, on a headless stack
(no display, no microphone) in a private temp dir, with the real supervisord and model.

- up: wall time of `sottovoce up` (the CLI process, start to exit) until every actor runs
  and is connected to the scheduler; one cold-ish run first (not counted), then `--runs`
  warm runs, each after a `down`.
- down: wall time of `sottovoce down` on the idle stack, same runs.
- status: wall time of `sottovoce status` on the running stack (`--runs` x 3), against
  `sottovoce --help` (the CLI's own start-up) as a floor.
- sigterm_stop: SIGTERM to supervisord (what systemd's stop sends) until it has exited,
  on the idle stack; nobody asks it anything meanwhile.
- sigkill_orphans_gone: SIGKILL to supervisord until every actor has exited.

    .venv/bin/python tests/bench/lifecycle.py [--runs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.core import machine_info, print_json, rnd  # noqa: E402
from tests.support.harness import Stack, poll  # noqa: E402
from tests.support.supervised import DOWN_TIMEOUT_S, alive, background, headless  # noqa: E402


def timed(stack: Stack, *args: str) -> tuple[float, Any]:
    started = time.perf_counter()
    out = stack.cli(*args, timeout_s=DOWN_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"sottovoce {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return elapsed, out


def summary(values: list[float]) -> dict[str, Any]:
    return {"median_s": rnd(statistics.median(values)), "runs_s": [rnd(v) for v in values]}


def killed(stack: Stack, sig: int) -> float:
    """Seconds from `sig` to supervisord until it and every actor it ran have exited."""
    up = json.loads(timed(stack, "up", "--json")[1].stdout)
    pids = [a["pid"] for a in up["actors"]]
    pid = int((stack.cfg.runtime_dir / "supervisord.pid").read_text())
    started = time.perf_counter()
    os.kill(pid, sig)
    poll(lambda: not any(alive(p) for p in [pid, *pids]), DOWN_TIMEOUT_S, interval_s=0.01)
    return time.perf_counter() - started


def run(runs: int) -> dict[str, Any]:
    ups, waits, downs, statuses, helps = [], [], [], [], []
    with background(env=headless()) as stack:
        for i in range(runs + 1):
            elapsed, out = timed(stack, "up", "--json")
            if i:  # the first run warms the page cache
                ups.append(elapsed)
                waits.append(json.loads(out.stdout)["seconds"])
            if i == runs:
                for _ in range(runs * 3):
                    statuses.append(timed(stack, "status")[0])
                    helps.append(timed(stack, "--help")[0])
            elapsed, _ = timed(stack, "down")
            if i:
                downs.append(elapsed)
        terms = [killed(stack, signal.SIGTERM) for _ in range(runs)]
        kills = [killed(stack, signal.SIGKILL) for _ in range(runs)]
    return {
        "benchmark": "lifecycle",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "stack": "headless: audio, hotkey and deliver degraded; 8 actors under supervisord",
        "up": summary(ups),
        "up_wait_inside_cli": summary(waits),
        "down_idle": summary(downs),
        "status": summary(statuses),
        "cli_help": summary(helps),
        "sigterm_stop": summary(terms),
        "sigkill_orphans_gone": summary(kills),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    print_json(run(args.runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
