"""The test tiers' guard: while a `unit` test runs, starting an actor process or loading the
Whisper model raises UnitTierViolation, so the unit tier provably needs neither.

The guard wraps `subprocess.Popen` (every way a test starts a process: the harness, the CLI,
supervisord) and faster-whisper's `WhisperModel` once per session; `guarded()` turns it on
around one test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

HEAVY = ("stack", "model", "rig")
"""Markers of the tiers that need more than Python: actor processes, the model, the rig."""

ACCURACY_SKIP = (
    "accuracy replays take minutes (the 40-dictation streaming replay about 7): they run in "
    "their own tier, `pytest -m accuracy`, which .ci/run runs after the suite"
)

GUARDED_PROGRAMS = ("sottovoce", "supervisord", "Xvfb", "pulseaudio", "weston")
"""Programs only the heavy tiers start: the CLI, the supervisor, the rig's servers."""

_active: list[str] = []  # the node id of the unit test running, if any


class UnitTierViolation(RuntimeError):
    """A unit test tried to start an actor process, the rig, or load the model."""


def starts_an_actor(args: Any) -> bool:
    """Whether a Popen argument list runs one of our actors, or a program in GUARDED_PROGRAMS."""
    argv = (
        [os.fspath(a) for a in args]
        if isinstance(args, Sequence) and not isinstance(args, str)
        else [str(args)]
    )
    return any(is_actor_module(a) or os.path.basename(a) in GUARDED_PROGRAMS for a in argv[:3])


def is_actor_module(arg: str) -> bool:
    """`actors` or `actors.X` as `python -m` names them."""
    return arg == "actors" or arg.startswith("actors.")


def _refuse(what: str) -> None:
    if _active:
        raise UnitTierViolation(f"{_active[-1]} is a unit test but {what}: mark it stack or model")


def install_guards() -> None:
    """Wrap Popen and WhisperModel once; they refuse only while a unit test is guarded."""
    popen_init = subprocess.Popen.__init__
    if getattr(popen_init, "_tier_guard", False):
        return

    def guarded_popen(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        if starts_an_actor(args):
            _refuse(f"starts {' '.join(map(str, args))}")
        popen_init(self, args, *rest, **kwargs)

    guarded_popen._tier_guard = True  # type: ignore[attr-defined]
    subprocess.Popen.__init__ = guarded_popen  # type: ignore[method-assign]

    with contextlib.suppress(ImportError):
        from faster_whisper import transcribe

        model_init = transcribe.WhisperModel.__init__

        def guarded_model(self: Any, *args: Any, **kwargs: Any) -> None:
            _refuse("loads the Whisper model")
            model_init(self, *args, **kwargs)

        transcribe.WhisperModel.__init__ = guarded_model  # type: ignore[method-assign]


@contextlib.contextmanager
def guarded(on: bool, nodeid: str) -> Iterator[None]:
    if not on:
        yield
        return
    _active.append(nodeid)
    try:
        yield
    finally:
        _active.pop()
