"""Recorder: cuts by capture time, so pre-roll and post-roll hold however late the commands
are handled; ring refill, cap, cancel, outages. Synthetic int16 blocks whose samples count
up, so positions are checked exactly."""

from __future__ import annotations

import numpy as np

from actors.ptt.recorder import Recorder

BLOCK = 160
RATE = 16000
T0 = 1000.0  # capture time of sample 0


def block(i: int) -> tuple[np.ndarray, float]:
    """Block i (samples i*160 ..) and the capture time of its last sample."""
    samples = np.arange(i * BLOCK, (i + 1) * BLOCK, dtype=np.int64).astype(np.int16)
    return samples, T0 + (i + 1) * BLOCK / RATE


def feed(rec: Recorder, first: int, count: int) -> list:
    return [u for i in range(first, first + count) if (u := rec.feed(*block(i))) is not None]


def at(sample: int) -> float:
    return T0 + sample / RATE


def positions(pcm: np.ndarray) -> np.ndarray:
    """Sample positions back from the counting int16 values (they wrap at 65536)."""
    values = pcm.astype(np.int64) % 65536
    return values + 65536 * np.concatenate([[0], np.cumsum(np.diff(values) < 0)])


def test_preroll_and_postroll_frame_the_recording() -> None:
    rec = Recorder(preroll_s=0.3, postroll_s=0.2, max_samples=10**6)
    feed(rec, 0, 100)  # 1 s idle
    rec.start(at(16000), "hotkey")
    feed(rec, 100, 50)
    assert rec.stop(at(24000)) is None  # the post-roll is not here yet
    done = feed(rec, 150, 30)
    assert len(done) == 1
    pcm = positions(done[0].pcm)
    assert pcm[0] == 16000 - 4800  # exactly 300 ms before the press
    assert pcm[-1] == 24000 + 3200 - 1  # exactly 200 ms after the release
    assert np.all(np.diff(pcm) == 1)  # nothing lost, nothing doubled
    assert (done[0].key_down, done[0].key_up, done[0].capped) == (at(16000), at(24000), False)
    assert not rec.recording


def test_commands_handled_late_still_cut_at_the_key_times() -> None:
    """The loop was busy: 2 s of audio arrive before the start, then everything else at once."""
    rec = Recorder(preroll_s=0.3, postroll_s=0.2, max_samples=10**6)
    feed(rec, 0, 300)  # 3 s captured; the press happened at 1.0 s
    rec.start(at(16000), "hotkey")
    feed(rec, 300, 200)  # up to 5 s; the release happened at 3.0 s
    done = rec.stop(at(48000))
    assert done is not None
    pcm = positions(done.pcm)
    assert pcm[0] == 16000 - 4800 and pcm[-1] == 48000 + 3200 - 1


def test_ring_refills_after_a_recording() -> None:
    rec = Recorder(preroll_s=0.1, postroll_s=0.01, max_samples=10**6)
    feed(rec, 0, 20)  # samples 0..3199
    rec.start(at(3200), "cli")
    assert rec.stop(at(3200)) is None
    first = feed(rec, 20, 3)[0]  # the cut is inside block 20; blocks 21-22 go to the ring
    assert positions(first.pcm)[0] == 1600 and positions(first.pcm)[-1] == 3359
    rec.start(at(3680), "cli")  # 100 ms pre-roll reaches back past the last cut: starts there
    assert rec.stop(at(3680)) is None
    second = positions(feed(rec, 23, 1)[0].pcm)
    assert second[0] == 3360 and second[-1] == 3839 and np.all(np.diff(second) == 1)


def test_cap_stops_at_max_samples() -> None:
    rec = Recorder(preroll_s=0.0, postroll_s=0.0, max_samples=16000)
    feed(rec, 0, 1)
    rec.start(at(160), "cli")
    done = feed(rec, 1, 150)
    assert len(done) == 1 and done[0].capped and len(done[0].pcm) == 16000
    assert not rec.recording


def test_cancel_discards_and_finish_now_keeps() -> None:
    rec = Recorder(preroll_s=0.0, postroll_s=0.2, max_samples=10**6)
    feed(rec, 0, 1)
    rec.start(at(160), "cli")
    feed(rec, 1, 10)
    rec.cancel()
    assert not rec.recording and feed(rec, 11, 5) == []
    rec.start(at(2560), "cli")
    feed(rec, 16, 10)
    assert rec.finish_now() is None  # still recording: no stop yet
    rec.stop(at(4160))
    kept = rec.finish_now()  # the device went away during the post-roll
    assert kept is not None and len(kept.pcm) == 1600


def test_an_outage_in_the_stream_does_not_shift_the_cut() -> None:
    rec = Recorder(preroll_s=0.0, postroll_s=0.0, max_samples=10**6)
    feed(rec, 0, 1)
    rec.start(at(160), "cli")
    feed(rec, 1, 100)  # 1 s recorded
    # a 5 s outage: the stream is reopened and the next block is captured at 6 s
    rec.discontinuity()
    late = np.arange(0, BLOCK, dtype=np.int16)
    rec.feed(late, at(160 + 16000 + 5 * RATE + BLOCK))
    done = rec.stop(at(160 + 16000 + 5 * RATE + BLOCK))
    assert done is not None and len(done.pcm) == 16000 + BLOCK  # no 5 s of waiting for audio


def test_a_late_burst_of_blocks_is_not_an_outage() -> None:
    """The loop or the sound server stalled: blocks arrive late, all stamped at once."""
    rec = Recorder(preroll_s=0.3, postroll_s=0.0, max_samples=10**6)
    feed(rec, 0, 100)
    burst_time = at(16000 + 50 * BLOCK)
    for i in range(100, 150):  # captured over 0.5 s, delivered in one go 0.5 s late
        rec.feed(block(i)[0], burst_time)
    rec.start(at(24000), "cli")  # the pre-roll is still there: nothing was cleared
    done = rec.stop(at(24000))
    assert done is not None and len(done.pcm) == 4800
