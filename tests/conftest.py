"""Shared fixtures: speech files (espeak-ng for plumbing, ../shared/data for real speech),
stacks of real actor processes in private temp dirs, and the push-to-talk rig; the test tiers.

Tiers (README, "Tests"), one folder each: tests/stack (actor processes), tests/rig (the
virtual display and microphone), tests/model (the Whisper model in the test process) and
tests/unit; helpers live in tests/support, benchmarks in tests/bench. A test is marked by its
folder here (and may carry more markers: a push-to-talk test is stack and rig); every test
without a heavy marker is marked `unit`, and
while a unit test runs (fixtures included) starting an actor process or loading the model
raises UnitTierViolation, so `pytest -m unit` is guaranteed to need neither.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import tiers
from tests.support.harness import LONG_FLAC, SPEECH, Stack, espeak_wav, transcript
from tests.support.pttdriver import PushToTalkRig
from tests.support.rig import need_binaries

RIG_TOOLS = ("Xvfb", "xdotool", "xclip", "pulseaudio", "pactl", "espeak-ng", "sox")
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please open the settings menu and select the audio tab.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "We choose to go to the moon in this decade and do the other things.",
    "Remember to buy milk, eggs and bread on the way home.",
    "The meeting has been moved to Thursday afternoon at three o'clock.",
]


def need_tool(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install espeak-ng sox)")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def utterance(media_dir: Path) -> tuple[Path, str]:
    """A short espeak-ng utterance and its text."""
    need_tool("espeak-ng", "sox")
    text = "Please open the settings menu."
    return espeak_wav(text, media_dir / "utterance.wav"), text


@pytest.fixture(scope="session")
def long_audio(media_dir: Path) -> Path:
    """About 90 s of speech with pauses, 3 to 4 chunks: the first 90 s of the real LJSpeech
    reading when ../shared/data is present, else espeak-ng sentences joined by silences."""
    need_tool("sox")
    out = media_dir / "long.flac"
    if LONG_FLAC.exists():
        subprocess.run(["sox", str(LONG_FLAC), str(out), "trim", "0", "90"], check=True)
        return out
    need_tool("espeak-ng")
    parts = [espeak_wav(s, media_dir / f"s{i}.wav", pad_s=0.6) for i, s in enumerate(SENTENCES * 5)]
    subprocess.run(["sox", *map(str, parts), str(out), "trim", "0", "90"], check=True)
    return out


@pytest.fixture(scope="session")
def clean_transcript(long_audio: Path) -> list[tuple[float, float, str]]:
    """The long file transcribed once, alone, uninterrupted: what every disturbed run of it
    must reproduce segment by segment."""
    with Stack() as s:
        s.start()
        s.wait_ready()
        job = s.submit_file(long_audio, priority="low")
        assert s.wait_job(job)["state"] == "completed"
        result = transcript(s, job)
    assert len(result) >= 3
    return result


@pytest.fixture(scope="session")
def real_speech() -> Path:
    if not (SPEECH / "manifest.tsv").exists():
        pytest.skip(f"real speech data not found at {SPEECH} (a CI checkout has ../shared/data)")
    return SPEECH


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A fresh stack (scheduler, ingest, transcriber), ready, torn down after the test."""
    with Stack() as s:
        s.start()
        s.wait_ready()
        yield s


@pytest.fixture(scope="module")
def shared_stack() -> Iterator[Stack]:
    """One stack for a module's tests that do not kill actors."""
    with Stack() as s:
        s.start()
        s.wait_ready()
        yield s


@pytest.fixture(scope="module")
def rig() -> Iterator[PushToTalkRig]:
    """The whole stack on the push-to-talk rig (tests/support/pttdriver.py), one per test module."""
    need_binaries(*RIG_TOOLS)
    r = PushToTalkRig()
    try:
        yield r.start()
    finally:
        r.close()


# --- tiers ------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    tiers.install_guards()


FOLDER_TIERS = {"unit": "unit", "stack": "stack", "rig": "rig", "model": "model"}
"""tests/<folder>/ -> the marker every test in it carries."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    accuracy_selected = "accuracy" in (config.option.markexpr or "")
    for item in items:
        folder = item.path.parent.name
        if folder in FOLDER_TIERS:
            item.add_marker(FOLDER_TIERS[folder])
        heavy = [name for name in tiers.HEAVY if item.get_closest_marker(name)]
        if folder == "unit" and heavy:
            raise pytest.UsageError(f"{item.nodeid} is in tests/unit but marked {', '.join(heavy)}: move it")
        if not heavy:
            item.add_marker(pytest.mark.unit)
        if item.get_closest_marker("accuracy") and not accuracy_selected:
            item.add_marker(pytest.mark.skip(reason=tiers.ACCURACY_SKIP))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """The guard is on for the whole of a unit test: setup (fixtures), call and teardown."""
    with tiers.guarded(item.get_closest_marker("unit") is not None, item.nodeid):
        yield
