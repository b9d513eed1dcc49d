"""Where a long dictation is cut into pieces (actors/media/speech.py cut_point, SPEC.md 12.4), on
espeak-ng speech with known pauses."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from actors.media.speech import cut_point
from actors.ptt.pieces import PieceCutter, cut_recording
from tests.support.harness import espeak_wav, pcm16

RATE = 16000


@pytest.fixture(scope="module")
def sentence(media_dir: Path) -> np.ndarray:
    wav = espeak_wav(
        "We will meet again next week to talk about the plan.", media_dir / "piece.wav", pad_s=0.0
    )
    return np.frombuffer(pcm16(wav), dtype="<i2")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def test_nothing_is_cut_before_the_minimum(sentence: np.ndarray) -> None:
    pcm = np.concatenate([sentence, silence(0.6), sentence])
    assert cut_point(pcm, min_samples=len(pcm) + 1, max_samples=30 * RATE) is None


def test_the_cut_is_in_the_first_pause_after_the_minimum(sentence: np.ndarray) -> None:
    first = np.concatenate([sentence, silence(0.6), sentence])  # a pause before the minimum
    pcm = np.concatenate([first, silence(0.8), sentence, silence(0.8), sentence])
    cut = cut_point(pcm, min_samples=len(first) - RATE, max_samples=30 * RATE)
    assert cut is not None
    pause = (len(first), len(first) + int(0.8 * RATE))
    assert pause[0] - 0.15 * RATE < cut < pause[1] + 0.15 * RATE, (cut, pause)
    assert np.abs(pcm[cut - 800 : cut + 800]).max() < 500, "the cut falls in silence"


def test_without_a_pause_it_waits_then_cuts_at_the_maximum() -> None:
    """No speech found, so no pause either: wait for the maximum, then cut exactly there."""
    assert cut_point(silence(5), min_samples=2 * RATE, max_samples=6 * RATE) is None
    assert cut_point(silence(7), min_samples=2 * RATE, max_samples=6 * RATE) == 6 * RATE


def test_a_long_pause_at_the_end_is_a_place_to_cut(sentence: np.ndarray) -> None:
    pcm = np.concatenate([sentence, sentence, silence(0.5)])
    cut = cut_point(pcm, min_samples=len(sentence), max_samples=30 * RATE)
    assert cut is not None and 2 * len(sentence) - 0.2 * RATE <= cut <= len(pcm)


def pieces_looked_at_from(pcm: np.ndarray, phase_s: float, min_s: float = 2.0) -> list[int]:
    """The cuts the audio actor makes in `pcm` looking every 0.5 s, first at `phase_s`."""
    cuts, sent = [], 0
    for now in np.arange(phase_s, len(pcm) / RATE, 0.5):
        cut = cut_point(pcm[sent : int(now * RATE)], int(min_s * RATE), 30 * RATE, threshold=0.25)
        if cut is not None:
            sent += cut
            cuts.append(sent)
    return cuts


def test_the_same_recording_is_cut_the_same_whenever_it_is_looked_at(sentence: np.ndarray) -> None:
    """The pieces, and so the transcript, do not depend on the moments the audio actor looks:
    a pause still going on counts only once its cut point is final (SPEC.md 12.4)."""
    parts = [sentence]
    for pause_s in (0.35, 0.45, 0.6, 0.8, 1.3, 0.5, 2.0):
        parts += [silence(pause_s), sentence]
    pcm = np.concatenate(parts)
    seen = {tuple(pieces_looked_at_from(pcm, phase)) for phase in (0.05, 0.15, 0.25, 0.35, 0.45)}
    assert len(seen) == 1, seen
    assert len(next(iter(seen))) >= 3, "cut in several pauses"


CUTTER = PieceCutter(min_samples=2 * RATE, max_samples=30 * RATE, threshold=0.5)


def test_a_recording_is_cut_into_pieces_that_tile_it(sentence: np.ndarray) -> None:
    """cut_recording, the audio actor's decisions over a whole recording (what the replay
    measures): pieces in order, end to end, each cut in silence, the last at the release."""
    pcm = np.concatenate([sentence, silence(0.8), sentence, silence(0.8), sentence])
    pieces = cut_recording(pcm, CUTTER)
    assert len(pieces) >= 2
    assert pieces[0].start == 0 and pieces[-1].end == len(pcm)
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
    assert all(np.abs(pcm[p.end - 800 : p.end + 800]).max() < 500 for p in pieces[:-1])
    assert all(p.mel_max is not None for p in pieces)


def test_a_silent_rest_at_the_release_makes_an_empty_last_piece(sentence: np.ndarray) -> None:
    pcm = np.concatenate([sentence, silence(0.8), sentence, silence(1.5)])
    pieces = cut_recording(pcm, CUTTER)
    assert pieces[-1].start == pieces[-1].end < len(pcm), pieces
    assert CUTTER.last_end(pcm, 0) == len(pcm), "nothing cut yet: the whole recording goes"


def test_with_streaming_off_the_recording_is_one_piece(sentence: np.ndarray) -> None:
    pcm = np.concatenate([sentence, silence(0.8), sentence, silence(0.8), sentence])
    [piece] = cut_recording(pcm, CUTTER, stream=False)
    assert (piece.start, piece.end) == (0, len(pcm))
