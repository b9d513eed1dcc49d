"""Hotkey actor: a global push-to-talk key (pynput), turned into PTT requests to the audio actor.

pynput's listener runs in its own thread and forwards each press and release, stamped with
`time.time()`, through an inproc pipe; the main loop feeds them to the HotkeyMachine
(actors/ptt/keys.py) and sends the resulting actions to the `ptt` endpoint. Backends: `xorg`
(X11 and XWayland; needs DISPLAY), `uinput` (Wayland; needs read access to /dev/input), or
`auto`. Where none can run the actor stays up with degraded health and says why once;
`sottovoce ptt toggle` bound to a desktop shortcut does the same job.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import zmq

from actors.ptt.keys import Action, HotkeyMachine, parse_combo
from actors.runtime import process
from actors.runtime.config import Config
from actors.runtime.reactor import IDLE_POLL_MS, Member
from protocol import ProtocolError, decode, encode
from protocol.control import Reply
from protocol.ptt import Ptt
from protocol.vocab import Role

WAYLAND_NOTE = (
    "Wayland session: the X11 hotkey hears keys only while an X11 (XWayland) window has focus; "
    "bind `sottovoce ptt toggle` to a compositor shortcut, or set hotkey.backend to xorg or uinput"
)
LISTENER_READY_S = 3.0
PENDING_MAX_S = 2.0
PENDING_POLL_MS = 20
RETRY_MIN_S = 5.0
RETRY_MAX_S = 60.0
BACKENDS = ("auto", "xorg", "uinput")


class BackendUnavailable(RuntimeError):
    """No keyboard backend can run here; the message says why and what to do instead."""


def choose_backend(wanted: str, env: dict[str, str] | os._Environ[str]) -> str:
    """The pynput keyboard backend to use, or BackendUnavailable."""
    if wanted not in BACKENDS:
        raise BackendUnavailable(f"hotkey.backend must be one of {', '.join(BACKENDS)}, not {wanted!r}")
    input_ok = any(os.access(dev, os.R_OK) for dev in Path("/dev/input").glob("event*"))
    if wanted == "xorg" or (wanted == "auto" and env.get("DISPLAY")):
        if not env.get("DISPLAY"):
            raise BackendUnavailable("hotkey.backend is xorg but DISPLAY is not set")
        return "xorg"
    if wanted == "uinput" or (wanted == "auto" and input_ok):
        if not input_ok:
            raise BackendUnavailable(
                "hotkey.backend uinput needs read access to the keyboard devices /dev/input/event* "
                "(and pynput runs dumpkeys from the kbd package)"
            )
        return "uinput"
    raise BackendUnavailable(
        "no keyboard backend: DISPLAY is not set and /dev/input is not readable; "
        "bind `sottovoce ptt toggle` to a desktop shortcut instead"
    )


def key_name(key: Any) -> str:
    """pynput Key or KeyCode -> the names actors/ptt/keys.py understands."""
    name = getattr(key, "name", None)
    if name:
        return str(name)
    char = getattr(key, "char", None)
    if char and char.isprintable():
        return str(char).lower()
    return f"vk{getattr(key, 'vk', '?')}"


class HotkeyActor(Member):
    ROLE = Role.HOTKEY

    def __init__(self, cfg: Config, log: Any) -> None:
        super().__init__(cfg, log)
        self.machine = HotkeyMachine(
            parse_combo(cfg.get("hotkey.key")),
            mode=cfg.get("hotkey.mode"),
            min_hold_s=cfg.get("hotkey.min_hold_ms") / 1000,
        )
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.ptt = self.ctx.socket(zmq.DEALER)
        self.ptt.setsockopt(zmq.LINGER, 0)
        self.ptt.setsockopt(zmq.IMMEDIATE, 1)  # never queue a key for an audio actor not there
        self.ptt.connect(cfg.endpoint("ptt"))
        self._pipe_addr = f"inproc://hotkey-{id(self)}"
        self.pipe = self.ctx.socket(zmq.PULL)
        self.pipe.bind(self._pipe_addr)
        self.listener: Any = None
        self.retry_at: float | None = None
        self.retry_s = RETRY_MIN_S
        self.warned = False
        self.sent = 0
        self.pending: deque[Action] = deque()

    # --- the keyboard ------------------------------------------------------------------

    def start_listener(self) -> None:
        """Start pynput's listener, or go degraded (warning once) and retry later."""
        self.link.set_health(*self._start_listener())

    def _start_listener(self) -> tuple[str, str]:
        try:
            backend = choose_backend(self.cfg.get("hotkey.backend"), os.environ)
            os.environ["PYNPUT_BACKEND_KEYBOARD"] = backend
            if backend == "uinput":
                os.environ.setdefault("PYNPUT_BACKEND_MOUSE", "dummy")
            from pynput import keyboard  # DISPLAY and the backend must be set before this import

            press, release = self._forwarders()
            listener = keyboard.Listener(on_press=press, on_release=release)
            listener.start()
            deadline = time.monotonic() + LISTENER_READY_S
            while not listener._ready and listener.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)  # pynput's wait() has no timeout, and uinput never signals ready
            if not listener.is_alive():
                listener.join()  # re-raises what stopped the listener thread
                raise BackendUnavailable("the keyboard listener stopped at once")
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if not self.warned:
                self.log.warning("hotkey_unavailable", reason=reason, retry_in_s=self.retry_s)
                self.warned = True
            self.retry_at = time.monotonic() + self.retry_s
            self.retry_s = min(self.retry_s * 2, RETRY_MAX_S)
            return ("degraded", f"no global hotkey: {reason}")
        self.listener, self.retry_at = listener, None
        self.log.info("listening", backend=backend, key=self.cfg.get("hotkey.key"), mode=self.machine.mode)
        if (
            backend == "xorg"
            and os.environ.get("WAYLAND_DISPLAY")
            and self.cfg.get("hotkey.backend") == "auto"
        ):
            return ("degraded", WAYLAND_NOTE)
        return ("ok", "")

    def check_listener(self) -> None:
        """A listener thread that ended (X connection lost, device gone) is noticed and retried."""
        if self.listener is not None and not self.listener.is_alive():
            self.listener = None
            self.warned = False
            self.log.warning("listener_stopped")
            self.link.set_health("degraded", "the keyboard listener stopped; retrying")
            self.retry_at = time.monotonic() + self.retry_s

    def _forwarders(self) -> tuple[Any, Any]:
        """pynput callbacks that send (kind, key, time) to the main loop, in order: both run in
        the listener thread and share one PUSH socket (two would be read round-robin)."""
        out: list[zmq.Socket] = []

        def forward(kind: str, key: Any) -> None:
            at = time.time()
            if not out:  # created in the listener thread, used only there
                sock = self.ctx.socket(zmq.PUSH)
                sock.connect(self._pipe_addr)
                out.append(sock)
            out[0].send_json([kind, key_name(key), at])

        return (lambda key: forward("press", key)), (lambda key: forward("release", key))

    # --- the loop ----------------------------------------------------------------------

    def send_pending(self) -> None:
        """Send queued actions in order. While the audio actor is unreachable (restarting) they
        wait up to PENDING_MAX_S; the press time travels in `at`, so nothing is clipped."""
        while self.pending:
            action = self.pending[0]
            ptt = Ptt(action=action.action, at=action.at, origin="hotkey", reason=action.reason)
            try:
                self.ptt.send_multipart([b"", encode(ptt, self.link.name)], zmq.NOBLOCK)
            except zmq.Again:
                if time.time() - action.at > PENDING_MAX_S:
                    self.pending.popleft()
                    self.log.warning("audio_unreachable", action=action.action, dropped=True)
                    continue
                return
            self.pending.popleft()
            self.sent += 1
            self.log.info("ptt_sent", action=action.action, reason=action.reason)

    def on_reply(self) -> None:
        while True:
            try:
                frames = self.ptt.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                _, reply = decode(frames[-1])
            except ProtocolError:
                continue
            if isinstance(reply, Reply) and reply.status != "ok":
                self.log.warning("ptt_refused", code=reply.code, reason=reply.reason)

    # --- the member's hooks ---------------------------------------------------------------

    def on_start(self) -> None:
        self.start_listener()  # registered means listening (or known not to be able to)
        self.watch(self.pipe, self.on_keys)
        self.watch(self.ptt, self.on_reply)

    def on_keys(self) -> None:
        while True:
            try:
                kind, key, at = list(self.pipe.recv_json(zmq.NOBLOCK))  # type: ignore[arg-type]
            except zmq.Again:
                return
            handler = self.machine.press if kind == "press" else self.machine.release
            self.pending.extend(handler(key, at))

    def poll_ms(self) -> int:
        if self.pending:
            return PENDING_POLL_MS
        if self.retry_at is not None:
            return min(IDLE_POLL_MS, max(0, int((self.retry_at - time.monotonic()) * 1000)))
        return IDLE_POLL_MS

    def on_turn(self) -> None:
        self.send_pending()
        self.check_listener()
        if self.retry_at is not None and time.monotonic() >= self.retry_at:
            self.start_listener()

    def on_stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("hotkey", __doc__, argv)
    try:
        actor = HotkeyActor(cfg, log)
    except ValueError as exc:  # a hotkey or mode that cannot be parsed
        log.error("bad_config", reason=str(exc))
        print(f"sottovoce hotkey: {exc}", file=sys.stderr)
        return 2
    actor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
