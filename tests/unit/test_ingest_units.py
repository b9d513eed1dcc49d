"""Decoding and chunk planning on real audio (the real PyAV and Silero VAD, no model)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from actors.media.audiofile import DecodeFailure, decode_to_file
from actors.workers.chunking import PlanOptions, WindowCutter, plan_spans, region_blocks, speech_regions

SR = 16000


def plan(pcm: np.ndarray, **kw) -> list[tuple[int, int]]:
    """Apply every streamed update the way the scheduler does; return the final windows."""
    spans: list[list[int]] = []
    for first, update in plan_spans(pcm, PlanOptions(**kw)):
        assert first == len(spans) and update  # each window is sent once, decided for good
        spans.extend(update)
    return [(s, e) for s, e in spans]


def test_decode_matches_faster_whisper(long_audio: Path, tmp_path: Path) -> None:
    from faster_whisper import decode_audio

    report = decode_to_file(long_audio, tmp_path / "x.pcm")
    ours = np.fromfile(tmp_path / "x.pcm", dtype="<i2")
    theirs = decode_audio(str(long_audio))
    assert report.samples == len(ours) == len(theirs)
    assert np.array_equal(ours.astype(np.float32) / 32768.0, theirs)


def test_windows_tile_the_audio_and_are_cut_in_pauses(long_audio: Path, tmp_path: Path) -> None:
    decode_to_file(long_audio, tmp_path / "x.pcm")
    pcm = np.memmap(tmp_path / "x.pcm", dtype="<i2", mode="r")
    windows = plan(pcm, vad_block_s=60)
    regions = list(speech_regions(pcm, PlanOptions(vad_block_s=60)))
    assert windows[0][0] == 0 and windows[-1][1] == len(pcm)  # no silence long enough to skip
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))  # nothing left out
    assert all(15 * SR <= e - s <= 30 * SR for s, e in windows[:-1])
    cuts = [e for _, e in windows[:-1]]
    assert not [c for c in cuts if any(s < c < e for s, e in regions)], "a cut inside speech"


def test_a_whisper_vad_misses_is_still_in_a_window(tmp_path: Path) -> None:
    """Silero VAD finds almost no speech in the whispered dev clip: the planner must not leave
    it out as if it were a pause (it did, with spans of VAD speech: 2 clips of 20 dropped)."""
    from tests.support.harness import SPEECH
    from tests.support.rig import load_pcm

    whisper = SPEECH / "clips" / "mfa" / "whisper.flac"
    if not whisper.exists():
        pytest.skip(f"needs the shared speech data ({whisper} is missing)")
    clip = load_pcm(whisper)
    speech = [(s, e) for s, e in speech_regions(clip, PlanOptions())]
    assert sum(e - s for s, e in speech) < 0.3 * len(clip)  # what made the old planner skip it
    gap = np.zeros(6 * SR, np.int16) + np.int16(8)  # 6 s of a quiet room, not digital silence
    pcm = np.concatenate([gap, clip, gap])
    windows = plan(pcm)
    assert windows == [(0, len(pcm))]


def test_only_digital_silence_is_skipped() -> None:
    rng = np.random.default_rng(0)
    room = rng.integers(-6, 7, 12 * SR).astype(np.int16)  # about -75 dBFS: a quiet room
    digital = np.zeros(12 * SR, np.int16)
    pcm = np.concatenate([room, digital, room])
    assert plan(pcm) == [(0, 12 * SR), (24 * SR, 36 * SR)]


@pytest.mark.parametrize("silence_at_s", [57, 100])
def test_windows_decided_block_by_block_are_the_windows_of_the_whole(
    long_audio: Path, tmp_path: Path, silence_at_s: int
) -> None:
    """A window is sent only once it is decided: cutting as the VAD blocks arrive gives the
    windows that cutting the same regions all at once gives, with a silence to skip across a
    block edge (57 s) or at the end."""
    decode_to_file(long_audio, tmp_path / "x.pcm")
    speech = np.fromfile(tmp_path / "x.pcm", dtype="<i2")[: 100 * SR]
    silence = np.zeros(7 * SR, np.int16)
    pcm = np.concatenate([speech[: silence_at_s * SR], silence, speech[silence_at_s * SR :]])
    opts = PlanOptions(vad_block_s=60)
    blocks = list(region_blocks(pcm, opts))
    streamed = WindowCutter(pcm, opts)
    windows = []
    for regions, known in blocks:
        streamed.feed(regions, known)
        windows += streamed.cut(final=False)
    windows += streamed.cut(final=True)
    whole = WindowCutter(pcm, opts)
    whole.feed([r for regions, _ in blocks for r in regions], len(pcm))
    assert windows == whole.cut(final=True)
    assert len(blocks) > 1 and sum(e - s for s, e in windows) <= len(pcm) - 7 * SR  # skipped


def test_planning_is_deterministic_and_blocks_do_not_cut_words(long_audio: Path, tmp_path: Path) -> None:
    decode_to_file(long_audio, tmp_path / "x.pcm")
    pcm = np.memmap(tmp_path / "x.pcm", dtype="<i2", mode="r")
    assert plan(pcm) == plan(pcm)
    small_blocks = list(speech_regions(pcm, PlanOptions(vad_block_s=60)))
    for s, e in small_blocks:
        assert e > s
    # a region never ends within a few ms of a 60 s block edge unless the audio really pauses there
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(small_blocks))


def test_long_silence_ends_a_chunk(utterance: tuple[Path, str], tmp_path: Path) -> None:
    wav, _ = utterance
    silence = tmp_path / "silence.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", "8"], check=True
    )
    joined = tmp_path / "joined.wav"
    subprocess.run(["sox", str(wav), str(silence), str(wav), str(joined)], check=True)
    decode_to_file(joined, tmp_path / "j.pcm")
    pcm = np.fromfile(tmp_path / "j.pcm", dtype="<i2")
    two = plan(pcm, max_gap_s=5.0)
    assert len(two) == 2 and two[1][0] - two[0][1] > 7 * SR  # the 8 s silence is skipped
    assert len(plan(pcm, max_gap_s=10.0)) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.mp3", b"this is not audio, just a text file\n" * 10, "not a media file"),
        ("empty.wav", b"", "empty"),
    ],
)
def test_undecodable_files_fail_clearly(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecodeFailure, match=message):
        decode_to_file(path, tmp_path / "out.pcm")
    assert not (tmp_path / "out.pcm").exists()


def test_truncated_flac_fails(long_audio: Path, tmp_path: Path) -> None:
    data = long_audio.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeFailure, match="truncated"):
        decode_to_file(cut, tmp_path / "out.pcm")


def test_video_without_audio_fails(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height = 64, 64
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(DecodeFailure, match="no audio stream"):
        decode_to_file(path, tmp_path / "out.pcm")


def test_two_concurrent_decodes_of_one_job_both_succeed(long_audio: Path, tmp_path: Path) -> None:
    """After a scheduler restart two ingest workers may decode the same job at once."""
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "job.pcm"
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: decode_to_file(long_audio, out), range(2)))
    assert reports[0] == reports[1]
    assert out.stat().st_size == 2 * reports[0].samples
    assert [p.name for p in tmp_path.iterdir()] == ["job.pcm"]  # no temp file left
