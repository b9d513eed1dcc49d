"""Where each role's code lives, and how its process is started and recognised. The roles
themselves, and their order, are protocol.vocab's ROSTER."""

from __future__ import annotations

import sys

from protocol.vocab import ROSTER, Role

MODULES: dict[Role, str] = {
    Role.SCHEDULER: "actors.hub.scheduler",
    Role.INGEST: "actors.workers.ingest",
    Role.TRANSCRIBER: "actors.workers.transcriber",
    Role.AUDIO: "actors.ptt.audio",
    Role.HOTKEY: "actors.ptt.hotkey",
    Role.DELIVER: "actors.ptt.deliver",
    Role.WATCHER: "actors.watch.watcher",
    Role.WARDEN: "actors.hub.warden",
}
"""Each role's module; it has `main(argv) -> int`."""
assert tuple(MODULES) == ROSTER, "every role has a module, in roster order"


def command(role: str, python: str = sys.executable) -> list[str]:
    """The argv that starts one actor: `python -m actors ROLE`."""
    return [python, "-m", "actors", str(Role(role))]


def runs_role(argv: list[str], role: str) -> bool:
    """True if a process's argv is `python -m actors ROLE ...`."""
    return argv[1:4] == ["-m", "actors", role]
