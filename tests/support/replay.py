"""Streamed dictation replayed offline, for accuracy: many dictations in minutes, deterministic.

The replay runs the stack's own code for everything that decides a streamed transcript, in
the order the actors run it, without processes, sockets or clocks:

- the audio actor's cuts: actors/ptt/pieces.py `cut_recording`, the same PieceCutter the
  actor calls while recording (the pause to cut in, the log-mel reference of the audio so far,
  the silent-tail rule at the release);
- the scheduler's window policy for the job's pieces (actors/hub/runqueue.py `QueuedJob`);
- the transcriber's model call (actors/workers/model.py `WhisperBackend.transcribe`), with the job
  options the stack uses by default.

It assumes the transcriber keeps up (each piece's windows are done before the next piece is
cut), as it does on the machines measured: a 10-30 s piece takes 0.4-1 s. Latency is
measured on the real rig (tests/bench/ptt.py); this measures what the text is.
"""

from __future__ import annotations

import csv
import functools
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.hub.runqueue import QueuedJob
from actors.ptt.pieces import PieceCutter, cut_recording
from actors.runtime.config import Config
from actors.workers.model import WhisperBackend
from tests.support.harness import SPEECH
from tests.support.rig import RATE_HZ, load_pcm

GAP_S = 0.5  # the pause between the clips of a long utterance
FIT_S = 1.0  # a long utterance is within this much of its size (if the clips allow)
PREROLL_S, POSTROLL_S = 0.35, 0.2  # silence the audio actor records around the speech


def manifest_clips() -> list[dict[str, str]]:
    """The manifest's clips. A reference's parentheses are unwrapped: Whisper's normaliser drops
    words in parentheses as if they were not spoken, and in LJ001-0024 they are read aloud."""
    with (SPEECH / "manifest.tsv").open() as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["file"].startswith("clips/")]
    for r in rows:
        r["reference"] = r["reference"].replace("(", "").replace(")", "")
    return rows


def long_utterance(size_s: float, key: str) -> dict[str, Any]:
    """Real clips (shuffled by `key`) joined with GAP_S pauses, `size_s` long give or take FIT_S."""
    rows = manifest_clips()
    random.Random(key).shuffle(rows)
    chosen: list[dict[str, str]] = []
    total = 0.0
    for row in rows:
        add = float(row["duration_s"]) + (GAP_S if chosen else 0.0)
        if total + add <= size_s + FIT_S:
            chosen.append(row)
            total += add
        if total >= size_s - FIT_S:
            break
    gap = np.zeros(int(GAP_S * RATE_HZ), dtype=np.int16)
    pieces: list[np.ndarray] = []
    for row in chosen:
        pieces += [gap, load_pcm(SPEECH / row["file"])] if pieces else [load_pcm(SPEECH / row["file"])]
    return {
        "size_s": size_s,
        "files": [r["file"] for r in chosen],
        "reference": " ".join(r["reference"] for r in chosen),
        "pcm": np.concatenate(pieces),
    }


def recorded(pcm: np.ndarray) -> np.ndarray:
    """`pcm` as the audio actor records it: with the pre-roll and post-roll silence around."""
    silence = [np.zeros(int(s * RATE_HZ), np.int16) for s in (PREROLL_S, POSTROLL_S)]
    return np.concatenate([silence[0], pcm, silence[1]])


@dataclass
class Replayed:
    text: str
    pieces: list[tuple[int, int]]
    """[start, end) samples of each piece with audio, in order."""
    windows: list[tuple[int, int]]
    """[start, end) samples of each window transcribed, in order."""


@functools.cache
def stack_model() -> WhisperBackend:
    """The transcriber's model (the embedded tiny.en, as configured by default), loaded once."""
    backend = WhisperBackend()
    backend.load()
    return backend


def replay(backend: Any, pcm: np.ndarray, stream: bool = True) -> Replayed:
    """Transcribe recording `pcm` as the stack does when it is dictated with `audio.stream`
    on (or off: one piece at the release). `backend` is a loaded WhisperBackend."""
    cfg = Config.load()
    options = dict(cfg.values["defaults"])
    job = QueuedJob(id="replay", seq=0, priority=0, state="ready", audio=True)
    job.max_window = int(float(cfg.get("ingest.max_chunk_s")) * RATE_HZ)
    texts: list[str] = []
    windows: list[tuple[int, int]] = []
    pieces = cut_recording(pcm, PieceCutter.from_config(cfg), stream)  # the audio actor's own cuts
    for k, piece in enumerate(pieces):
        if piece.end > piece.start:
            job.spans.append([piece.start, piece.end])
        job.plan_final = k == len(pieces) - 1
        while (window := job.window()) is not None:
            audio = pcm[window[0] : window[1]].astype(np.float32) / 32768.0
            out = backend.transcribe(audio, window[0] / RATE_HZ, options, None, mel_max=piece.mel_max)
            texts += [s["text"] for s in out.segments]
            windows.append(window)
            job.position = window[0] + out.consumed
    text = " ".join(t.strip() for t in texts if t.strip())
    return Replayed(text, [(p.start, p.end) for p in pieces if p.end > p.start], windows)


def bare_same_options(pcm: np.ndarray) -> str:
    """Bare faster-whisper on the whole recording at once (the embedded model, cpu int8), with
    the stack's job options as configured (by default beam 5, no conditioning on the previous
    text; SOTTOVOCE_DEFAULTS_* change both sides alike)."""
    from faster_whisper import WhisperModel

    from actors.runtime.config import Config
    from actors.workers.model import embedded_model_path

    model = WhisperModel(embedded_model_path(), device="cpu", compute_type="int8")
    cfg = Config.load()
    segments, _ = model.transcribe(
        pcm.astype(np.float32) / 32768,
        language="en",
        beam_size=int(cfg.get("defaults.beam_size")),
        condition_on_previous_text=bool(cfg.get("defaults.condition_on_previous_text")),
    )
    return " ".join(s.text.strip() for s in segments if s.text.strip())
