"""Accuracy benchmark on long multi-speaker recordings: WER, clips dropped, and speed.

Recordings (tests/support/recordings.py): N seeded meetings built from the dev clips (turns of
1-3 clips, pauses of 0.3-3 s, some with speakers at other levels, noise or music between
turns), plus long/dev_multispeaker.flac and the LJSpeech long file.

Systems, all on the embedded tiny.en, cpu, int8, English:
- `alone`: each clip transcribed on its own (the limit for this model);
- `bare`: faster-whisper `transcribe()` on the whole recording with its defaults (beam 5,
  conditioned on the previous text);
- `bare_stack_options`: the same with the stack's job options (no conditioning);
- `batched`: faster-whisper's `BatchedInferencePipeline`, batch 8, the stack's options;
- `stack`: the real stack (actors as processes), each recording submitted as a file at
  normal priority; the time is submit to completed.

Per recording and system: WER, the clips dropped (at least half their words deleted) and
garbled (at least half deleted or wrong), seconds (tests/support/scoring.py). Per system: mean
WER, pooled WER, the worst recording, clips dropped in all, and speed against
`bare_stack_options` (its total seconds over the system's).

    .venv/bin/python tests/bench/accuracy.py [--recordings 20] [--length-s 150] [--systems ...] [--out FILE]

Progress goes to stderr; the results, one JSON document, to stdout (and to FILE).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from actors.runtime.config import Config  # noqa: E402
from actors.workers.model import embedded_model_path  # noqa: E402
from tests.bench.core import machine_info, print_json, say  # noqa: E402
from tests.support.harness import SPEECH, Stack  # noqa: E402
from tests.support.recordings import Recording, benchmark_set, clip_pcm  # noqa: E402
from tests.support.scoring import score  # noqa: E402

SYSTEMS = ("alone", "bare", "bare_stack_options", "batched", "stack")
BATCH_SIZE = 8
LANGUAGE = "en"
STACK_SETTINGS = {"transcriber.device": "cpu", "transcriber.compute_type": "int8"}
JOB_TIMEOUT_S = 1800.0

Transcribe = Callable[[Recording], tuple[str, float]]
"""A system: the recording's transcript and the seconds it took."""
SHORT_S = 0.5
"""A window Whisper stopped more than this short of its end leaves a leftover window."""


def stack_options() -> dict[str, Any]:
    cfg = Config.load()
    return {
        "language": LANGUAGE,
        "beam_size": int(cfg.get("defaults.beam_size")),
        "condition_on_previous_text": bool(cfg.get("defaults.condition_on_previous_text")),
    }


def _joined(segments: Any) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def _audio(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0


def bare_systems(model: Any) -> dict[str, Transcribe]:
    from faster_whisper import BatchedInferencePipeline

    options = stack_options()
    batched = BatchedInferencePipeline(model)

    def timed(run: Callable[[], str]) -> tuple[str, float]:
        started = time.perf_counter()
        text = run()
        return text, time.perf_counter() - started

    def alone(rec: Recording) -> tuple[str, float]:
        clips = [rec.pcm[a:b] for a, b in rec.bounds] or [clip_pcm(f) for f in rec.files]
        return timed(lambda: " ".join(_joined(model.transcribe(_audio(c), **options)[0]) for c in clips))

    return {
        "alone": alone,
        "bare": lambda rec: timed(lambda: _joined(model.transcribe(_audio(rec.pcm))[0])),
        "bare_stack_options": lambda rec: timed(
            lambda: _joined(model.transcribe(_audio(rec.pcm), **options)[0])
        ),
        "batched": lambda rec: timed(
            lambda: _joined(batched.transcribe(_audio(rec.pcm), batch_size=BATCH_SIZE, **options)[0])
        ),
    }


def write_wav(pcm: np.ndarray, path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def window_profile(stack: Stack, job_id: str) -> dict[str, Any]:
    """Where the job's model time went, from the transcriber's chunk_done log records."""
    done = [r for r in stack.log_events("transcriber", "chunk_done") if r["job"] == job_id]
    return {
        "windows": len(done),
        "stopped_short": sum(1 for r in done if r["audio_s"] - r["consumed_s"] > SHORT_S),
        "short_by_s": [round(r["audio_s"] - r["consumed_s"], 1) for r in done],
        "audio_s": round(sum(r["audio_s"] for r in done), 1),
        "model_s": round(sum(r["ms"] for r in done) / 1000, 2),
        "repairs": sum(r["repairs"] for r in done),
        "repair_s": round(sum(r["repair_ms"] for r in done) / 1000, 2),
    }


def stack_system(stack: Stack, folder: Path, profiles: dict[str, Any]) -> Transcribe:
    options = stack_options()

    def run(rec: Recording) -> tuple[str, float]:
        path = write_wav(rec.pcm, folder / f"{rec.name}.wav")
        started = time.perf_counter()
        job_id = stack.submit_file(path, priority="normal", **options)
        job = stack.wait_job(job_id, timeout_s=JOB_TIMEOUT_S)
        took = time.perf_counter() - started
        if job["state"] != "completed":
            raise RuntimeError(f"{rec.name}: the stack's job ended {job['state']}: {job}")
        profiles[rec.name] = window_profile(stack, job_id)
        say(f"{'':18} {rec.name:22} {profiles[rec.name]}")
        return str(stack.result(job_id)["text"]), took

    return run


def measure(name: str, system: Transcribe, recordings: list[Recording]) -> list[dict[str, Any]]:
    rows = []
    for rec in recordings:
        text, seconds = system(rec)
        result = score(rec.references, text)
        rows.append(
            {
                "recording": rec.name,
                "wer_pct": round(100 * result.wer, 2),
                "dropped": result.dropped,
                "garbled": result.garbled,
                "seconds": round(seconds, 2),
            }
        )
        say(f"{name:18} {rec.name:22} WER {100 * result.wer:5.1f} % dropped {result.dropped} {seconds:.1f} s")
    return rows


def summary(rows: list[dict[str, Any]], words: list[int], baseline_s: float | None) -> dict[str, Any]:
    wers = [r["wer_pct"] for r in rows]
    worst = max(rows, key=lambda r: r["wer_pct"])
    seconds = sum(r["seconds"] for r in rows)
    return {
        "mean_wer_pct": round(statistics.fmean(wers), 2),
        "pooled_wer_pct": round(sum(w * n for w, n in zip(wers, words, strict=True)) / sum(words), 2),
        "worst": {"recording": worst["recording"], "wer_pct": worst["wer_pct"]},
        "clips_dropped": sum(len(r["dropped"]) for r in rows),
        "recordings_with_a_drop": sum(1 for r in rows if r["dropped"]),
        "clips_garbled": sum(len(r["garbled"]) for r in rows),
        "seconds": round(seconds, 1),
        "speed_vs_bare_stack_options": round(baseline_s / seconds, 3) if baseline_s else None,
    }


def run(count: int, length_s: float, systems: list[str]) -> dict[str, Any]:
    from faster_whisper import WhisperModel

    recordings = benchmark_set(count, length_s)
    say(f"{len(recordings)} recordings, {sum(r.seconds for r in recordings):.0f} s of audio")
    results: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "model": "tiny.en (embedded)",
            "device": "cpu",
            "compute_type": "int8",
            **stack_options(),
        },
        "recordings": [
            {"name": r.name, "variant": r.variant, "seconds": round(r.seconds, 1), "clips": len(r.files)}
            for r in recordings
        ],
        "per_recording": {},
    }
    model = WhisperModel(embedded_model_path(), device="cpu", compute_type="int8")
    bare = bare_systems(model)
    for name in systems:
        if name == "stack":
            with tempfile.TemporaryDirectory() as folder, Stack(settings=STACK_SETTINGS) as stack:
                stack.start()
                stack.wait_ready(timeout_s=120.0)
                profiles: dict[str, Any] = {}
                system = stack_system(stack, Path(folder), profiles)
                results["per_recording"][name] = measure(name, system, recordings)
                for row in results["per_recording"][name]:
                    row["windows"] = profiles[row["recording"]]
        else:
            results["per_recording"][name] = measure(name, bare[name], recordings)
    words = [sum(len(r.split()) for r in rec.references) for rec in recordings]
    per = results["per_recording"]
    baseline = sum(r["seconds"] for r in per["bare_stack_options"]) if "bare_stack_options" in per else None
    results["summary"] = {name: summary(rows, words, baseline) for name, rows in per.items()}
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=20, help="seeded recordings (default 20)")
    parser.add_argument("--length-s", type=float, default=150.0, help="each one's length (default 150)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if not SPEECH.exists():
        parser.error(f"the benchmark needs the shared speech data: {SPEECH} is missing")
    print_json(run(args.recordings, args.length_s, args.systems), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
