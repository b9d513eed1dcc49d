"""Common command line of every actor process: `python -m actors.NAME [--config F] [--set K=V]`."""

from __future__ import annotations

import argparse
import fcntl
from pathlib import Path
from typing import Any

from actors.config import Config, ConfigError, add_arguments
from actors.logs import setup


def start(name: str, description: str | None, argv: list[str] | None) -> tuple[Config, Any]:
    """Parse the actor's arguments, load config, set up logging; returns (config, logger)."""
    parser = argparse.ArgumentParser(prog=f"python -m actors.{name}", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(path=args.config, overrides=args.set)
    except ConfigError as exc:
        parser.error(str(exc))
    return cfg, setup(name, cfg.log_dir, cfg.get("log.level"))


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
