"""The background stack's files without running them: deploy/supervisord.conf and the systemd
unit as `up` uses them, and log reading (`sottovoce logs`: render, merge, tail, follow)."""

from __future__ import annotations

import configparser
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actors.cli import logview
from actors.cli.supervise import default_conf, environment
from actors.runtime import roster
from actors.runtime.config import Config
from protocol.vocab import ROSTER, Role
from tests.support.harness import REPO

UNIT = REPO / "deploy" / "systemd" / "sottovoce.service"
EXIT_TIMEOUT_S = 30.0


# --- the files --------------------------------------------------------------------------------


def test_supervisord_conf_runs_every_actor_in_order() -> None:
    conf = configparser.RawConfigParser()
    conf.read(default_conf())
    programs = {s.removeprefix("program:"): conf[s] for s in conf.sections() if s.startswith("program:")}
    assert list(programs) == list(ROSTER)
    for name, section in programs.items():
        assert section["command"] == f'"%(ENV_SOTTOVOCE_PYTHON)s" -m actors {name}'
        assert callable(importlib.import_module(roster.MODULES[Role(name)]).main)
        assert section["directory"] == "%(here)s/.."
        assert 'SOTTOVOCE_LOG_FILE="false"' in section["environment"]
        assert section["stdout_logfile"] == "%(ENV_SOTTOVOCE_LOG_DIR)s/%(program_name)s.log"
        assert section["redirect_stderr"] == "true" and section["autorestart"] == "true"
        assert section["stopasgroup"] == section["killasgroup"] == "true"
    priority = {name: int(s["priority"]) for name, s in programs.items()}
    assert priority["scheduler"] < min(priority["ingest"], priority["transcriber"])
    assert max(priority["ingest"], priority["transcriber"]) < min(priority[m] for m in ROSTER[3:-1])
    assert max(priority[m] for m in ROSTER[:-1]) < priority["warden"]


def test_supervisord_conf_reads_only_variables_up_sets(tmp_path: Path) -> None:
    used = set(re.findall(r"%\(ENV_(\w+)\)s", default_conf().read_text()))
    os.environ["SOTTOVOCE_PATHS_RUNTIME_DIR"] = str(tmp_path / "run")
    os.environ["SOTTOVOCE_PATHS_DATA_DIR"] = str(tmp_path / "data")
    try:
        env = environment(Config.load(path=tmp_path / "none.toml"))
    finally:
        del os.environ["SOTTOVOCE_PATHS_RUNTIME_DIR"], os.environ["SOTTOVOCE_PATHS_DATA_DIR"]
    assert used and used <= set(env)
    assert env["SOTTOVOCE_STOP_WAIT_S"] == "40"  # scheduler.stop_timeout_s (30) + 10
    assert env["SOTTOVOCE_PATHS_RUNTIME_DIR"] == str(tmp_path / "run")


def test_systemd_unit_runs_supervisord_through_up(tmp_path: Path) -> None:
    unit = configparser.RawConfigParser(strict=False)
    unit.read(UNIT)
    assert unit["Service"]["ExecStart"] == "@SOTTOVOCE@ up --foreground"
    assert unit["Service"]["KillMode"] == "mixed"
    assert int(unit["Service"]["TimeoutStopSec"]) > 3 * 40 + 5 * 10  # every stopwaitsecs in turn
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd): the unit is only parsed")
    installed = tmp_path / "sottovoce.service"
    installed.write_text(
        UNIT.read_text().replace("@SOTTOVOCE@", str(Path(sys.executable).parent / "sottovoce"))
    )
    (tmp_path / "xdg").mkdir(mode=0o700)
    for scope in ([], ["--user"]):
        out = subprocess.run(
            ["systemd-analyze", *scope, "verify", str(installed)],
            env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "xdg")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0 and not out.stdout + out.stderr, out.stdout + out.stderr


# --- log reading ------------------------------------------------------------------------------


def record(when: str, actor: str, event: str, **data: Any) -> str:
    return json.dumps({"actor": actor, **data, "event": event, "level": "info", "timestamp": when})


def test_logs_render_merge_and_tail(tmp_path: Path) -> None:
    line = record("2026-11-29T10:00:00.250000Z", "ingest", "planned", spans=3, path="/a b", ok=True)
    shown = logview.render(line)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.250 info +ingest +planned spans=3 path=\"/a b\" ok=true", shown
    )
    assert logview.render("Traceback (most recent call last):") == "Traceback (most recent call last):"
    a = [
        record("2026-11-29T10:00:01Z", "a", "one"),
        "not json, after one",
        record("2026-11-29T10:00:03Z", "a", "three"),
    ]
    b = [record("2026-11-29T10:00:02Z", "b", "two")]
    order = [line.text for line in logview.merged([a, b])]
    assert order == [a[0], a[1], b[0], a[2]]
    log = tmp_path / "x.log"
    log.with_name("x.log.1").write_text("".join(f"old {i}\n" for i in range(3)))
    log.write_text("".join(f"new {i}\n" for i in range(100_000)))
    assert logview.tail(log, 2) == ["new 99998", "new 99999"]
    log.write_text("new 0\n")
    assert logview.tail_rotated(log, 3) == ["old 1", "old 2", "new 0"]


def test_logs_follow_across_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("before\n")
    follower = logview.Follower(log)
    try:
        assert follower.read() == []
        with log.open("a") as out:
            out.write("one\ntw")
        assert follower.read() == ["one"]
        with log.open("a") as out:
            out.write("o\nlast of the old file\n")
        log.rename(tmp_path / "x.log.1")  # supervisord's rotation: rename, then a new file
        assert follower.read() == ["two", "last of the old file"]
        log.write_text("first of the new file\n")
        assert follower.read() == ["first of the new file"]
        log.write_text("")  # truncated in place
        assert follower.read() == []
        log.write_text("after truncation\n")
        assert follower.read() == ["after truncation"]
    finally:
        follower.close()
