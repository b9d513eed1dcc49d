"""The accuracy benchmark's scoring: WER and the clips a transcript lost (tests/support/scoring.py)."""

from __future__ import annotations

from tests.support.scoring import score

CLIPS = [
    "The quick brown fox jumps over the lazy dog.",
    "Printing, in the only sense with which we are at present concerned.",
    "And so my fellow Americans, ask not.",
]


def test_a_perfect_transcript_loses_nothing() -> None:
    result = score(CLIPS, " ".join(CLIPS).upper())
    assert result.wer == 0.0 and result.dropped == [] and result.garbled == []


def test_a_skipped_clip_is_dropped_and_its_neighbours_are_not() -> None:
    result = score(CLIPS, f"{CLIPS[0]} {CLIPS[2]}")
    assert result.dropped == [1] and result.clips[1].deleted == result.clips[1].words
    assert [c.words for c in result.clips] == [9, 12, 7] and abs(result.wer - 12 / 28) < 1e-9


def test_wrong_text_over_a_clip_is_garbled_not_dropped() -> None:
    wrong = "Painting is what some people think of when they hear that word today."
    result = score(CLIPS, f"{CLIPS[0]} {wrong} {CLIPS[2]}")
    assert result.dropped == [] and result.garbled == [1]


def test_half_a_clip_missing_counts_as_dropped() -> None:
    result = score(CLIPS, f"{CLIPS[0]} Printing, in the only {CLIPS[2]}")
    assert result.dropped == [1] and result.clips[1].deleted == 8
