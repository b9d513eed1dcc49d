"""Ingest at scale: decode, reference level and VAD planning of a long recording, with memory.

Builds a long file by repeating AUDIO (sox) and runs ingest's three steps on it, as the
ingest actor does: stream-decode into the int16 cache, measure the log-mel reference level,
plan speech spans. Prints JSON: seconds per step, time to the first span (when the first
window could start), and the process's peak RSS after each step, which must not grow with
the file's length (nothing holds the whole file in RAM).

    .venv/bin/python tests/bench/ingest.py AUDIO [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from actors.media.audiofile import PcmFile, decode_to_file  # noqa: E402
from actors.media.loudness import mel_reference  # noqa: E402
from actors.workers.chunking import PlanOptions, plan_spans  # noqa: E402


def peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", type=Path)
    parser.add_argument("--repeat", type=int, default=15, help="times AUDIO is repeated (15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svbench") as tmp:
        long_file = Path(tmp) / "long.flac"
        subprocess.run(["sox", *[str(args.audio)] * args.repeat, str(long_file)], check=True)
        cache = Path(tmp) / "long.pcm"
        result: dict[str, object] = {"repeat": args.repeat, "baseline_rss_mib": peak_rss_mib()}
        started = time.perf_counter()
        report = decode_to_file(long_file, cache)
        decoded = time.perf_counter()
        result["audio_s"] = round(report.samples / 16000, 1)
        result["decode"] = {"s": round(decoded - started, 3), "peak_rss_mib": peak_rss_mib()}
        pcm = PcmFile(cache)
        mel_reference(pcm)
        measured = time.perf_counter()
        result["reference_level"] = {"s": round(measured - decoded, 3), "peak_rss_mib": peak_rss_mib()}
        first_update, spans = None, 0
        for first, update in plan_spans(pcm, PlanOptions()):
            first_update = first_update or time.perf_counter() - measured
            spans = first + len(update)
        planned = time.perf_counter()
        result["vad_plan"] = {
            "s": round(planned - measured, 3),
            "first_span_after_s": round(first_update or 0.0, 3),
            "spans": spans,
            "peak_rss_mib": peak_rss_mib(),
        }
        result["first_window_possible_after_s"] = round(measured - started + (first_update or 0.0), 3)
        result["file_mib"] = round(long_file.stat().st_size / 2**20, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
