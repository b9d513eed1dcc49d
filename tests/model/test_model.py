"""The transcriber's model wrapper with the real tiny.en model: one decoding window per
request, and the continuation is exactly where faster-whisper itself would go on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actors.media.audiofile import decode_to_array
from actors.workers.model import HOP_SAMPLES, WhisperBackend

pytestmark = pytest.mark.model

WINDOW = 30 * 16000
OPTIONS = {
    "language": "en",
    "task": "transcribe",
    "beam_size": 5,
    "condition_on_previous_text": False,
    "word_timestamps": False,
}


@pytest.fixture(scope="module")
def backend() -> WhisperBackend:
    b = WhisperBackend()
    b.load()
    return b


def test_stops_after_the_first_window_where_whisper_would_seek(
    backend: WhisperBackend, long_audio: Path
) -> None:
    audio = decode_to_array(long_audio).astype(np.float32) / 32768.0
    partial = 0
    for start in (0, WINDOW, 2 * WINDOW):
        window = audio[start : start + WINDOW]
        out = backend.transcribe(window, start / 16000, OPTIONS, None)
        full, _ = backend.model.transcribe(  # as the backend runs it: words show skipped speech
            window, language="en", beam_size=5, condition_on_previous_text=False, word_timestamps=True
        )
        full = list(full)
        first = [s for s in full if s.seek == 0]
        later = [s for s in full if s.seek > 0]
        ours = "".join(s["text"] for s in out.segments)  # segments may be cut at long pauses
        assert ours.split() == "".join(s.text for s in first).split()
        assert out.segments[0]["start"] == pytest.approx(start / 16000 + first[0].start, abs=1e-3)
        partial += out.consumed < len(window)
        if later:  # whisper decoded the cut-off tail again: we stopped where it started
            assert out.consumed == later[0].seek * HOP_SAMPLES
        else:  # whole window, or a tail whisper decoded to nothing: it starts the next window
            assert 0 < out.consumed <= len(window)
    assert partial >= 1  # the early stop really happened with this faster-whisper


def test_silence_consumes_the_whole_window(backend: WhisperBackend) -> None:
    out = backend.transcribe(np.zeros(5 * 16000, np.float32), 0.0, OPTIONS, None)
    assert out.consumed == 5 * 16000


def test_unloadable_model_says_why() -> None:
    backend = WhisperBackend(model="/nonexistent/model")
    with pytest.raises(RuntimeError, match=r"cannot load model '/nonexistent/model'.*downloads are off"):
        backend.load()


def test_windows_are_clamped_like_the_whole_file(long_audio: Path) -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    from actors.media.loudness import mel_reference
    from actors.workers.model import ReferencedFeatures

    pcm = decode_to_array(long_audio)
    audio = pcm.astype(np.float32) / 32768.0
    extractor = FeatureExtractor()
    whole = extractor(audio)
    reference = mel_reference(pcm)
    assert reference == pytest.approx(4 * float(whole.max()) - 4, abs=1e-4)
    features = ReferencedFeatures(extractor)
    features.reference = reference
    start = WINDOW  # frames 3000.. of the whole file
    window = features(audio[start : start + WINDOW])
    inner = slice(5, 2995)  # STFT edges see different neighbours
    expected = whole[:, 3000 + inner.start : 3000 + inner.stop]
    assert np.allclose(window[:, inner], expected, atol=1e-4)
    alone = extractor(audio[start : start + WINDOW])
    assert not np.allclose(alone[:, inner], expected, atol=1e-4)  # what the reference fixes
