"""Recorder: pre-roll ring, post-roll tail, cap, cancel, on synthetic int16 blocks."""

from __future__ import annotations

import numpy as np

from actors.recorder import Recorder

BLOCK = 160


def blocks(start: int, count: int) -> list[np.ndarray]:
    """Consecutive blocks whose samples count up, so positions can be checked exactly."""
    return [
        np.arange(start + i * BLOCK, start + (i + 1) * BLOCK, dtype=np.int64).astype(np.int16)
        for i in range(count)
    ]


def feed(rec: Recorder, items: list[np.ndarray]) -> list:
    return [u for b in items if (u := rec.feed(b)) is not None]


def test_preroll_and_postroll_frame_the_recording() -> None:
    rec = Recorder(preroll=4800, postroll=3200, max_samples=10**6)
    assert feed(rec, blocks(0, 100)) == []  # 16000 samples while idle
    rec.start(10.0, "hotkey")
    assert feed(rec, blocks(16000, 50)) == []
    rec.stop(11.0)
    done = feed(rec, blocks(24000, 30))
    assert len(done) == 1
    pcm = done[0].pcm.astype(np.int64)
    assert pcm[0] == 16000 - 4800  # exactly the last 300 ms before the start
    assert len(pcm) == 4800 + 8000 + 3200  # pre-roll + recording + 200 ms post-roll
    assert np.all(np.diff(pcm) == 1)  # nothing lost, nothing doubled
    assert (done[0].key_down, done[0].key_up, done[0].capped) == (10.0, 11.0, False)
    assert not rec.recording


def test_ring_refills_after_a_recording() -> None:
    rec = Recorder(preroll=1600, postroll=160, max_samples=10**6)
    feed(rec, blocks(0, 20))
    rec.start(0, "cli")
    rec.stop(0)
    feed(rec, blocks(3200, 3))  # tail ends inside the first block; the rest goes to the ring
    rec.start(1, "cli")
    rec.stop(1)
    second = feed(rec, blocks(3680, 1))[0].pcm.astype(np.int64)
    assert second[0] == 3200 + 160 and np.all(np.diff(second) == 1)


def test_cap_stops_at_max_samples() -> None:
    rec = Recorder(preroll=0, postroll=0, max_samples=16000)
    rec.start(0, "cli")
    done = feed(rec, blocks(0, 150))
    assert len(done) == 1 and done[0].capped and len(done[0].pcm) == 16000
    assert not rec.recording


def test_cancel_discards_and_finish_now_keeps() -> None:
    rec = Recorder(preroll=0, postroll=3200, max_samples=10**6)
    rec.start(0, "cli")
    feed(rec, blocks(0, 10))
    rec.cancel()
    assert not rec.recording and feed(rec, blocks(1600, 5)) == []
    rec.start(0, "cli")
    feed(rec, blocks(2400, 10))
    assert rec.finish_now() is None  # still recording: no stop yet
    rec.stop(1)
    kept = rec.finish_now()
    assert kept is not None and len(kept.pcm) == 1600
