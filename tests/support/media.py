"""Media files in the formats people drop into a watch folder, made from 16 kHz int16 PCM:
wav, flac and mp3 with sox; m4a (AAC) and an mp4 video with an audio track with PyAV (the
decoder the stack itself uses, so no ffmpeg binary is needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import av.audio.resampler
import numpy as np

RATE = 16000


def with_sox(pcm: np.ndarray, path: Path) -> Path:
    raw = path.with_suffix(".raw")
    raw.write_bytes(pcm.astype("<i2").tobytes())
    args = ["sox", "-D", "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
    subprocess.run([*args, str(raw), str(path)], check=True, capture_output=True)
    raw.unlink()
    return path


def with_pyav(pcm: np.ndarray, path: Path, video: bool = False) -> Path:
    """AAC in an MP4 container (.m4a), plus a small black MPEG-4 video track if `video`."""
    out = av.open(str(path), "w", format="mp4")
    audio = out.add_stream("aac", rate=44100)
    audio.layout = "mono"
    stream = None
    if video:  # every stream is added before the first packet is muxed
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    frame = av.AudioFrame.from_ndarray(pcm.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    resampler = av.audio.resampler.AudioResampler(format="fltp", layout="mono", rate=44100)
    for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
        for packet in audio.encode(chunk):
            out.mux(packet)
    for packet in audio.encode(None):
        out.mux(packet)
    if stream is not None:
        for _ in range(int(len(pcm) / RATE * 10)):
            image = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    out.close()
    return path


def every_format(pcm: np.ndarray, folder: Path, stem: str) -> list[Path]:
    """The same speech as .wav, .flac, .mp3, .m4a and .mp4 (video), in `folder`."""
    return [
        with_sox(pcm, folder / f"{stem}.wav"),
        with_sox(pcm, folder / f"{stem}.flac"),
        with_sox(pcm, folder / f"{stem}.mp3"),
        with_pyav(pcm, folder / f"{stem}.m4a"),
        with_pyav(pcm, folder / f"{stem}.mp4", video=True),
    ]
