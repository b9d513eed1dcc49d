"""Common command line of every actor process: `python -m actors NAME [--config F] [--set K=V]`."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
from pathlib import Path
from typing import Any

import zmq

from actors.runtime.config import Config, ConfigError, add_arguments
from actors.runtime.logs import setup

PR_SET_PDEATHSIG = 1


def start(name: str, description: str | None, argv: list[str] | None) -> tuple[Config, Any]:
    """Parse the actor's arguments, load config, set up logging; returns (config, logger)."""
    parser = argparse.ArgumentParser(prog=f"python -m actors {name}", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(path=args.config, overrides=args.set)
    except ConfigError as exc:
        parser.error(str(exc))
    die_with_parent()
    return cfg, setup(name, cfg.log_dir if cfg.get("log.file") else None, cfg.get("log.level"))


def die_with_parent() -> None:
    """Get SIGTERM when the process that started us (supervisord, `sottovoce run`, a test)
    dies, even by SIGKILL, so no actor outlives its supervisor (Linux prctl PDEATHSIG)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guarantee
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died between our two getppid calls
        os.kill(os.getpid(), signal.SIGTERM)


_wakeup_writers: list[socket.socket] = []


def signal_wakeup() -> socket.socket:
    """A socket that turns readable when a signal arrives: registered in a loop's poller, it
    ends the poll at once, so SIGTERM is acted on without waiting out the poll timeout.
    The loop reads it empty with `drain_wakeup`."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    _wakeup_writers.append(writer)
    return reader


def readable(sock: Any, ready: dict[Any, int]) -> bool:
    """Whether `sock` is in a zmq.Poller's result: pyzmq gives back a zmq socket itself but a
    plain socket (the signal wake-up, a socket pair) as its file descriptor."""
    return (sock if isinstance(sock, zmq.Socket) else sock.fileno()) in ready


def drain_wakeup(reader: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while reader.recv(64):
            pass


def sole_instance(path: Path) -> Any | None:
    """An exclusive flock on `path`, held while the returned file stays open; None if another
    process holds it (a second copy of a one-per-stack actor)."""
    lock = path.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock
