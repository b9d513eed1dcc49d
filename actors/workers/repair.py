"""Speech Whisper jumped over inside a window: found, then decoded again on its own.

Next to a loud speaker, Whisper sometimes skips a quiet one (a whisper, a speaker far from the
microphone): no segment covers the stretch, or a segment's timestamps cover it while its words
are the next speaker's. The words' own timestamps show it: a stretch of at least HOLE_S with
no word. When Silero VAD, at the low threshold push-to-talk uses for whispers, finds speech
in such a stretch, the transcriber decodes it alone, at its own level, and splices the
segments in by time (actors/workers/model.py). Pauses, where VAD finds no speech, cost nothing.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from protocol.vocab import SAMPLE_RATE

HOLE_S = 1.5
"""A stretch without words at least this long is looked at."""
VAD_THRESHOLD = 0.15
"""Silero VAD threshold for speech in a hole (`transcriber.repair_vad_threshold`): low, to hear
whispers. On the accuracy benchmark (22 recordings of dev clips, 2026-12-06) 0.15 against 0.25
kept a whispered clip that 0.25 dropped (seed11-music: 13.2 -> 7.5 % WER), changed no other
transcript, and cost 9.6 % more time (185.4 s against 169.1 s)."""
MIN_SPEECH_S = 0.3
"""Less speech than this in a stretch (VAD) is a pause, not skipped speech."""
MAX_REPAIRS = 3
"""At most this many stretches decoded again per window (a stretch found inside a repaired
stretch counts too): a request's cost stays bounded."""
MIN_AVG_LOGPROB = -1.0
"""A repaired segment less likely than this is dropped (Whisper's own fallback threshold)."""


def holes(words: list[tuple[float, float]], done_s: float) -> list[tuple[float, float]]:
    """Stretches of at least HOLE_S in [0, done_s) that no word covers; `words` are
    (start, end) in seconds from the window's start."""
    out = []
    cursor = 0.0
    for start, end in sorted(words):
        if min(start, done_s) - cursor >= HOLE_S:
            out.append((cursor, min(start, done_s)))
        cursor = max(cursor, end)
    if done_s - cursor >= HOLE_S:
        out.append((cursor, done_s))
    return out


def speech_s(audio: np.ndarray, threshold: float = VAD_THRESHOLD) -> float:
    """Seconds of speech VAD finds in float32 16 kHz `audio`."""
    options = VadOptions(threshold=threshold, speech_pad_ms=0, min_silence_duration_ms=100)
    return sum(r["end"] - r["start"] for r in get_speech_timestamps(audio, options)) / SAMPLE_RATE


def worth_decoding(
    audio: np.ndarray, words: list[tuple[float, float]], done_s: float, threshold: float = VAD_THRESHOLD
) -> list[tuple[int, int]]:
    """[start, end) samples of the stretches to decode again: holes with speech in them."""
    out = []
    for start, end in holes(words, done_s):
        a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        if speech_s(audio[a:b], threshold) >= MIN_SPEECH_S:
            out.append((a, b))
        if len(out) == MAX_REPAIRS:
            break
    return out


def keep(segment: Any) -> bool:
    """A repaired segment worth splicing in."""
    return bool(segment.text.strip()) and segment.avg_logprob >= MIN_AVG_LOGPROB


def split(segment: dict[str, Any]) -> list[dict[str, Any]]:
    """The segment cut at every pause of at least HOLE_S between its words, each part timed
    by its words: a segment whose words straddle a skipped voice becomes the parts before and
    after it, so the voice's text, spliced in by time, lands between them."""
    words = segment["words"]
    if not words:
        return [segment]
    parts: list[list[dict[str, Any]]] = [[words[0]]]
    for before, word in itertools.pairwise(words):
        if word["start"] - before["end"] >= HOLE_S:
            parts.append([])
        parts[-1].append(word)
    if len(parts) == 1:
        return [tighten(segment)]
    return [
        {
            **segment,
            "start": part[0]["start"],
            "end": part[-1]["end"],
            "text": "".join(w["word"] for w in part),
            "words": part,
        }
        for part in parts
    ]


def tighten(segment: dict[str, Any]) -> dict[str, Any]:
    """The segment started and ended at its words when they are HOLE_S or more inside it."""
    words = segment["words"]
    if words and words[0]["start"] - segment["start"] >= HOLE_S:
        segment["start"] = words[0]["start"]
    if words and segment["end"] - words[-1]["end"] >= HOLE_S:
        segment["end"] = words[-1]["end"]
    return segment
