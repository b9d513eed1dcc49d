"""Test rig: a virtual microphone and a virtual X display that real processes use as a person would.

`Microphone` runs a private PulseAudio with a pipe source (`vmic`) fed by a real-time writer
thread: silence in 10 ms blocks, with speech spliced in by `play()`. A separate process records
from it with sounddevice's default input device once it has `Microphone.env` in its environment.
`Display` runs Xvfb; `xdotool` presses keys on it (seen by pynput's X backend) and `xclip` reads
and writes its clipboard. Facts and pitfalls: ../shared/TESTBED.md. Waiting is always polling a
condition until a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.harness import poll

RATE_HZ = 16000
BLOCK_S = 0.01
BLOCK_SAMPLES = int(RATE_HZ * BLOCK_S)
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
CLIPBOARD_TIMEOUT_S = 2.0
PUMP_INTERVAL_S = 0.01
SOURCE_NAME = "vmic"
PIPE_SOURCE_ARGS = f"source_name={SOURCE_NAME} file={{fifo}} format=s16le rate={RATE_HZ} channels=1"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group led by `proc`, SIGKILL it if it outlives STOP_TIMEOUT_S."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)


def _pids_on_display(name: str, commands: tuple[str, ...]) -> list[int]:
    """PIDs of processes named one of `commands` whose environment has DISPLAY=`name`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() not in commands:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"DISPLAY={name}".encode() in environ:
            found.append(int(entry.name))
    return found


# --- X display -------------------------------------------------------------------------------


class Display:
    """An Xvfb server on a free display number, with xdotool keys and the xclip clipboard."""

    def __init__(self, autorepeat: bool = False) -> None:
        self.autorepeat = autorepeat
        self.name = ""
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._clip_setters: list[subprocess.Popen[bytes]] = []
        self._pump_stop = threading.Event()
        self._pump: threading.Thread | None = None

    def start(self) -> Display:
        """Start Xvfb, wait until it accepts connections and its autorepeat is as asked."""
        read_fd, write_fd = os.pipe()
        # -noreset: by default Xvfb resets when its last client leaves, and a client connecting
        # during that reset is dropped ("Connection reset by peer", seen here).
        args = [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            "1024x768x24",
            "-nolisten",
            "tcp",
            "-noreset",
            "r" if self.autorepeat else "-r",
        ]
        try:
            self._proc = subprocess.Popen(
                args,
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            os.close(write_fd)
            write_fd = -1
            self.name = f":{self._read_display_number(read_fd)}"
            self.env = {"DISPLAY": self.name}
            poll(self._connects, START_TIMEOUT_S, what=f"Xvfb {self.name} to accept connections")
            if self.autorepeat_enabled() != self.autorepeat:
                self._set_autorepeat(self.autorepeat)
                poll(lambda: self.autorepeat_enabled() == self.autorepeat, START_TIMEOUT_S, what="autorepeat")
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if self.autorepeat:
            self._pump = threading.Thread(target=self._pump_loop, name=f"xpump{self.name}", daemon=True)
            self._pump.start()
        return self

    def _pump_loop(self) -> None:
        """Make a round trip every PUMP_INTERVAL_S so that Xvfb flushes its output to every client.

        Xvfb generates autorepeat events on a timer but sends them to a RECORD client (pynput) only
        when some client request makes it flush: without this, all repeats of a held key arrive in
        one burst just before its release.
        """
        from Xlib import display as xdisplay

        conn = xdisplay.Display(self.name)
        try:
            while not self._pump_stop.wait(PUMP_INTERVAL_S):
                conn.get_input_focus()
        finally:
            conn.close()

    def _read_display_number(self, fd: int) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._proc is not None and self._proc.poll() is not None):
                raise RuntimeError(f"Xvfb did not report a display number: {data!r}")
            if select.select([fd], [], [], min(remaining, 0.1))[0]:
                chunk = os.read(fd, 64)
                if not chunk:
                    raise RuntimeError("Xvfb closed -displayfd without a display number")
                data += chunk
        return int(data)

    def _connects(self) -> bool:
        return self._xdotool("getmouselocation", check=False).returncode == 0

    def _xdotool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["xdotool", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            timeout=START_TIMEOUT_S,
            check=check,
        )

    def autorepeat_enabled(self) -> bool:
        """The server's global key autorepeat setting, read with python-xlib (pynput's dependency)."""
        from Xlib import display as xdisplay

        conn = xdisplay.Display(self.name)
        try:
            return bool(conn.get_keyboard_control().global_auto_repeat)
        finally:
            conn.close()

    def _set_autorepeat(self, on: bool) -> None:
        from Xlib import X
        from Xlib import display as xdisplay

        conn = xdisplay.Display(self.name)
        try:
            conn.change_keyboard_control(auto_repeat_mode=X.AutoRepeatModeOn if on else X.AutoRepeatModeOff)
            conn.sync()
        finally:
            conn.close()

    def key_down(self, combo: str) -> float:
        """Press `combo` (xdotool syntax, e.g. "ctrl+space"); return time.time() once xdotool is done.

        `--delay 0`: xdotool's default 12 ms pause after each key would make the returned time
        ~12 ms later than the events (measured: events reach pynput ~0.5 ms before the return).
        """
        self._xdotool("keydown", "--delay", "0", combo)
        return time.time()

    def key_up(self, combo: str) -> float:
        """Release `combo`; return time.time() once xdotool is done."""
        self._xdotool("keyup", "--delay", "0", combo)
        return time.time()

    def clipboard(self) -> str:
        """The CLIPBOARD selection as text; "" when it is empty, unowned or its owner does not answer."""
        try:
            out = subprocess.run(
                ["xclip", "-selection", "clipboard", "-o"],
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=CLIPBOARD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return ""
        return out.stdout.decode(errors="replace") if out.returncode == 0 else ""

    def set_clipboard(self, text: str) -> None:
        """Own the CLIPBOARD with `text` (an xclip kept in the foreground); return once it is served."""
        proc = subprocess.Popen(
            ["xclip", "-quiet", "-selection", "clipboard", "-i"],
            env={**os.environ, **self.env},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None
        proc.stdin.write(text.encode())
        proc.stdin.close()
        self._clip_setters.append(proc)
        poll(lambda: self.clipboard() == text, START_TIMEOUT_S, what="the clipboard to be set")

    def stop(self) -> None:
        """Stop xclip processes serving selections on this display, then Xvfb."""
        self._pump_stop.set()
        if self._pump is not None:
            self._pump.join(STOP_TIMEOUT_S)
            self._pump = None
        for proc in self._clip_setters:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
        self._clip_setters.clear()
        if self.name:
            for pid in _pids_on_display(self.name, ("xclip", "xsel")):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            _kill_group(self._proc)
            self._proc = None


# --- microphone ------------------------------------------------------------------------------


class _Clip:
    """PCM queued by `Microphone.play()`, with the time its first sample was written."""

    def __init__(self, pcm: np.ndarray) -> None:
        self.pcm = pcm
        self.offset = 0
        self.started_at = 0.0
        self.started = threading.Event()
        self.finished = threading.Event()


class Microphone:
    """PulseAudio with a pipe source `vmic` as default source, fed in real time by a writer thread.

    With `sink` (the default, as in TESTBED.md) a null sink `vsink` is loaded too: its monitor is
    then the only other source, and PulseAudio moves a client's stream there while `vmic` is
    unloaded (no callbacks for 1.0-1.6 s, then silence, no status flag), and back to `vmic` when it
    is loaded again. Without it, unloading `vmic` leaves no source at all: the client's stream dies
    (finished_callback, `active` False) and reopening fails until `load_source()`.
    A client recovers in the same process by closing the dead stream and reopening it until that
    works; no `sd._terminate(); sd._initialize()` is needed (tests/rig/test_rig.py's RECORDER).
    """

    def __init__(self, root: Path, sink: bool = True) -> None:
        self.root = Path(root)
        self.sink = sink
        self.fifo = self.root / "mic.fifo"
        self.socket = self.root / "native"
        self.env = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
        }
        self.blocks_written = 0
        """Blocks the writer wrote into the fifo."""
        self.blocks_dropped = 0
        """Blocks not written: no source loaded, or nobody records so PulseAudio does not read."""
        self.error: BaseException | None = None
        """What killed the writer thread, if anything did."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._module: str | None = None
        self._queue: collections.deque[_Clip] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None

    def start(self) -> Microphone:
        """Start PulseAudio, wait until `pactl info` answers, then start the writer thread."""
        for sub in ("xdg", "state"):
            (self.root / sub).mkdir(mode=0o700, exist_ok=True)
        (self.root / "client.conf").write_text("autospawn = no\n")
        config = [
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
            f"load-module module-pipe-source {PIPE_SOURCE_ARGS.format(fifo=self.fifo)}",
            f"set-default-source {SOURCE_NAME}",
        ]
        if self.sink:
            config += [
                f"load-module module-null-sink sink_name=vsink rate={RATE_HZ} channels=1",
                "set-default-sink vsink",
            ]
        (self.root / "rig.pa").write_text("\n".join(config) + "\n")
        env = {
            **os.environ,
            **self.env,
            "XDG_RUNTIME_DIR": str(self.root / "xdg"),
            "PULSE_STATE_PATH": str(self.root / "state"),
        }
        self._proc = subprocess.Popen(
            [
                "pulseaudio",
                "-n",
                "-F",
                str(self.root / "rig.pa"),
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--system=false",
                "--use-pid-file=no",
                f"--log-target=file:{self.root / 'pa.log'}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            poll(self._ready, START_TIMEOUT_S, what="pulseaudio to answer `pactl info`")
            self._module = self._find_module()
        except BaseException:
            self.stop()
            raise
        self._writer = threading.Thread(target=self._write_loop, name="vmic-writer", daemon=True)
        self._writer.start()
        return self

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            log = self.root / "pa.log"
            raise RuntimeError(f"pulseaudio exited: {log.read_text()[-2000:] if log.exists() else ''}")
        return self.pactl("info", check=False).returncode == 0

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run pactl against this server."""
        return subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=check,
        )

    def _find_module(self) -> str:
        for line in self.pactl("list", "short", "modules").stdout.splitlines():
            index, name, *_ = line.split("\t")
            if name == "module-pipe-source":
                return index
        raise RuntimeError("module-pipe-source is not loaded")

    def unload_source(self) -> None:
        """Unplug the microphone: unload the pipe source (its fifo goes away)."""
        if self._module is None:
            raise RuntimeError("the source is not loaded")
        self.pactl("unload-module", self._module)
        self._module = None

    def load_source(self) -> None:
        """Plug the microphone back in: load the pipe source and make it the default source again."""
        if self._module is not None:
            raise RuntimeError("the source is already loaded")
        args = PIPE_SOURCE_ARGS.format(fifo=self.fifo).split()
        self._module = self.pactl("load-module", "module-pipe-source", *args).stdout.strip()
        self.pactl("set-default-source", SOURCE_NAME)

    # The writer: one block every BLOCK_S on an absolute monotonic schedule (late blocks are
    # written at once, so the stream never drifts from the clock).

    def _write_loop(self) -> None:
        fd: int | None = None
        t0 = time.monotonic()
        n = 0
        try:
            while not self._stopping.is_set():
                delay = t0 + n * BLOCK_S - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    break
                n += 1
                fd = self._ensure_open(fd)
                block, starting, ending = self._next_block()
                fd = self._write_block(fd, block)
                now = time.time()
                for clip in starting:
                    clip.started_at = now
                    clip.started.set()
                for clip in ending:
                    clip.finished.set()
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            if fd is not None:
                os.close(fd)

    def _ensure_open(self, fd: int | None) -> int | None:
        """`fd` if it still is the fifo at self.fifo, else a fresh fd on it (None while unplugged).

        Unloading module-pipe-source closes its end and unlinks the fifo; loading it again makes
        a new fifo at the same path, hence the inode check.
        """
        try:
            current: int | None = os.stat(self.fifo).st_ino
        except FileNotFoundError:
            current = None
        if fd is not None and current == os.fstat(fd).st_ino:
            return fd
        if fd is not None:
            os.close(fd)
        if current is None:
            return None
        try:
            return os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO: the fifo has no reader (yet)
            if exc.errno not in (errno.ENXIO, errno.ENOENT):
                raise
            return None

    def _write_block(self, fd: int | None, block: bytes) -> int | None:
        if fd is None:
            self.blocks_dropped += 1
            return None
        try:
            os.write(fd, block)  # all or nothing: a block is smaller than PIPE_BUF
            self.blocks_written += 1
        except BlockingIOError:  # fifo full: nobody records, PulseAudio does not read; drop
            self.blocks_dropped += 1
        except BrokenPipeError:  # the reader went away (source unloaded)
            self.blocks_dropped += 1
            os.close(fd)
            return None
        return fd

    def _next_block(self) -> tuple[bytes, list[_Clip], list[_Clip]]:
        """The next BLOCK_SAMPLES of queued PCM, silence-padded; the clips that start and end in it."""
        block = np.zeros(BLOCK_SAMPLES, dtype="<i2")
        starting, ending = [], []
        filled = 0
        with self._lock:
            while filled < BLOCK_SAMPLES and self._queue:
                clip = self._queue[0]
                if clip.offset == 0:
                    starting.append(clip)
                take = min(BLOCK_SAMPLES - filled, len(clip.pcm) - clip.offset)
                block[filled : filled + take] = clip.pcm[clip.offset : clip.offset + take]
                filled += take
                clip.offset += take
                if clip.offset == len(clip.pcm):
                    ending.append(self._queue.popleft())
        return block.tobytes(), starting, ending

    def _check_writer(self) -> None:
        if self.error is not None:
            raise RuntimeError("the microphone writer died") from self.error
        if self._writer is None or not self._writer.is_alive():
            raise RuntimeError("the microphone is not running")

    def play(self, pcm: np.ndarray) -> float:
        """Queue int16 mono 16 kHz `pcm` to start at the next block (right after anything still
        queued); return the time.time() at which its first sample was written into the fifo."""
        self._check_writer()
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16 or pcm.ndim != 1 or len(pcm) == 0:
            raise ValueError(f"need non-empty 1-D int16 PCM, got {pcm.dtype} {pcm.shape}")
        clip = _Clip(pcm.astype("<i2", copy=False))
        with self._lock:
            ahead_s = sum(len(c.pcm) - c.offset for c in self._queue) / RATE_HZ
            self._queue.append(clip)
        if not clip.started.wait(ahead_s + START_TIMEOUT_S):
            self._check_writer()
            raise TimeoutError("the writer did not start the clip")
        return clip.started_at

    def wait_played(self, timeout: float = 60) -> None:
        """Block until everything queued by play() has been written (or dropped while unplugged)."""
        with self._lock:
            last = self._queue[-1] if self._queue else None
        if last is not None and not last.finished.wait(timeout):
            self._check_writer()
            raise TimeoutError(f"audio still queued after {timeout} s")

    def stop(self) -> None:
        """Stop the writer thread and PulseAudio."""
        self._stopping.set()
        if self._writer is not None:
            self._writer.join(STOP_TIMEOUT_S)
            self._writer = None
        if self._proc is not None:
            _kill_group(self._proc)
            self._proc = None


# --- speech ----------------------------------------------------------------------------------


def load_pcm(path: Path) -> np.ndarray:
    """Any audio file sox reads, as 16 kHz mono int16."""
    out = subprocess.run(
        [
            "sox",
            "-D",  # no dither: the same input gives the same samples on every call
            str(path),
            "-t",
            "raw",
            "-r",
            str(RATE_HZ),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-L",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return np.frombuffer(out.stdout, dtype="<i2").astype(np.int16)


def speech_pcm(text: str, pad_s: float = 0.2) -> np.ndarray:
    """`text` spoken by espeak-ng (en-us, 160 wpm) as 16 kHz mono int16, with `pad_s` of silence before."""
    with tempfile.TemporaryDirectory(prefix="rig") as tmp:
        raw = Path(tmp) / "raw.wav"
        espeak = ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text]
        subprocess.run(espeak, check=True, capture_output=True, timeout=60)
        pcm = load_pcm(raw)
    return np.concatenate([np.zeros(int(pad_s * RATE_HZ), dtype=np.int16), pcm])


# --- pytest fixtures -------------------------------------------------------------------------


def need_binaries(*names: str) -> None:
    """Skip the test unless every named program is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"the test rig needs {', '.join(missing)} (see ../shared/TESTBED.md, Packages)")


def _display(autorepeat: bool) -> Iterator[Display]:
    need_binaries("Xvfb", "xdotool", "xclip")
    display = Display(autorepeat=autorepeat)
    try:
        yield display.start()
    finally:
        display.stop()


@pytest.fixture
def display() -> Iterator[Display]:
    """An Xvfb display with key autorepeat off."""
    yield from _display(autorepeat=False)


@pytest.fixture
def display_autorepeat() -> Iterator[Display]:
    """An Xvfb display with key autorepeat on."""
    yield from _display(autorepeat=True)


def _microphone(sink: bool) -> Iterator[Microphone]:
    need_binaries("pulseaudio", "pactl")
    root = Path(tempfile.mkdtemp(prefix="mic", dir="/tmp"))  # short: unix socket paths are limited
    mic = Microphone(root, sink=sink)
    try:
        yield mic.start()
    finally:
        mic.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def microphone() -> Iterator[Microphone]:
    """A running virtual microphone (TESTBED.md's setup, with the null sink); clients need its env."""
    yield from _microphone(sink=True)


@pytest.fixture
def microphone_only() -> Iterator[Microphone]:
    """A virtual microphone that is the only audio device: unloading it kills the client's stream."""
    yield from _microphone(sink=False)
