"""Configuration: defaults, then the TOML file, then SOTTOVOCE_* environment, then CLI --set.

Keys are `section.key`. The file lives in the user config dir (platformdirs) unless
SOTTOVOCE_CONFIG names another; `SOTTOVOCE_TRANSCRIBER_MODEL=small` overrides
`transcriber.model`; the CLI's `--set transcriber.model=small` overrides both.
"""

from __future__ import annotations

import argparse
import os
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

APP = "sottovoce"

DEFAULTS: dict[str, dict[str, Any]] = {
    "paths": {
        "runtime_dir": "",  # ipc sockets; default: the user runtime dir (mode 0700)
        "data_dir": "",  # store, audio cache, logs; default: the user data dir
    },
    "scheduler": {
        "heartbeat_interval_s": 1.0,
        "heartbeat_liveness": 3,  # beats missed before a peer is declared dead
        "max_chunk_attempts": 3,  # then the job fails with the last reason
        "max_decode_attempts": 2,
        "on_stop": "finish",  # SIGTERM: finish (wait for the windows in flight) or abandon them
        "stop_timeout_s": 30.0,  # finish waits at most this long, then abandons
        "open_audio_timeout_s": 60.0,  # a streamed utterance with no new piece this long is closed
    },
    "transcriber": {
        "model": "",  # name or path; empty: the embedded tiny.en
        "device": "auto",  # auto, cpu, cuda
        "compute_type": "default",  # default: int8 on cpu, float16 on cuda
        "threads": 0,  # CPU threads; 0: CTranslate2's default
        "seed": 0,  # reset before every chunk so temperature fallback is repeatable
        "allow_download": False,  # let faster-whisper fetch a named model from its hub
        "repair_vad_threshold": 0.15,  # VAD threshold for speech Whisper jumped over (low: whispers)
    },
    "ingest": {
        "max_chunk_s": 30.0,
        "min_window_s": 15.0,  # a window is cut in the longest pause after this much audio
        "max_gap_s": 5.0,  # silence (below silence_dbfs) at least this long is skipped
        "silence_dbfs": -80.0,  # peak level below which audio is silence: nothing audible
        "vad_min_silence_ms": 300,
        "vad_speech_pad_ms": 200,
        "vad_threshold": 0.5,
        "min_duration_s": 0.25,  # shorter audio fails as too short
        "vad_block_s": 120.0,  # VAD runs on blocks this long, so memory stays bounded
    },
    "defaults": {  # job options when a submit does not say
        "language": "",  # "" auto-detects
        "task": "transcribe",
        "beam_size": 5,
        "word_timestamps": False,
        "condition_on_previous_text": False,
    },
    "audio": {  # push-to-talk capture (actors/ptt/audio.py)
        "device": "",  # input device name (substring) or index; empty: the system default
        "preroll_ms": 300,  # kept from before the start, so the first word is not clipped
        "postroll_ms": 200,  # recorded after the stop, so the last word is not clipped
        "max_utterance_s": 300.0,  # a longer recording is stopped and submitted there
        "min_speech_ms": 250,  # less speech than this (VAD) drops the recording
        "vad_threshold": 0.25,  # lower than ingest's: falsetto and whispers must not be dropped
        "stall_ms": 1000,  # no frames for this long: the device is treated as lost
        "retry_max_s": 5.0,  # reopen back-off cap after a device loss
        "language": "",  # push-to-talk jobs' language; empty: defaults.language
        "keep_dir": "",  # troubleshooting: also write every utterance here as a WAV file
        "drain": True,  # from key-down, start no file window until the utterance is done
        "hold_max_s": 60.0,  # ...but for at most this long
        "stream": True,  # transcribe a long dictation piece by piece while it is recorded
        "stream_min_s": 10.0,  # cut a piece at the first pause after this much unsent audio
        "stream_max_s": 30.0,  # ...or, with no pause, at the longest one before this
    },
    "hotkey": {  # global push-to-talk key (actors/ptt/hotkey.py)
        "key": "ctrl+space",  # modifiers and one key, joined by +
        "mode": "hold",  # hold: record while held; toggle: press to start, press to stop
        "min_hold_ms": 150,  # hold mode: a shorter press is a tap and is dropped
        "backend": "auto",  # auto, xorg (X11, XWayland) or uinput (Wayland; needs /dev/input)
    },
    "deliver": {  # what happens to push-to-talk text (actors/ptt/deliver.py)
        "mode": "clipboard",  # clipboard, type (at the cursor) or paste (then restore clipboard)
        "clipboard_tool": "auto",  # auto, xclip, xsel or wl-copy
        "paste_keys": "ctrl+v",
        "restore_after_ms": 500,  # paste mode: restore the previous clipboard after this
        "max_age_s": 30.0,  # older results (kept while the stack was down) only go to the clipboard
    },
    "watch": {  # watch folders (actors/watch/watcher.py)
        "inboxes": [],  # folders to watch; in the environment or --set: separated by ":"
        "outbox": "",  # transcripts; empty: `out` beside each inbox
        "done_dir": "",  # sources after export; empty: `done` beside each inbox
        "failed_dir": "",  # sources that failed, with NAME.error.txt; empty: `failed` beside each inbox
        "move_done": True,  # false: leave exported sources in the inbox
        "formats": "txt,srt",
        "recursive": False,
        "include": "*",  # comma-separated globs a file name must match
        "exclude": ".*,*~,*.part,*.partial,*.tmp,*.crdownload,*.download",
        "settle_s": 2.0,  # unchanged this long (or moved in): the file is complete
        "order": "name",  # files already there at start: name or mtime order
        "language": "",  # watched files' language; empty: defaults.language
    },
    "warden": {  # kills actors that are alive but not answering (actors/hub/warden.py)
        "scheduler_timeout_s": 10.0,  # pings failing this long: the scheduler is killed
    },
    "history": {  # push-to-talk history in the store
        "retention_days": 30.0,  # older entries are deleted; 0 keeps them forever
        "max_entries": 10000,  # 0: no limit
    },
    "testing": {  # fault injection for the test suite; users leave it alone
        "pause_file": "",  # arms the pause points (actors/runtime/pausepoint.py); empty: off
    },
    "log": {
        "level": "info",
        "file": True,  # each actor appends JSON lines to <data>/logs/ACTOR.log; false: stderr only
    },
    "supervisor": {  # the background stack: `sottovoce up`, down, status, logs, restart
        "conf": "",  # supervisord config; empty: deploy/supervisord.conf of this install
        "up_timeout_s": 90.0,  # `up` and `restart` wait this long for every actor to connect
    },
    "metrics": {
        "port": 0,  # Prometheus text endpoint on this TCP port (http://ADDRESS:PORT/metrics); 0: off
        "address": "127.0.0.1",
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The --config and --set options shared by the CLI and every actor."""
    parser.add_argument("--config", type=Path, help="TOML config file (default: the user config dir)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a setting, e.g. --set transcriber.model=/models/small; repeatable",
    )


class ConfigError(ValueError):
    """A config file, variable or flag that cannot be used; the message says which."""


def _coerce(key: str, raw: Any, default: Any) -> Any:
    """Convert a file, environment or CLI value to the type of the default."""
    if isinstance(default, list):
        if isinstance(raw, list):
            return [str(item) for item in raw]
        return [part for part in str(raw).split(os.pathsep) if part]
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: expected a number, got {raw!r}") from exc
    return str(raw)


def default_config_path() -> Path:
    """Where the TOML file is looked for."""
    env = os.environ.get("SOTTOVOCE_CONFIG")
    return Path(env) if env else Path(platformdirs.user_config_dir(APP)) / "config.toml"


@dataclass
class Config:
    """Resolved settings; read with `cfg.get("section.key")` or the path properties."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None = None, overrides: list[str] | None = None) -> Config:
        """Defaults <- file <- environment <- `overrides` ("section.key=value")."""
        values = {
            section: {k: list(v) if isinstance(v, list) else v for k, v in keys.items()}
            for section, keys in DEFAULTS.items()
        }
        path = path or default_config_path()
        if path.exists():
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            for section, keys in data.items():
                if section not in values or not isinstance(keys, dict):
                    raise ConfigError(f"{path}: unknown section [{section}]")
                for key, raw in keys.items():
                    cls._set(values, f"{section}.{key}", raw, str(path))
        for section, keys in DEFAULTS.items():
            for key in keys:
                env = f"SOTTOVOCE_{section}_{key}".upper()
                if env in os.environ:
                    cls._set(values, f"{section}.{key}", os.environ[env], env)
        for item in overrides or []:
            name, sep, raw = item.partition("=")
            if not sep:
                raise ConfigError(f"--set {item!r}: expected section.key=value")
            cls._set(values, name.strip(), raw, "--set")
        return cls(values=values, path=path)

    @staticmethod
    def _set(values: dict[str, dict[str, Any]], name: str, raw: Any, origin: str) -> None:
        section, _, key = name.partition(".")
        if section not in DEFAULTS or key not in DEFAULTS[section]:
            raise ConfigError(f"{origin}: unknown setting {name!r}")
        values[section][key] = _coerce(name, raw, DEFAULTS[section][key])

    def get(self, name: str) -> Any:
        """The value of `section.key`."""
        section, _, key = name.partition(".")
        return self.values[section][key]

    def as_env(self) -> dict[str, str]:
        """Every setting as SOTTOVOCE_* variables, so child actors see the same config."""
        env = {}
        for section, keys in self.values.items():
            for key, value in keys.items():
                if isinstance(value, list):
                    text = os.pathsep.join(value)
                else:
                    text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"SOTTOVOCE_{section}_{key}".upper()] = text
        return env

    def _path(self, name: str, default: Callable[[str], str]) -> Path:
        """A configured directory: `~` expanded; relative paths are refused, because every
        actor and the CLI run in their own working directories."""
        raw = self.get(name)
        path = Path(raw).expanduser() if raw else Path(default(APP))
        if not path.is_absolute():
            raise ConfigError(f"{name} must be an absolute path, got {raw!r}")
        return path

    @property
    def runtime_dir(self) -> Path:
        """Private directory (0700) for the ipc sockets; created on first use."""
        path = self._path("paths.runtime_dir", platformdirs.user_runtime_dir)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(path.stat().st_mode) != 0o700:
            path.chmod(0o700)
        return path

    @property
    def data_dir(self) -> Path:
        """Store, audio cache and logs."""
        path = self._path("paths.data_dir", platformdirs.user_data_dir)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)  # transcripts are private
        return path

    @property
    def store_path(self) -> Path:
        return self.data_dir / "sottovoce.sqlite3"

    @property
    def cache_dir(self) -> Path:
        path = self.data_dir / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def log_dir(self) -> Path:
        path = self.data_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def endpoint(self, name: str) -> str:
        """ipc endpoint of the scheduler's `control`, `work` or `events` socket."""
        path = self.runtime_dir / name
        endpoint = f"ipc://{path}"
        if len(str(path)) > 107:
            raise ConfigError(f"ipc path {path} is longer than 107 characters; set paths.runtime_dir")
        return endpoint
