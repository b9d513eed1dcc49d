"""The background stack: `sottovoce up`, `status`, `logs`, `restart`, `down` with the real
supervisord running deploy/supervisord.conf and every actor on the real model; the config
files themselves (supervisord's and the systemd unit); log reading.

Each stack lives in a short private temp dir (runtime, data, HOME and XDG dirs), and every
test ends with `down` and, should that fail, SIGKILL for whatever still runs with its
runtime dir, so no supervisord is left behind.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from actors.cli.supervise import SOCKET_NAME
from protocol.vocab import ROSTER
from tests.support.harness import REPO, Stack, as_in_a_terminal, poll
from tests.support.rig import Display, Microphone, need_binaries
from tests.support.supervised import DOWN_TIMEOUT_S, alive, background, headless, our_processes, sockets

UNIT = REPO / "deploy" / "systemd" / "sottovoce.service"
EXIT_TIMEOUT_S = 30.0


# --- helpers ----------------------------------------------------------------------------------


def cli_json(stack: Stack, *args: str, code: int = 0, timeout_s: float = 120.0) -> dict[str, Any]:
    out = stack.cli(*args, "--json", timeout_s=timeout_s)
    assert out.returncode == code, f"{args}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return dict(json.loads(out.stdout))


def actors_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in data["actors"]}


def pump(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def drain(lines: queue.Queue[str], into: list[str]) -> list[str]:
    """Move what the pump has read so far into `into`; returns `into`."""
    while True:
        try:
            into.append(lines.get_nowait())
        except queue.Empty:
            return into


def supervisord_pid(stack: Stack) -> int:
    return int((stack.cfg.runtime_dir / "supervisord.pid").read_text())


# --- the real stack ---------------------------------------------------------------------------


@pytest.mark.stack
def test_up_on_a_desktop_every_actor_is_healthy_and_down_leaves_nothing(utterance: tuple[Path, str]) -> None:
    need_binaries("Xvfb", "xdotool", "xclip", "pulseaudio", "pactl")
    wav, sentence = utterance
    mic_root = Path(tempfile.mkdtemp(prefix="mic", dir="/tmp"))
    display = Display().start()
    mic = Microphone(mic_root).start()
    try:
        with background(env={**display.env, **mic.env, "WAYLAND_DISPLAY": None}) as stack:
            up = cli_json(stack, "up")
            actors = actors_of(up)
            assert list(actors) == list(ROSTER)
            for name, actor in actors.items():
                assert actor["state"] == "RUNNING" and actor["up"], actor
                assert actor["health"] == "ok", f"{name}: {actor['detail']}"
            said = cli_json(stack, "say", str(wav))
            assert said["text"].strip(" .").lower() == sentence.strip(" .").lower()
            status = cli_json(stack, "status")
            assert status["ok"] and actors_of(status).keys() == actors.keys()
            pids = [a["pid"] for a in status["actors"]]
            assert [a["pid"] for a in up["actors"]] == pids
            # supervisord's file is each actor's one log: JSON lines, each event once
            assert len(stack.log_events("scheduler", "started")) == 1
            assert len(stack.log_events("transcriber", "model_loaded")) == 1
            down = stack.cli("down", timeout_s=DOWN_TIMEOUT_S)
            assert down.returncode == 0, down.stderr
            assert "stopped supervisord and 8 actors" in down.stdout
            assert not [p for p in pids if alive(p)]
            assert our_processes(stack.cfg.runtime_dir) == []
            assert sockets(stack.cfg.runtime_dir) == []
            again = stack.cli("down")
            assert again.returncode == 0 and "not running" in again.stdout
    finally:
        mic.stop()
        display.stop()
        shutil.rmtree(mic_root, ignore_errors=True)


@pytest.mark.stack
def test_up_headless_degrades_hotkey_audio_and_deliver_and_transcribes(utterance: tuple[Path, str]) -> None:
    wav, sentence = utterance
    with background(env=headless()) as stack:
        up = stack.cli("up", timeout_s=120)
        assert up.returncode == 0, up.stderr
        assert "degraded (they run, and say why): audio, hotkey, deliver" in up.stderr
        actors = actors_of(cli_json(stack, "status"))
        assert "DISPLAY is not set" in actors["hotkey"]["detail"]
        assert "microphone" in actors["audio"]["detail"]
        assert "no display" in actors["deliver"]["detail"]
        for name, actor in actors.items():
            assert actor["up"], actor
            assert (actor["health"] == "degraded") == (name in ("audio", "hotkey", "deliver")), actor
        out_dir = stack.root / "out"
        done = stack.cli("transcribe", str(wav), "--wait", "--output-dir", str(out_dir), timeout_s=120)
        assert done.returncode == 0, done.stderr
        text = (out_dir / f"{wav.stem}.txt").read_text()
        assert text.strip(" .\n").lower() == sentence.strip(" .").lower()


@pytest.mark.stack
def test_supervisord_killed_takes_every_actor_with_it_and_up_works_again() -> None:
    with background(env=headless()) as stack:
        assert stack.cli("up", timeout_s=120).returncode == 0
        pids = [a["pid"] for a in cli_json(stack, "status")["actors"]]
        os.kill(supervisord_pid(stack), signal.SIGKILL)
        poll(lambda: not any(alive(p) for p in pids), EXIT_TIMEOUT_S, what="every actor to exit")
        assert (stack.cfg.runtime_dir / SOCKET_NAME).exists()  # stale, with the pidfile
        status = stack.cli("status")
        assert status.returncode == 1 and "not running" in status.stdout
        again = cli_json(stack, "up")
        assert again["ok"] and not set(pids) & {a["pid"] for a in again["actors"]}
        assert stack.cli("down").returncode == 0
        leftover = socket.socket(socket.AF_UNIX)  # as a killed actor leaves its socket file
        leftover.bind(str(stack.cfg.runtime_dir / "ptt"))
        leftover.close()
        down = stack.cli("down")
        assert down.returncode == 0 and down.stdout.strip() == "not running; removed leftover sockets: ptt"
        assert sockets(stack.cfg.runtime_dir) == []


@pytest.mark.stack
def test_restart_gives_a_new_pid_and_logs_follow_it() -> None:
    with background(env=headless()) as stack:
        assert stack.cli("up", timeout_s=120).returncode == 0
        old = actors_of(cli_json(stack, "status"))
        again = stack.cli("up", timeout_s=120)
        assert again.returncode == 0 and "already running" in again.stderr
        assert "transcriber  RUNNING" in again.stdout
        restarted = cli_json(stack, "restart", "transcriber")["restarted"]["transcriber"]
        assert restarted != old["transcriber"]["pid"]
        now = actors_of(cli_json(stack, "status"))
        assert now["transcriber"]["pid"] == restarted and now["transcriber"]["up"]
        assert now["scheduler"]["pid"] == old["scheduler"]["pid"]

        shown = stack.cli("logs", "transcriber", "-n", "5")
        assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 5
        assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} info +transcriber +\w+", shown.stdout, re.M)
        raw = stack.cli("logs", "scheduler", "-n", "3", "--raw")
        assert all(json.loads(line)["actor"] == "scheduler" for line in raw.stdout.splitlines())

        follow = subprocess.Popen(
            [sys.executable, "-m", "actors.cli", "logs", "-f", "-n", "1"],
            env=stack.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=as_in_a_terminal,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=pump, args=(follow.stdout, lines), daemon=True).start()
        seen: list[str] = []
        try:
            seen.append(lines.get(timeout=30))  # the one old line: it follows now
            pid = cli_json(stack, "restart", "deliver")["restarted"]["deliver"]
            try:
                poll(
                    lambda: any(
                        "worker_ready" in line and "deliver@" in line and f":{pid} " in line
                        for line in drain(lines, seen)
                    ),
                    30,
                )
            except TimeoutError:
                pytest.fail(f"logs -f never showed deliver {pid} registering; its last lines: {seen[-15:]}")
        finally:
            follow.send_signal(signal.SIGINT)  # Ctrl+C
            try:
                follow.wait(timeout=10)
            except subprocess.TimeoutExpired:
                follow.kill()
                pytest.fail(f"logs -f still ran 10 s after SIGINT; it printed {len(seen)} lines")
        assert follow.returncode == 0, follow.stderr.read() if follow.stderr else ""


@pytest.mark.stack
def test_an_actor_that_cannot_start_is_named_with_its_reason() -> None:
    with background(env=headless()) as stack:
        up = stack.cli("--set", "hotkey.mode=latch", "--set", "supervisor.up_timeout_s=6", "up", timeout_s=60)
        assert up.returncode == 1
        assert re.search(r"hotkey is not up: (BACKOFF|STARTING|EXITED|FATAL)", up.stderr), up.stderr
        assert "hotkey mode must be hold or toggle" in up.stderr  # from its log
        assert "sottovoce down" in up.stderr
        assert [line for line in up.stderr.splitlines() if " is not up: " in line] == [
            line for line in up.stderr.splitlines() if line.startswith("hotkey is not up")
        ]
        status = cli_json(stack, "status", code=1)  # left running for inspection
        assert not actors_of(status)["hotkey"]["up"] and actors_of(status)["scheduler"]["up"]


@pytest.mark.stack
def test_up_and_down_leave_a_foreground_stack_alone() -> None:
    with background(env=headless()) as stack:
        stack.start("scheduler")  # as `sottovoce run` would
        stack.wait_ready(roles=())
        up = stack.cli("up", timeout_s=60)
        assert up.returncode == 1 and "foreground stack" in up.stderr
        down = stack.cli("down")
        assert down.returncode == 1 and "foreground stack" in down.stderr
        status = stack.cli("status")  # what answers, without supervisord: the scheduler alone
        assert status.returncode == 1 and "supervisord is not running" in status.stdout
        assert re.search(r"^scheduler +- +\d+ .* ok$", status.stdout, re.M), status.stdout
        assert re.search(r"^transcriber +- +- .* not connected$", status.stdout, re.M), status.stdout
        assert stack.procs["scheduler"].poll() is None
        assert not (stack.cfg.runtime_dir / SOCKET_NAME).exists()


@pytest.mark.stack
def test_nothing_running() -> None:
    with background(env=headless()) as stack:
        status = stack.cli("status")
        assert status.returncode == 1 and status.stdout.strip() == "not running"
        down = stack.cli("down")
        assert down.returncode == 0 and down.stdout.strip() == "not running"
        logs = stack.cli("logs", "scheduler")
        assert logs.returncode == 1 and "no log for scheduler" in logs.stderr
