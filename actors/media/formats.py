"""Transcript output formats (txt, srt, vtt, json), following openai-whisper's writers, and
atomic file writes (temp file in the same directory, fsync, rename)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMATS = ("txt", "srt", "vtt", "json")


def format_timestamp(seconds: float, always_include_hours: bool = False, decimal_marker: str = ".") -> str:
    """whisper.utils.format_timestamp."""
    milliseconds = round(max(seconds, 0.0) * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1_000)
    hours_marker = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_marker}{minutes:02d}:{secs:02d}{decimal_marker}{milliseconds:03d}"


def to_txt(result: dict[str, Any]) -> str:
    return "".join(f"{s['text'].strip()}\n" for s in result["segments"])


def to_vtt(result: dict[str, Any]) -> str:
    lines = ["WEBVTT\n\n"]
    for s in result["segments"]:
        text = s["text"].strip().replace("-->", "->")
        lines.append(f"{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}\n{text}\n\n")
    return "".join(lines)


def to_srt(result: dict[str, Any]) -> str:
    lines = []
    for i, s in enumerate(result["segments"], start=1):
        start = format_timestamp(s["start"], True, ",")
        end = format_timestamp(s["end"], True, ",")
        text = s["text"].strip().replace("-->", "->")
        lines.append(f"{i}\n{start} --> {end}\n{text}\n\n")
    return "".join(lines)


def to_json(result: dict[str, Any]) -> str:
    payload = {
        "text": result["text"],
        "language": result.get("language", ""),
        "segments": [{k: v for k, v in s.items() if k != "words" or v} for s in result["segments"]],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
}


def parse_formats(text: str) -> list[str]:
    """ "txt,srt" -> ["txt", "srt"]; raises ValueError naming an unknown format."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown or not formats:
        raise ValueError(f"unknown format {', '.join(unknown) or text!r}; choose from {', '.join(FORMATS)}")
    return formats


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(result: dict[str, Any], stem: Path, formats: list[str]) -> list[Path]:
    """Write `stem.<fmt>` for each format; returns the paths written. The .txt is written
    last, so whoever waits for it finds every other format already there."""
    written = []
    for fmt in sorted(formats, key=lambda f: f == "txt"):
        path = stem.with_name(f"{stem.name}.{fmt}")
        write_atomic(path, RENDERERS[fmt](result))
        written.append(path)
    return written
