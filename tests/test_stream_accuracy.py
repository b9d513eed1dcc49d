"""A streamed long dictation is as accurate as transcribing the whole recording in one go
(issue 6, SPEC.md 19.2), over several real dictations rather than one.

The dictations are replayed offline through the stack's own cut points, window policy and
model call (tests/replay.py): deterministic, so the comparison is the same on every run, and
about 10 s a dictation. The end-to-end 90 s dictation through the real rig is in
tests/test_drain_ptt.py; the benchmark with more dictations is tests/bench/stream_replay.py.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from actors.model import WhisperBackend
from tests.bench.core import wer
from tests.replay import bare_same_options, long_utterance, recorded, replay

DICTATIONS = 6
SIZE_S = 90.0
MARGIN_POINTS = 1.0


@pytest.fixture(scope="module")
def backend() -> WhisperBackend:
    b = WhisperBackend()
    b.load()
    return b


def test_streamed_dictations_are_within_a_point_of_the_whole_recording_at_once(
    backend: WhisperBackend, real_speech: Path
) -> None:
    rows: list[dict[str, Any]] = []
    for k in range(DICTATIONS):
        u = long_utterance(SIZE_S, f"accuracy-{k}")
        pcm = recorded(u["pcm"])
        streamed = replay(backend, pcm, stream=True)
        rows.append(
            {
                "pieces": len(streamed.pieces),
                "streamed": 100 * wer(u["reference"], streamed.text),
                "bare": 100 * wer(u["reference"], bare_same_options(pcm)),
            }
        )
    streamed_mean = statistics.fmean(r["streamed"] for r in rows)
    bare_mean = statistics.fmean(r["bare"] for r in rows)
    print(
        f"\n{DICTATIONS} dictations of {SIZE_S:g} s: WER streamed {streamed_mean:.2f} %, "
        f"bare {bare_mean:.2f} %; each (pieces, streamed, bare): "
        + ", ".join(f"({r['pieces']}, {r['streamed']:.1f}, {r['bare']:.1f})" for r in rows)
    )
    assert all(r["pieces"] >= 3 for r in rows), "every dictation was streamed in pieces"
    assert streamed_mean <= bare_mean + MARGIN_POINTS
