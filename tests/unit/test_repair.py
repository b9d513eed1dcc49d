"""Finding speech Whisper jumped over inside a window (actors/workers/repair.py), without the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actors.workers import repair
from tests.support.harness import SPEECH


def word(start: float, end: float, text: str) -> dict:
    return {"start": start, "end": end, "word": text, "probability": 0.9}


def test_holes_are_stretches_without_words_before_the_consumed_end() -> None:
    words = [(0.2, 0.5), (0.6, 1.0), (3.0, 3.5), (3.6, 4.0)]
    assert repair.holes(words, 8.0) == [(1.0, 3.0), (4.0, 8.0)]
    assert repair.holes(words, 5.0) == [(1.0, 3.0)]  # 1 s after the last word: a pause
    assert repair.holes([], 2.0) == [(0.0, 2.0)]
    assert repair.holes([(2.0, 2.5)], 2.5) == [(0.0, 2.0)]


def test_a_segment_is_split_where_its_words_pause_and_timed_by_them() -> None:
    segment = {
        "start": 10.0,
        "end": 22.0,
        "text": " composed to form letterpress, it is",
        "avg_logprob": -0.2,
        "no_speech_prob": 0.03,
        "words": [
            word(10.1, 10.6, " composed"),
            word(10.6, 10.8, " to"),
            word(10.8, 11.2, " form"),
            word(11.2, 12.0, " letterpress,"),
            word(17.5, 17.7, " it"),
            word(17.7, 17.9, " is"),
        ],
    }
    before, after = repair.split(segment)
    assert (before["start"], before["end"], before["text"]) == (10.1, 12.0, " composed to form letterpress,")
    assert (after["start"], after["end"], after["text"]) == (17.5, 17.9, " it is")
    assert after["avg_logprob"] == -0.2


def test_a_segment_without_a_long_pause_is_kept_and_tightened() -> None:
    segment = {
        "start": 0.0,
        "end": 9.0,
        "text": " a b",
        "words": [word(3.0, 3.4, " a"), word(3.5, 4.0, " b")],
    }
    assert repair.split(segment) == [{**segment, "start": 3.0, "end": 4.0}]
    plain = {"start": 0.0, "end": 1.0, "text": " a", "words": []}
    assert repair.split(plain) == [plain]


def test_only_holes_with_speech_in_them_are_decoded_again() -> None:
    """A whispered clip VAD scores 9 % speech at 0.5 is found at 0.25; digital silence is not."""
    whisper = SPEECH / "clips" / "mfa" / "whisper.flac"
    if not whisper.exists():
        pytest.skip(f"needs the shared speech data ({whisper} is missing)")
    from tests.support.rig import load_pcm

    clip = load_pcm(Path(whisper)).astype(np.float32) / 32768
    silence = np.zeros(3 * 16000, np.float32)
    audio = np.concatenate([silence, clip, silence])
    n = len(audio) / 16000
    stretches = repair.worth_decoding(audio, [], n)
    assert stretches == [(0, len(audio))]
    clip_at = len(silence) / 16000
    words = [(0.0, 0.5), (clip_at - 0.1, clip_at + 5.8)]  # the clip covered: only silence is left
    assert repair.worth_decoding(audio, words, n) == []
