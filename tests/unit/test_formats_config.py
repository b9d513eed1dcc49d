"""Output formats (whisper's conventions), atomic writes, and configuration layering."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from actors.media.formats import (
    format_timestamp,
    parse_formats,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
    write_outputs,
)
from actors.runtime.config import Config, ConfigError

RESULT = {
    "text": "Hello there. General Kenobi.",
    "language": "en",
    "segments": [
        {"start": 0.0, "end": 1.5, "text": " Hello there.", "words": []},
        {"start": 3661.25, "end": 3662.0, "text": " General --> Kenobi.", "words": []},
    ],
}


def test_timestamps_follow_whisper() -> None:
    assert format_timestamp(3661.25) == "01:01:01.250"
    assert format_timestamp(1.5) == "00:01.500"
    assert format_timestamp(1.5, always_include_hours=True, decimal_marker=",") == "00:00:01,500"


def test_renderers() -> None:
    assert to_txt(RESULT) == "Hello there.\nGeneral --> Kenobi.\n"
    assert to_srt(RESULT).splitlines()[:3] == ["1", "00:00:00,000 --> 00:00:01,500", "Hello there."]
    assert "General -> Kenobi." in to_srt(RESULT)
    vtt = to_vtt(RESULT)
    assert vtt.startswith("WEBVTT\n\n00:00.000 --> 00:01.500\nHello there.\n\n")
    assert "01:01:01.250 --> 01:01:02.000" in vtt
    assert json.loads(to_json(RESULT))["segments"][0] == {"start": 0.0, "end": 1.5, "text": " Hello there."}


def test_parse_formats() -> None:
    assert parse_formats("txt, SRT") == ["txt", "srt"]
    with pytest.raises(ValueError, match="docx"):
        parse_formats("txt,docx")


def test_write_outputs_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    written = write_outputs(RESULT, tmp_path / "talk", ["txt", "json", "srt"])
    assert [p.name for p in written] == ["talk.json", "talk.srt", "talk.txt"]  # .txt last
    assert sorted(os.listdir(tmp_path)) == ["talk.json", "talk.srt", "talk.txt"]
    assert written[-1].stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in written)


def test_config_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[transcriber]\nmodel = "/models/small"\nthreads = 2\n[defaults]\nbeam_size = 3\n')
    monkeypatch.setenv("SOTTOVOCE_TRANSCRIBER_THREADS", "4")
    cfg = Config.load(path=path, overrides=["defaults.beam_size=1"])
    assert cfg.get("transcriber.model") == "/models/small"  # file
    assert cfg.get("transcriber.threads") == 4  # environment beats file
    assert cfg.get("defaults.beam_size") == 1  # flag beats both
    assert cfg.as_env()["SOTTOVOCE_DEFAULTS_BEAM_SIZE"] == "1"


@pytest.mark.parametrize(
    ("text", "overrides", "match"),
    [
        ("[nope]\nx = 1\n", [], "unknown section"),
        ("[transcriber]\nmodle = 'x'\n", [], "unknown setting"),
        ("[transcriber]\nthreads = 'many'\n", [], "expected a number"),
        ("not toml = = =", [], "config.toml"),
        ("", ["transcriber.threads"], "section.key=value"),
    ],
)
def test_config_errors_say_what_is_wrong(tmp_path: Path, text: str, overrides: list[str], match: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Config.load(path=path, overrides=overrides)


def test_runtime_dir_is_private(tmp_path: Path) -> None:
    cfg = Config.load(path=tmp_path / "x.toml", overrides=[f"paths.runtime_dir={tmp_path}/run"])
    assert (cfg.runtime_dir.stat().st_mode & 0o777) == 0o700
    assert cfg.endpoint("control") == f"ipc://{tmp_path}/run/control"


def test_output_stems_never_collide() -> None:
    from actors.cli.jobs import unique_stems

    assert unique_stems([Path("a/talk.wav"), Path("b/talk.wav"), Path("talk.mp3"), Path("x.ogg")]) == [
        "talk",
        "talk-2",
        "talk-3",
        "x",
    ]


def test_relative_data_dir_is_refused(tmp_path: Path) -> None:
    cfg = Config.load(path=tmp_path / "x.toml", overrides=["paths.data_dir=data"])
    with pytest.raises(ConfigError, match="absolute"):
        _ = cfg.data_dir
    home = Config.load(path=tmp_path / "x.toml", overrides=["paths.data_dir=~/sv-data"])
    assert str(home.get("paths.data_dir")) == "~/sv-data"
    assert not str(home._path("paths.data_dir", lambda app: "")).startswith("~")
