"""Inbox rules on real files: which names count, collision-free names, when a file is complete."""

from __future__ import annotations

import os
from pathlib import Path

from actors.watch.inbox import Settler, free_path, globs, wanted
from tests.support.harness import poll

EXCLUDE = globs(".*,*~,*.part,*.partial,*.tmp,*.crdownload,*.download")


def test_temporary_names_do_not_count() -> None:
    assert wanted("talk.mp3", ["*"], EXCLUDE)
    for name in (".talk.mp3.swp", "talk.mp3~", "talk.mp3.part", "video.mp4.crdownload", "x.tmp"):
        assert not wanted(name, ["*"], EXCLUDE), name
    assert not wanted("notes.txt", globs("*.mp3,*.wav"), [])


def test_free_path_never_overwrites(tmp_path: Path) -> None:
    assert free_path(tmp_path, "a.txt") == tmp_path / "a.txt"
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "a-2.txt").write_text("x")
    assert free_path(tmp_path, "a.txt") == tmp_path / "a-3.txt"


def test_a_growing_file_is_not_complete_until_it_stops(tmp_path: Path) -> None:
    settler = Settler(settle_s=0.3)
    path = tmp_path / "talk.wav"
    path.write_bytes(b"x" * 100)
    settler.note(path)
    assert settler.ready() == []
    with path.open("ab") as f:  # still being written
        f.write(b"y" * 100)
        os.utime(path)
    assert settler.ready() == []
    assert poll(settler.ready, 5, interval_s=0.05) == [path]
    assert settler.ready() == []  # handed over once


def test_a_moved_in_file_is_complete_at_once_and_a_vanished_one_is_forgotten(tmp_path: Path) -> None:
    settler = Settler(settle_s=60)
    moved, gone = tmp_path / "moved.wav", tmp_path / "gone.wav"
    moved.write_bytes(b"x")
    gone.write_bytes(b"x")
    settler.note(moved, moved=True)
    settler.note(gone)
    gone.unlink()
    assert settler.ready() == [moved] and settler.files == {}
