"""Decoding and chunk planning on real audio (the real PyAV and Silero VAD, no model)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from actors.audiofile import DecodeFailure, decode_to_file
from actors.chunking import PlanOptions, plan_spans, speech_regions

SR = 16000


def plan(pcm: np.ndarray, **kw) -> list[tuple[int, int]]:
    """Apply every streamed update the way the scheduler does; return the final spans."""
    spans: list[list[int]] = []
    for first, update in plan_spans(pcm, PlanOptions(**kw)):
        assert first <= len(spans)
        if first < len(spans):
            assert update[0][0] == spans[first][0] and update[0][1] >= spans[first][1]  # only grows
        del spans[first:]
        spans.extend(update)
    return [(s, e) for s, e in spans]


def test_decode_matches_faster_whisper(long_audio: Path, tmp_path: Path) -> None:
    from faster_whisper import decode_audio

    report = decode_to_file(long_audio, tmp_path / "x.pcm")
    ours = np.fromfile(tmp_path / "x.pcm", dtype="<i2")
    theirs = decode_audio(str(long_audio))
    assert report.samples == len(ours) == len(theirs)
    assert np.array_equal(ours.astype(np.float32) / 32768.0, theirs)


def test_spans_are_ordered_and_cut_in_silence(long_audio: Path, tmp_path: Path) -> None:
    decode_to_file(long_audio, tmp_path / "x.pcm")
    pcm = np.memmap(tmp_path / "x.pcm", dtype="<i2", mode="r")
    spans = plan(pcm, vad_block_s=60)
    regions = list(speech_regions(pcm, PlanOptions(vad_block_s=60)))
    assert spans and all(e > s for s, e in spans)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    starts, ends = {r[0] for r in regions}, {r[1] for r in regions}
    assert all(s in starts and e in ends for s, e in spans)  # edges are speech-region edges
    covered = sum(e - s for s, e in spans)
    assert covered >= sum(e - s for s, e in regions)  # no speech left out


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
