"""Text delivery for push-to-talk: put a transcript on the clipboard, type it, or paste it.

The deliver actor calls this; nothing here owns a socket. The clipboard is reached through the
desktop's own command-line tools, chosen from the environment:

- `wl-copy` / `wl-paste` (package wl-clipboard) when WAYLAND_DISPLAY is set;
- `xclip`, else `xsel`, when DISPLAY is set (X11, or XWayland applications).

Each copy tool forks a process that keeps serving the selection after our call returns. That
process inherits our file descriptors, so `set()` gives it no pipe to hold open (stdout goes to
/dev/null, stderr to an unlinked temp file), reaps the tool's parent process, and starts it in a
new session so that signalling our process group does not take the clipboard with it.

Typing goes through pynput. Its X11 controller sends characters as synthetic XSendEvent events,
which some applications ignore (xterm, games, VNC servers) and keyboard hooks never see, so
`Typist` sends every character the keyboard layout can produce as a real XTEST key press and
leaves the rest (e.g. "é" on a US layout) to pynput. `paste()` copes with any text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

COPY_TIMEOUT_S = 2.0
CONFIRM_TIMEOUT_S = 1.0
PASTE_TIMEOUT_S = 1.0
TOOLS = ("wl-copy", "xclip", "xsel")
PACKAGES = {"wl-copy": "wl-clipboard", "xclip": "xclip", "xsel": "xsel"}
DISPLAY_VARIABLES = {"wl-copy": "WAYLAND_DISPLAY", "xclip": "DISPLAY", "xsel": "DISPLAY"}
COPY_ARGS: dict[str, tuple[str, ...]] = {
    # An explicit type: otherwise wl-copy guesses one with xdg-mime (~90 ms instead of ~8 ms).
    "wl-copy": ("--type", "text/plain;charset=utf-8"),
    "xclip": ("-selection", "clipboard", "-in", "-target", "UTF8_STRING"),
    "xsel": ("--clipboard", "--input"),
}
XCLIP_TEXT_TARGETS = (
    ("UTF8_STRING", "utf-8"),
    ("text/plain;charset=utf-8", "utf-8"),
    ("text/plain", "utf-8"),
    ("STRING", "latin-1"),
)
# What wl-paste and xclip say when the clipboard is unowned or holds no text: not an error.
NO_TEXT_MESSAGES = ("No selection", "Nothing is copied", "No suitable type", "not available")
PASTE_CHORDS = ("ctrl+v", "shift+insert")


class ClipboardError(RuntimeError):
    """The clipboard cannot be used; the message says what is missing and how to fix it."""


class Clipboard:
    """The desktop clipboard (the CLIPBOARD selection on X11), through wl-clipboard, xclip or xsel."""

    def __init__(self, env: Mapping[str, str] | None = None, tool: str = "auto") -> None:
        """Choose the tool now, so a missing display or tool is reported at startup.

        `tool` is "auto" or one of TOOLS; `env` defaults to this process's environment.
        """
        self._env = dict(os.environ if env is None else env)
        self._name = self._choose(tool)
        self._paste_tool = "wl-paste" if self._name == "wl-copy" else self._name
        self._copy_path = self._find(self._name)
        self._paste_path = self._find(self._paste_tool)

    @property
    def name(self) -> str:
        """The copy tool in use: "wl-copy", "xclip" or "xsel"."""
        return self._name

    def set(self, text: str) -> None:
        """Own the clipboard with `text` (UTF-8); returns once it is served, in about 10 ms."""
        with tempfile.TemporaryFile() as stderr:
            try:
                done = subprocess.run(
                    [self._copy_path, *COPY_ARGS[self._name]],
                    input=text.encode("utf-8"),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=self._env,
                    timeout=COPY_TIMEOUT_S,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as exc:
                raise ClipboardError(f"{self._name} did not return within {COPY_TIMEOUT_S} s") from exc
            except OSError as exc:
                raise ClipboardError(f"cannot run {self._name}: {exc}") from exc
            if done.returncode != 0:
                stderr.seek(0)
                message = stderr.read().decode("utf-8", "replace").strip()
                raise ClipboardError(f"{self._name} failed (exit {done.returncode}): {message}")
        # xsel forks before it takes the selection, so its exit does not mean the text is served yet.
        # wl-copy owns the selection before its parent exits, and reading it back with wl-paste
        # would steal focus on GNOME (wl-clipboard issue 90): no read-back there.
        if self._name == "wl-copy":
            return
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while (held := self.get()) != (text or None):
            if time.monotonic() > deadline:
                raise ClipboardError(f"{self._name} exited but the clipboard still holds {held!r:.80}")
            time.sleep(0.005)

    def get(self) -> str | None:
        """The clipboard's text, or None when it is unowned, empty, or holds no text."""
        if self._name == "xclip":
            return self._xclip_text()
        args = ["--no-newline", "--type", "text"] if self._name == "wl-copy" else ["--clipboard", "--output"]
        return _text(self._paste(args), "utf-8")

    def _xclip_text(self) -> str | None:
        """Ask which targets the owner offers first: some owners (xclip itself) answer any target."""
        out = ["-selection", "clipboard", "-out", "-target"]
        offered = (self._paste([*out, "TARGETS"]) or b"").decode("latin-1").split()
        for target, encoding in XCLIP_TEXT_TARGETS:
            if target in offered:
                return _text(self._paste([*out, target]), encoding)
        return None

    def _paste(self, args: Sequence[str]) -> bytes | None:
        """Run the paste tool: its stdout, or None when it reports that there is no text."""
        try:
            done = subprocess.run(
                [self._paste_path, *args], capture_output=True, env=self._env, timeout=PASTE_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            raise ClipboardError(
                f"{self._paste_tool} did not answer within {PASTE_TIMEOUT_S} s (clipboard owner hung?)"
            ) from exc
        except OSError as exc:
            raise ClipboardError(f"cannot run {self._paste_tool}: {exc}") from exc
        if done.returncode == 0:
            return done.stdout
        message = done.stderr.decode("utf-8", "replace").strip()
        if any(m in message for m in NO_TEXT_MESSAGES):
            return None
        raise ClipboardError(f"{self._paste_tool} failed (exit {done.returncode}): {message}")

    def _choose(self, tool: str) -> str:
        """The tool to use, from the config value and the environment."""
        wayland, x11 = bool(self._env.get("WAYLAND_DISPLAY")), bool(self._env.get("DISPLAY"))
        if tool != "auto":
            if tool not in TOOLS:
                raise ClipboardError(f"unknown clipboard tool {tool!r}: choose auto, {', '.join(TOOLS)}")
            if not self._env.get(DISPLAY_VARIABLES[tool]):
                raise ClipboardError(f"{tool} needs {DISPLAY_VARIABLES[tool]}, which is unset")
            return tool
        if not wayland and not x11:
            raise ClipboardError("no display: DISPLAY and WAYLAND_DISPLAY are unset")
        if wayland and self._which("wl-copy") and self._which("wl-paste"):
            return "wl-copy"
        if x11:
            for candidate in ("xclip", "xsel"):
                if self._which(candidate):
                    return candidate
        raise ClipboardError("no clipboard tool: install xclip or xsel (X11) or wl-clipboard (Wayland)")

    def _which(self, program: str) -> str | None:
        return shutil.which(program, path=self._env.get("PATH", os.defpath))

    def _find(self, program: str) -> str:
        path = self._which(program)
        if path is None:
            raise ClipboardError(
                f"clipboard tool {program} not found on PATH: install the {PACKAGES[self._name]} package"
            )
        return path


def _text(data: bytes | None, encoding: str) -> str | None:
    """Decoded text; None for no data or empty data (xsel cannot tell empty from unowned)."""
    return data.decode(encoding, "replace") if data else None


class Typist:
    """Types or pastes text at the cursor with pynput's keyboard controller.

    Keys go out as if typed on the keyboard: modifiers still held (the push-to-talk hotkey's) and
    Caps Lock apply to them, so type after the hotkey is released.
    """

    def __init__(self, paste_chord: str = "ctrl+v") -> None:
        """`paste_chord`: "ctrl+v", or "shift+insert" for terminals (xterm pastes PRIMARY with it)."""
        if paste_chord not in PASTE_CHORDS:
            raise ValueError(f"paste_chord must be one of {', '.join(PASTE_CHORDS)}, not {paste_chord!r}")
        self.paste_chord = paste_chord
        self._controller: Any = None

    def type(self, text: str) -> None:
        """Type `text` key by key into the focused window."""
        for char in text:
            self._tap(char)

    def paste(
        self,
        text: str,
        clipboard: Clipboard,
        restore_after_s: float,
        on_pasted: Callable[[], None] | None = None,
    ) -> None:
        """Paste `text` through the clipboard, then put back what it held before.

        The target application reads the clipboard some time after the key chord, so the previous
        text is restored only after `restore_after_s`. If the clipboard held no text, `text` stays.
        `on_pasted` is called right after the chord, before that wait.
        """
        previous = clipboard.get()
        clipboard.set(text)
        keyboard = self._keyboard()
        from pynput.keyboard import Key

        modifier, key = (Key.ctrl, "v") if self.paste_chord == "ctrl+v" else (Key.shift, Key.insert)
        try:
            with keyboard.pressed(modifier):
                self._tap(key)
            if on_pasted is not None:
                on_pasted()
        finally:
            if previous is not None:
                time.sleep(restore_after_s)
                clipboard.set(previous)

    def _tap(self, key: Any) -> None:
        """Press and release `key` (a character or a pynput Key), as a real key event when possible."""
        keyboard = self._keyboard()
        if not isinstance(key, str):
            keyboard.tap(key)
            return
        from pynput.keyboard import Key, KeyCode

        mapping = getattr(keyboard, "keyboard_mapping", None)  # only the X11 controller has one
        entry = mapping.get(ord(key)) if mapping is not None and " " <= key <= "~" else None
        if entry is None or entry[1] & ~1:  # not on the layout, or needs AltGr: pynput's own way
            keyboard.type(key)
        elif entry[1] & 1:  # on the layout with Shift; a KeyCode with a vk goes out through XTEST
            with keyboard.pressed(Key.shift):
                keyboard.tap(KeyCode.from_vk(ord(key)))
        else:
            keyboard.tap(KeyCode.from_vk(ord(key)))

    def _keyboard(self) -> Any:
        if self._controller is None:
            try:  # imported late: on X11 pynput connects to DISPLAY on import
                from pynput import keyboard

                self._controller = keyboard.Controller()
            except Exception as exc:  # ImportError without a display, Xlib errors with a bad one
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ClipboardError(f"cannot send keys: no keyboard backend for pynput ({reason})") from exc
        return self._controller
