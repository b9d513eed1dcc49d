"""Streamed dictation accuracy: the stack's streamed transcript against bare faster-whisper on
the whole recording, over many dictations, side by side in one run.

Each dictation is real speech (clips from ../shared/data/speech joined with 0.5 s pauses,
seeded, the references joined) with the audio actor's pre- and post-roll silence around it.
It is transcribed four ways, with the same model (the embedded tiny.en, cpu int8, beam 5):

- streamed: replayed offline through the stack's own cut points, window policy and model
  call (tests/support/replay.py), as dictated with `audio.stream` on;
- unstreamed: the same with `audio.stream` off (one piece at the release);
- bare: faster-whisper `transcribe()` on the whole recording with its defaults (it conditions
  each window on the previous text);
- bare_same_options: the same with the stack's default options (no conditioning), the
  "whole recording in one go" the streamed text is held to.

Reported per size: mean WER of each, and the paired difference streamed - bare_same_options
per dictation (mean, standard deviation, a 95 % interval of the mean). The real rig measures
latency and a few dictations end to end (tests/bench/ptt.py --parts streaming).

    .venv/bin/python tests/bench/stream_replay.py [--sizes 30,90] [--count 16] [--seed S]
        [--out FILE]

Progress goes to stderr; the results, one JSON document, to stdout (and to FILE).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from actors.workers.model import WhisperBackend  # noqa: E402
from tests.bench.core import load_bare_model, machine_info, print_json, rnd, say  # noqa: E402
from tests.support.harness import SPEECH  # noqa: E402
from tests.support.replay import long_utterance, recorded, replay  # noqa: E402
from tests.support.rig import RATE_HZ  # noqa: E402
from tests.support.scoring import wer  # noqa: E402

WAYS = ("streamed", "unstreamed", "bare", "bare_same_options")


def bare_text(model: Any, pcm: np.ndarray, condition: bool) -> tuple[str, float]:
    started = time.perf_counter()
    segments, _ = model.transcribe(
        pcm.astype(np.float32) / 32768, language="en", beam_size=5, condition_on_previous_text=condition
    )
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    return text, time.perf_counter() - started


def dictation(backend: Any, model: Any, size: float, key: str) -> dict[str, Any]:
    u = long_utterance(size, key)
    pcm = recorded(u["pcm"])
    out: dict[str, Any] = {"key": key, "audio_s": rnd(len(pcm) / RATE_HZ), "files": u["files"]}
    for way, stream in (("streamed", True), ("unstreamed", False)):
        started = time.perf_counter()
        r = replay(backend, pcm, stream)
        out[way] = {
            "text": r.text,
            "wer": rnd(wer(u["reference"], r.text), 4),
            "s": rnd(time.perf_counter() - started),
            "pieces_s": [rnd((e - s) / RATE_HZ, 2) for s, e in r.pieces],
            "windows": len(r.windows),
        }
    for way, condition in (("bare", True), ("bare_same_options", False)):
        text, seconds = bare_text(model, pcm, condition)
        out[way] = {"text": text, "wer": rnd(wer(u["reference"], text), 4), "s": rnd(seconds)}
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    gaps = [100 * (r["streamed"]["wer"] - r["bare_same_options"]["wer"]) for r in runs]
    sd = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
    half = 1.96 * sd / len(gaps) ** 0.5
    mean_gap = statistics.fmean(gaps)
    return {
        "count": len(runs),
        "audio_s_mean": rnd(statistics.fmean(r["audio_s"] for r in runs), 1),
        "pieces_mean": rnd(statistics.fmean(len(r["streamed"]["pieces_s"]) for r in runs), 2),
        "wer_mean_pct": {w: rnd(100 * statistics.fmean(r[w]["wer"] for r in runs), 2) for w in WAYS},
        "streamed_minus_bare_same_options_points": {
            "mean": rnd(mean_gap, 2),
            "sd": rnd(sd, 2),
            "ci95": [rnd(mean_gap - half, 2), rnd(mean_gap + half, 2)],
            "each": [rnd(g, 2) for g in gaps],
        },
        "streamed_minus_unstreamed_points_mean": rnd(
            100 * statistics.fmean(r["streamed"]["wer"] - r["unstreamed"]["wer"] for r in runs), 2
        ),
        "target": "streamed mean WER <= bare_same_options mean WER + 1 point",
        "target_met": mean_gap <= 1.0,
    }


def run(sizes: list[float], count: int, seed: int) -> dict[str, Any]:
    machine = machine_info()
    backend = WhisperBackend()
    backend.load()
    model = load_bare_model()
    results: dict[str, Any] = {
        "benchmark": "stream_replay",
        "date": machine["date"],
        "machine": machine,
        "settings": {"sizes_s": sizes, "count": count, "seed": seed, "model": "embedded tiny.en int8"},
        "sizes": {},
        "runs": {},
    }
    for size in sizes:
        runs = []
        for k in range(count):
            r = dictation(backend, model, size, f"replay-{seed}-{size:g}-{k}")
            gap = 100 * (r["streamed"]["wer"] - r["bare_same_options"]["wer"])
            say(f"{size:g} s #{k}: {len(r['streamed']['pieces_s'])} pieces, gap {gap:+.1f} points")
            runs.append(r)
        results["sizes"][f"{size:g}"] = summary(runs)
        results["runs"][f"{size:g}"] = runs
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,90", help="dictation sizes, s (default 30,90)")
    parser.add_argument("--count", type=int, default=16, help="dictations per size (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    try:
        sizes = [float(s) for s in args.sizes.split(",") if s]
    except ValueError:
        parser.error("--sizes: seconds, comma-separated")
    if args.count < 2 or not sizes or min(sizes) < 3:
        parser.error("--count must be at least 2, --sizes at least 3 s")
    if not (SPEECH / "manifest.tsv").exists():
        parser.error(f"needs the real speech data at {SPEECH}")
    print_json(run(sizes, args.count, args.seed), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
