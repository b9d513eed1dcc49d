"""Scoring a long transcript against the clips it was made of: WER, and which clips were lost.

The reference is the clips' references, each normalised on its own (Whisper's English
normaliser) and joined, so every reference word belongs to exactly one clip. jiwer aligns the
whole hypothesis against it once; a clip is *dropped* when at least half of its words are
deleted in that alignment, and *garbled* when at least half are deleted or substituted
(wrong text laid over the speech, which a deletion count alone does not see).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

DROPPED_FRACTION = 0.5


@functools.cache
def _normaliser() -> Any:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def words(text: str) -> list[str]:
    """`text` normalised for scoring, as words."""
    return str(_normaliser()(text)).split()


@dataclass(frozen=True)
class ClipScore:
    words: int
    deleted: int
    substituted: int

    @property
    def dropped(self) -> bool:
        return self.words > 0 and self.deleted >= DROPPED_FRACTION * self.words

    @property
    def garbled(self) -> bool:
        return self.words > 0 and self.deleted + self.substituted >= DROPPED_FRACTION * self.words


@dataclass(frozen=True)
class Score:
    wer: float
    """Word error rate, as a fraction of the reference's words."""
    clips: list[ClipScore]

    @property
    def dropped(self) -> list[int]:
        """Indexes of the dropped clips."""
        return [k for k, c in enumerate(self.clips) if c.dropped]

    @property
    def garbled(self) -> list[int]:
        return [k for k, c in enumerate(self.clips) if c.garbled]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after Whisper's English normaliser (0 to 1+); an empty reference scores
    0 against an empty hypothesis, else 1."""
    import jiwer

    ref, hyp = " ".join(words(reference)), " ".join(words(hypothesis))
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


def score(clip_references: list[str], hypothesis: str) -> Score:
    """Align `hypothesis` against the clips' references, joined in order."""
    import jiwer

    per_clip = [words(r) for r in clip_references]
    owner = [k for k, clip in enumerate(per_clip) for _ in clip]
    reference = [w for clip in per_clip for w in clip]
    hyp = words(hypothesis)
    if not reference:
        raise ValueError("the references have no words")
    deleted = [0] * len(per_clip)
    substituted = [0] * len(per_clip)
    if not hyp:
        return Score(1.0, [ClipScore(len(c), len(c), 0) for c in per_clip])
    out = jiwer.process_words(" ".join(reference), " ".join(hyp))
    for chunk in out.alignments[0]:
        for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
            if chunk.type == "delete":
                deleted[owner[i]] += 1
            elif chunk.type == "substitute":
                substituted[owner[i]] += 1
    clips = [ClipScore(len(c), d, s) for c, d, s in zip(per_clip, deleted, substituted, strict=True)]
    return Score(float(out.wer), clips)
