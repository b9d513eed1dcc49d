"""Long multi-speaker recordings for the accuracy benchmark, built from the dev clips.

A seeded recording is a meeting-like sequence of turns: a speaker other than the last one
says 1-3 of their clips, then the next speaker follows after a pause of 0.3-3 s. The seed
also picks a variant, in turn:

- `plain`: every clip at its recorded level;
- `levels`: each speaker at their own gain, -12 to +2 dB (a quiet speaker after a loud one);
- `noise`: 2-5 s of noise between some turns, shaped like the dev speech's long-term spectrum;
- `music`: 2-5 s of synthetic chords between some turns.

Besides the seeded ones: `long/dev_multispeaker.flac` (47 dev clips, six speakers) and the
LJSpeech long file (one reader, 32 clips), each with its clip order from `.parts.json`.
The dev clips are those of dev_multispeaker; other recordings are for checking later.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support.harness import SPEECH
from tests.support.replay import manifest_clips
from tests.support.rig import RATE_HZ, load_pcm

VARIANTS = ("plain", "levels", "noise", "music")
GAP_S = (0.3, 3.0)
INTERLUDE_S = (2.0, 5.0)
INTERLUDE_CHANCE = 0.35
LEVEL_DB = (-12.0, 2.0)


@dataclass
class Recording:
    name: str
    variant: str
    pcm: np.ndarray
    """int16 mono 16 kHz."""
    files: list[str] = field(default_factory=list)
    """The clips in order (manifest paths)."""
    references: list[str] = field(default_factory=list)
    bounds: list[tuple[int, int]] = field(default_factory=list)
    """[start, end) samples of each clip in `pcm`."""

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE_HZ


@functools.cache
def _references() -> dict[str, dict[str, str]]:
    return {row["file"]: row for row in manifest_clips()}


@functools.cache
def clip_pcm(file: str) -> np.ndarray:
    return load_pcm(SPEECH / file)


def dev_clips() -> list[str]:
    """The clips of long/dev_multispeaker.flac: what the design may be tuned on."""
    return list(json.loads((SPEECH / "long" / "dev_multispeaker.parts.json").read_text()))


def speaker(file: str) -> str:
    return _references()[file]["speaker"].split("(")[0].strip()


def from_parts(name: str, audio: Path) -> Recording:
    """A recording shipped in ../shared with its `.parts.json`: the clips in order, evenly
    spaced (the clip bounds are derived from that)."""
    parts = json.loads(audio.with_suffix(".parts.json").read_text())
    files = [p.replace("short/", "clips/", 1) for p in parts]
    refs = _references()
    pcm = load_pcm(audio)
    lengths = [len(clip_pcm(f)) for f in files]
    gap = (len(pcm) - sum(lengths)) // max(1, len(files) - 1)
    starts = [sum(lengths[:k]) + k * gap for k in range(len(files))]
    bounds = [(s, s + n) for s, n in zip(starts, lengths, strict=True)]
    return Recording(name, "shipped", pcm, files, [refs[f]["reference"] for f in files], bounds)


def seeded(seed: int, length_s: float) -> Recording:
    """A seeded meeting of about `length_s` seconds from the dev clips."""
    rng = random.Random(seed)
    variant = VARIANTS[seed % len(VARIANTS)]
    pools: dict[str, list[str]] = {}
    for file in dev_clips():
        pools.setdefault(speaker(file), []).append(file)
    for pool in pools.values():
        rng.shuffle(pool)
    gains = {s: 10 ** (rng.uniform(*LEVEL_DB) / 20) if variant == "levels" else 1.0 for s in pools}
    pieces: list[np.ndarray] = []
    rec = Recording(f"seed{seed}-{variant}", variant, np.zeros(0, np.int16))
    at, last = 0, ""
    while at < length_s * RATE_HZ:
        choices = sorted(s for s in pools if pools[s] and s != last) or sorted(s for s in pools if pools[s])
        if not choices:
            break
        who = rng.choice(choices)
        if pieces and variant in ("noise", "music") and rng.random() < INTERLUDE_CHANCE:
            interlude = _interlude(variant, rng)
            pieces += [_silence(rng), interlude]
            at += len(pieces[-2]) + len(interlude)
        for _ in range(rng.randint(1, 3)):
            if not pools[who]:
                break
            file = pools[who].pop()
            if pieces:
                pieces.append(_silence(rng))
                at += len(pieces[-1])
            clip = np.clip(clip_pcm(file).astype(np.float32) * gains[who], -32768, 32767).astype(np.int16)
            pieces.append(clip)
            rec.files.append(file)
            rec.references.append(_references()[file]["reference"])
            rec.bounds.append((at, at + len(clip)))
            at += len(clip)
        last = who
    rec.pcm = np.concatenate(pieces)
    return rec


def _silence(rng: random.Random) -> np.ndarray:
    return np.zeros(int(rng.uniform(*GAP_S) * RATE_HZ), np.int16)


def _interlude(variant: str, rng: random.Random) -> np.ndarray:
    n = int(rng.uniform(*INTERLUDE_S) * RATE_HZ)
    np_rng = np.random.default_rng(rng.randrange(2**32))
    if variant == "noise":
        spectrum = _speech_spectrum()
        white = np.fft.rfft(np_rng.standard_normal(n))
        shape = np.interp(np.linspace(0, 1, len(white)), np.linspace(0, 1, len(spectrum)), spectrum)
        signal = np.fft.irfft(white * shape, n)
        level_db = rng.uniform(-35.0, -25.0)
    else:
        t = np.arange(n) / RATE_HZ
        signal = np.zeros(n)
        beat = int(0.5 * RATE_HZ)
        for start in range(0, n, beat):
            root = 220.0 * 2 ** (rng.choice([0, 3, 5, 7, 10]) / 12)
            span = slice(start, min(start + beat, n))
            envelope = np.exp(-3.0 * (t[span] - t[start]))
            for ratio in (1.0, 1.25, 1.5, 2.0):
                signal[span] += envelope * np.sin(2 * np.pi * root * ratio * t[span]) / ratio
        level_db = rng.uniform(-28.0, -20.0)
    rms = float(np.sqrt(np.mean(signal**2))) or 1.0
    scaled = signal / rms * 32768 * 10 ** (level_db / 20)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


@functools.cache
def _speech_spectrum() -> np.ndarray:
    """Mean magnitude spectrum of the dev clips (512-point frames)."""
    total = np.zeros(257)
    frames = 0
    for file in dev_clips():
        pcm = clip_pcm(file).astype(np.float64) / 32768
        usable = len(pcm) // 512 * 512
        blocks = pcm[:usable].reshape(-1, 512) * np.hanning(512)
        total += np.abs(np.fft.rfft(blocks, axis=1)).sum(axis=0)
        frames += len(blocks)
    return total / max(frames, 1)


def benchmark_set(count: int, length_s: float, first_seed: int = 0) -> list[Recording]:
    """`count` seeded recordings, then dev_multispeaker and the LJSpeech long file."""
    recordings = [seeded(first_seed + k, length_s) for k in range(count)]
    long = SPEECH / "long"
    recordings.append(from_parts("dev_multispeaker", long / "dev_multispeaker.flac"))
    recordings.append(from_parts("ljspeech_long", long / "ljspeech_LJ001_0001-0032_consecutive.flac"))
    return recordings
