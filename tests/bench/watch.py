"""Watch-folder benchmark: a batch of real recordings dropped into an inbox, against bare
faster-whisper on the same files, in one run on one machine.

1. batch: 20 real clips from ../shared/data/speech (seeded), each written in one of wav,
   flac, mp3, m4a and mp4 (video) in turn, renamed into the inbox at once; wall time from the
   drop to the last transcript in the outbox, against the sum of bare `transcribe(file)` times
   for the same files (warm model, language en, beam 5). Ratio = bare sum / stack wall.
2. latency: with the queue empty, one file at a time: drop to its transcript appearing
   (the 1 s settle time included: a rename from an unwatched folder is a creation to
   inotify), p50 and max over 5 files.

    .venv/bin/python tests/bench/watch.py [--files N] [--seed S] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from actors.hub.jobbook import percentile  # noqa: E402
from tests.bench.core import load_bare_model, machine_info, rnd, say  # noqa: E402
from tests.bench.ptt import pick_clips  # noqa: E402
from tests.support.harness import SPEECH, Stack, poll  # noqa: E402
from tests.support.media import with_pyav, with_sox  # noqa: E402
from tests.support.rig import load_pcm  # noqa: E402
from tests.support.scoring import wer  # noqa: E402

WRITERS = (
    ("wav", with_sox),
    ("flac", with_sox),
    ("mp3", with_sox),
    ("m4a", with_pyav),
    ("mp4", lambda pcm, path: with_pyav(pcm, path, video=True)),
)
LATENCY_FILES = 5


def make_files(count: int, seed: int, folder: Path) -> list[tuple[Path, str]]:
    clips = pick_clips(count, seed)
    files = []
    for i, clip in enumerate(clips):
        ext, writer = WRITERS[i % len(WRITERS)]
        files.append(
            (writer(load_pcm(SPEECH / clip["file"]), folder / f"clip{i:02d}.{ext}"), clip["reference"])
        )
    return files


def bare_times(files: list[tuple[Path, str]]) -> list[float]:
    model = load_bare_model()
    model.transcribe(str(files[0][0]), language="en", beam_size=5)  # warm up
    out = []
    for path, _ in files:
        started = time.perf_counter()
        segments, _ = model.transcribe(str(path), language="en", beam_size=5)
        _ = [s.text for s in segments]
        out.append(time.perf_counter() - started)
    return out


def drop(path: Path, inbox: Path) -> None:
    staging = inbox.parent / f".{path.name}"
    shutil.copyfile(path, staging)
    os.replace(staging, inbox / path.name)


def run(count: int, seed: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="benchwatch", dir="/tmp"))
    try:
        files = make_files(count, seed, work)
        say(f"{len(files)} files made; bare faster-whisper on each")
        bare = bare_times(files)
        inbox, out = work / "box" / "inbox", work / "box" / "out"
        settings = {"watch.inboxes": str(inbox), "watch.formats": "txt", "watch.settle_s": 1.0}
        with Stack(settings) as stack:
            stack.start("scheduler", "ingest", "transcriber", "watcher")
            stack.wait_ready(roles=("ingest", "transcriber", "watcher"))
            started = time.perf_counter()
            for path, _ in files:
                drop(path, inbox)
            poll(lambda: all((out / f"{p.stem}.txt").exists() for p, _ in files), 1800, 0.05, "the batch")
            batch_s = time.perf_counter() - started
            say(f"batch: {batch_s:.2f} s, bare sum {sum(bare):.2f} s")
            texts = [(out / f"{p.stem}.txt").read_text() for p, _ in files]
            latencies = []
            for i, (path, _) in enumerate(files[:LATENCY_FILES]):
                again = path.with_name(f"again{i}{path.suffix}")
                shutil.copyfile(path, again)
                with again.open("ab") as f:  # new content: not the file already done
                    f.write(b"\0")
                started = time.perf_counter()
                drop(again, inbox)
                poll(lambda a=again: (out / f"{a.stem}.txt").exists(), 300, 0.01, "one transcript")
                latencies.append(time.perf_counter() - started)
                say(f"latency {again.name}: {latencies[-1]:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "watch",
        "machine": machine_info(),
        "settings": {"files": count, "seed": seed, "formats": [w[0] for w in WRITERS], "settle_s": 1.0},
        "batch": {
            "stack_wall_s": rnd(batch_s),
            "bare_sum_s": rnd(sum(bare)),
            "ratio_bare_sum_vs_stack": rnd(sum(bare) / batch_s, 3),
            "wer_mean": rnd(
                sum(wer(ref, t) for (_, ref), t in zip(files, texts, strict=True)) / len(files), 4
            ),
        },
        "latency_empty_queue_s": {
            "p50": rnd(percentile(latencies, 50)),
            "max": rnd(max(latencies)),
            "runs": [rnd(x) for x in latencies],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not (SPEECH / "manifest.tsv").exists():
        parser.error(f"needs the real speech data at {SPEECH}")
    text = json.dumps(run(args.files, args.seed), indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
