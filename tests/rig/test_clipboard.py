"""actors/ptt/clipboard.py against a real X server (Xvfb), real xclip/xsel, a real Wayland compositor
(weston nested in Xvfb, when installed) and a real pynput keyboard Listener in another process."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.ptt.clipboard import Clipboard, ClipboardError, Typist
from tests.support.keylistener import KeyListener

pytestmark = pytest.mark.rig

TEXT = "naïve café — 東京"
START_TIMEOUT_S = 10.0
X_TOOLS = ("xclip", "xsel")
# -r: no key autorepeat. -noreset: without it the server resets whenever its last client leaves
# (our readiness probe, the first xclip) and refuses connections meanwhile: "Can't open display".
XVFB_ARGS = ("-screen", "0", "1024x768x24", "-nolisten", "tcp", "-r", "-noreset")


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb xclip xsel wl-clipboard weston)")


def poll(condition: Callable[[], Any], what: str, timeout_s: float = START_TIMEOUT_S) -> Any:
    """The first truthy value of `condition()`, polled until a deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def display(tmp_path: Path) -> Iterator[str]:
    """A fresh Xvfb (so a fresh, unowned clipboard) on a free display number."""
    need("Xvfb", "xclip")
    read_fd, write_fd = os.pipe()
    with open(tmp_path / "xvfb.log", "wb") as log:
        server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), *XVFB_ARGS],
            pass_fds=(write_fd,),
            stdout=log,
            stderr=log,
        )
    os.close(write_fd)  # read_fd stays open: Xvfb dies if it cannot write the number (again, at a reset)
    try:
        number = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_fd, 16) if ready else b""
            assert chunk, f"Xvfb gave no display number: {(tmp_path / 'xvfb.log').read_text()}"
            number += chunk
        poll(lambda: _accepts(f"/tmp/.X11-unix/X{int(number)}"), "Xvfb to accept connections")
        yield f":{int(number)}"
        assert server.poll() is None, f"Xvfb :{int(number)} exited during the test ({server.returncode})"
    finally:
        os.close(read_fd)
        stop(server)


def _accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


@pytest.fixture
def x_env(display: str) -> dict[str, str]:
    """An environment with DISPLAY only: no WAYLAND_DISPLAY leaks in from the caller."""
    return {"DISPLAY": display, "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


@pytest.fixture
def wayland_env(x_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """weston nested in the Xvfb (its x11 backend gives it a seat, which wl-copy needs)."""
    need("weston", "wl-copy", "wl-paste")
    runtime = tempfile.mkdtemp(prefix="wl")  # short: the socket path must fit in 108 bytes
    env = {**x_env, "XDG_RUNTIME_DIR": runtime, "WAYLAND_DISPLAY": "wl"}
    with open(Path(runtime) / "weston.log", "wb") as log:
        compositor = subprocess.Popen(
            ["weston", "--backend=x11-backend.so", "--socket=wl", "--idle-time=0", "--no-config"],
            env=env,
            stdout=log,
            stderr=log,
        )

    def ready() -> bool:
        done = subprocess.run(["wl-paste", "--list-types"], env=env, capture_output=True, timeout=5)
        return b"Failed to connect" not in done.stderr and b"Missing a seat" not in done.stderr

    try:
        poll(ready, "weston to serve Wayland clients")
        yield env
    finally:
        stop(compositor)
        shutil.rmtree(runtime, ignore_errors=True)


def read_clipboard(env: dict[str, str]) -> str:
    """The CLIPBOARD selection as xclip reads it: an outside view, not our own get()."""
    cmd = ["xclip", "-selection", "clipboard", "-out"]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=5, check=True).stdout.decode()


def child_commands() -> list[str]:
    """Names of this process's children, zombies included."""
    names = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):  # exited meanwhile
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
    return names


@pytest.mark.parametrize("tool", X_TOOLS)
def test_set_get_round_trip_keeps_non_ascii_text(x_env: dict[str, str], tool: str) -> None:
    need(tool)
    clipboard = Clipboard(x_env, tool)
    clipboard.set(TEXT)
    assert clipboard.get() == TEXT
    assert read_clipboard(x_env) == TEXT
    clipboard.set("second")
    assert clipboard.get() == "second"


@pytest.mark.parametrize("tool", X_TOOLS)
def test_get_on_an_unowned_clipboard_is_none(x_env: dict[str, str], tool: str) -> None:
    need(tool)
    assert Clipboard(x_env, tool).get() is None


@pytest.mark.parametrize("tool", X_TOOLS)
def test_get_is_none_when_the_clipboard_holds_no_text(
    x_env: dict[str, str], tool: str, tmp_path: Path
) -> None:
    need(tool)
    image = tmp_path / "pixel.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nnot really an image")
    cmd = ["xclip", "-selection", "clipboard", "-target", "image/png", "-in", str(image)]
    subprocess.run(cmd, env=x_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    assert Clipboard(x_env, tool).get() is None


@pytest.mark.parametrize("tool", X_TOOLS)
def test_set_returns_promptly_and_leaves_no_child(x_env: dict[str, str], tool: str) -> None:
    need(tool)
    clipboard = Clipboard(x_env, tool)
    started = time.monotonic()
    clipboard.set(TEXT)
    took_s = time.monotonic() - started
    assert took_s < 0.5, f"set() took {took_s:.3f} s"
    assert tool not in child_commands()
    assert read_clipboard(x_env) == TEXT  # the forked owner still serves the text


def test_auto_prefers_xclip_and_falls_back_to_xsel(x_env: dict[str, str], tmp_path: Path) -> None:
    need("xsel")
    assert Clipboard(x_env).name == "xclip"
    only_xsel = tmp_path / "bin"
    only_xsel.mkdir()
    (only_xsel / "xsel").symlink_to(shutil.which("xsel") or "")
    clipboard = Clipboard({**x_env, "PATH": str(only_xsel)})
    assert clipboard.name == "xsel"
    clipboard.set(TEXT)
    assert read_clipboard(x_env) == TEXT


def test_no_display_is_an_error_that_says_so() -> None:
    with pytest.raises(ClipboardError, match="DISPLAY and WAYLAND_DISPLAY are unset"):
        Clipboard({"PATH": os.environ["PATH"]})


def test_a_missing_tool_is_named(x_env: dict[str, str]) -> None:
    with pytest.raises(ClipboardError, match="xclip not found on PATH"):
        Clipboard({**x_env, "PATH": ""}, "xclip")
    with pytest.raises(ClipboardError, match="wl-clipboard package"):
        Clipboard({**x_env, "PATH": "", "WAYLAND_DISPLAY": "wayland-0"}, "wl-copy")
    with pytest.raises(ClipboardError, match="no clipboard tool: install xclip or xsel"):
        Clipboard({**x_env, "PATH": ""})
    with pytest.raises(ClipboardError, match="unknown clipboard tool"):
        Clipboard(x_env, "pbcopy")


@pytest.mark.parametrize("tool", X_TOOLS)
def test_a_failing_tool_reports_its_stderr(x_env: dict[str, str], tool: str) -> None:
    need(tool)
    clipboard = Clipboard({**x_env, "DISPLAY": ":999"}, tool)
    with pytest.raises(ClipboardError, match="Can't open display"):
        clipboard.set("x")
    with pytest.raises(ClipboardError, match="Can't open display"):
        clipboard.get()


def test_wayland_round_trip(wayland_env: dict[str, str]) -> None:
    clipboard = Clipboard(wayland_env)
    assert clipboard.name == "wl-copy"
    assert clipboard.get() is None
    started = time.monotonic()
    clipboard.set("line one\n" + TEXT)
    assert time.monotonic() - started < 0.5
    assert "wl-copy" not in child_commands()
    assert clipboard.get() == "line one\n" + TEXT


@pytest.fixture
def listener(x_env: dict[str, str], tmp_path: Path) -> Iterator[KeyListener]:
    keys = KeyListener(x_env, tmp_path / "listener.py")
    yield keys
    keys.close()


@pytest.fixture
def typing_env(x_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """x_env, also set in this process: pynput's controller connects to $DISPLAY."""
    monkeypatch.setenv("DISPLAY", x_env["DISPLAY"])
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return x_env


@pytest.mark.parametrize("text", ["hello world 42", "Hello, World! (42)"])
def test_type_produces_real_key_presses(typing_env: dict[str, str], listener: KeyListener, text: str) -> None:
    Typist().type(text)
    events = listener.until(lambda e: e.get("press") == text[-1])
    presses = [e["press"] for e in events if "press" in e]
    typed = "".join(" " if p == "space" else p for p in presses if len(p) == 1 or p == "space")
    assert typed == text


@pytest.mark.parametrize(
    ("chord", "keys"), [("ctrl+v", ["ctrl", "v"]), ("shift+insert", ["shift", "insert"])]
)
def test_paste_presses_the_chord_then_restores_the_clipboard(
    typing_env: dict[str, str], listener: KeyListener, chord: str, keys: list[str]
) -> None:
    clipboard = Clipboard(typing_env)
    clipboard.set("what the user had")
    Typist(chord).paste(TEXT, clipboard, restore_after_s=0.5)
    events = listener.until(lambda e: "pasted" in e)
    assert [e["press"] for e in events if "press" in e] == keys
    assert events[-1]["pasted"] == TEXT  # what the application got when it pasted
    assert clipboard.get() == "what the user had"


def test_paste_leaves_the_text_when_the_clipboard_was_empty(typing_env: dict[str, str]) -> None:
    clipboard = Clipboard(typing_env)
    Typist().paste(TEXT, clipboard, restore_after_s=5.0)
    assert clipboard.get() == TEXT


def test_typing_without_a_display_is_an_error_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ClipboardError, match="cannot send keys"):
        Typist().type("x")
