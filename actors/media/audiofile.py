"""Decode any media file ffmpeg reads into 16 kHz mono int16 PCM, streaming, with PyAV.

The resampling matches faster-whisper's own `decode_audio` (s16, mono, 16 kHz, frames grouped
by 500,000 samples before resampling), so the stack sees the same samples as bare
faster-whisper. Failures raise DecodeFailure with a sentence a person can act on.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from actors.runtime.files import fsync_dir
from protocol.vocab import SAMPLE_RATE

GROUP_SAMPLES = 500_000
# decoded/declared duration below which a file counts as truncated: after a decode error, or
# without one (a cut WAV decodes cleanly); the second is looser because some containers only
# estimate their duration (VBR MP3 without a Xing header)
TRUNCATED_WITH_ERROR = 0.9
TRUNCATED_WITHOUT_ERROR = 0.75


class DecodeFailure(Exception):
    """The file is not usable audio; str() is the reason for people."""


@dataclass(frozen=True)
class DecodeReport:
    samples: int
    declared_s: float | None
    """Duration the container declares, if any."""


def _declared_duration(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def iter_pcm(path: str | Path, report: list[DecodeReport] | None = None) -> Iterator[np.ndarray]:
    """Yield int16 mono 16 kHz blocks of `path`; append a DecodeReport when done."""
    path = str(path)
    if not os.path.exists(path):
        raise DecodeFailure(f"file not found: {path}")
    if os.path.isdir(path):
        raise DecodeFailure(f"{path} is a directory, not a media file")
    if os.path.getsize(path) == 0:
        raise DecodeFailure("the file is empty (0 bytes)")
    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise DecodeFailure(
            f"not a media file that ffmpeg can read ({exc.strerror or type(exc).__name__})"
        ) from exc
    with container:
        if not container.streams.audio:
            kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["no"]
            raise DecodeFailure(f"the file has no audio stream ({', '.join(kinds)} streams only)")
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        fifo = av.audio.fifo.AudioFifo()
        samples = 0
        error: str | None = None

        def resampled(frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
            nonlocal samples
            for out in resampler.resample(frame):
                array = out.to_ndarray().reshape(-1)
                samples += array.shape[0]
                yield array

        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                error = exc.strerror or type(exc).__name__
                # A corrupt frame: faster-whisper skips it; we skip it too but remember it.
                continue
            fifo.write(frame)
            if fifo.samples >= GROUP_SAMPLES:
                yield from resampled(fifo.read())
        if fifo.samples:
            yield from resampled(fifo.read())
        yield from resampled(None)
    gc.collect()  # PyAV resampler objects linger otherwise (faster-whisper issue 390)
    decoded_s = samples / SAMPLE_RATE
    if samples == 0:
        raise DecodeFailure(
            "no audio could be decoded (zero-length or corrupt)" + (f": ffmpeg said {error}" if error else "")
        )
    tolerance = TRUNCATED_WITH_ERROR if error else TRUNCATED_WITHOUT_ERROR
    if declared and decoded_s < declared * tolerance:
        raise DecodeFailure(
            f"the file is truncated or corrupt: decoded {decoded_s:.1f} s of the "
            f"{declared:.1f} s it declares" + (f" (ffmpeg: {error})" if error else "")
        )
    if report is not None:
        report.append(DecodeReport(samples=samples, declared_s=declared))


def decode_to_file(path: str | Path, out_path: str | Path) -> DecodeReport:
    """Stream-decode `path` into `out_path` as raw int16; memory stays bounded."""
    report: list[DecodeReport] = []
    # unique per writer: two ingest workers may decode the same job after a scheduler restart
    tmp = Path(f"{out_path}.{os.getpid()}.{os.urandom(4).hex()}.part")
    try:
        with open(tmp, "wb") as out:
            for block in iter_pcm(path, report):
                out.write(block.astype("<i2", copy=False).tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, out_path)  # identical bytes if another worker got there first
        fsync_dir(Path(out_path).parent)
    finally:
        tmp.unlink(missing_ok=True)
    return report[0]


class PcmFile:
    """A raw int16 cache file read by slices (`pcm[a:b]`), without mapping it into memory:
    reading a 10-hour file block by block keeps the process's memory flat."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.shape = (os.path.getsize(self.path) // 2,)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(self.shape[0])
        count = max(0, stop - start)
        return np.fromfile(self.path, dtype="<i2", count=count, offset=2 * start)


def decode_to_array(path: str | Path) -> np.ndarray:
    """Whole file as int16 (for short files: utterances, the CLI's `say`)."""
    blocks = list(iter_pcm(path))
    return np.concatenate(blocks).astype(np.int16, copy=False)
