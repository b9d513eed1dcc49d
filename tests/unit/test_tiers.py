"""The test tiers (tests/support/tiers.py): a unit test cannot start an actor process, the rig or the
model, and `pytest -m unit` runs in under a minute without starting any of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiers import UnitTierViolation, starts_an_actor

UNIT_TIER_BUDGET_S = 60.0


def test_a_unit_test_cannot_start_an_actor_or_the_rig() -> None:
    for argv in (
        [sys.executable, "-m", "actors", "scheduler"],
        [sys.executable, "-m", "actors.cli", "ping"],
        ["sottovoce", "up"],
        ["Xvfb", ":99"],
    ):
        with pytest.raises(UnitTierViolation, match="mark it stack or model"):
            subprocess.Popen(argv)
    ok = subprocess.run([sys.executable, "-c", "print('fine')"], capture_output=True, text=True, check=True)
    assert ok.stdout == "fine\n", "other programs still run"


def test_a_unit_test_cannot_load_the_model() -> None:
    from faster_whisper import WhisperModel

    from actors.workers.model import WhisperBackend, embedded_model_path

    with pytest.raises(UnitTierViolation):
        WhisperModel(embedded_model_path(), device="cpu", compute_type="int8")
    backend = WhisperBackend(device="cpu")
    with pytest.raises(RuntimeError, match="is a unit test but loads the Whisper model"):
        backend.load()  # the backend wraps what the model raised in a sentence of its own
    assert backend.model is None


def test_what_counts_as_starting_an_actor() -> None:
    assert starts_an_actor(["python", "-m", "actors", "ingest", "--set", "x=1"])
    assert starts_an_actor([Path("/usr/bin/Xvfb"), ":3"])
    assert not starts_an_actor(["sox", "in.wav", "out.flac"])
    assert not starts_an_actor("espeak-ng -w out.wav hello")
