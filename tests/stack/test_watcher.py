"""Watch folders end to end: the real watcher process (watchdog/inotify) on a real stack with
tiny.en; files moved in, copied slowly, broken, duplicated; the watcher killed mid-batch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.control import ListJobs
from tests.support.harness import Stack, collect_events, espeak_wav, poll, window_compute_s
from tests.support.media import every_format, with_sox
from tests.support.rig import speech_pcm

pytestmark = pytest.mark.stack

SETTLE_S = 1.0


@pytest.fixture
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    folder = Path(tmp_path_factory.mktemp("watch"))
    with Stack(
        {"watch.inboxes": str(folder / "inbox"), "watch.formats": "txt,json", "watch.settle_s": SETTLE_S}
    ) as stack:
        stack.start("scheduler", "ingest", "transcriber", "watcher")
        stack.wait_ready(roles=("ingest", "transcriber", "watcher"))
        yield stack, folder


def drop_by_rename(source: Path, inbox: Path, name: str) -> Path:
    """How a careful tool delivers: write elsewhere on the same disk, then rename in."""
    staging = inbox.parent / f".staging-{name}"
    shutil.copyfile(source, staging)
    target = inbox / name
    os.replace(staging, target)
    return target


def copy_slowly(source: Path, target: Path, pieces: int = 5, pause_s: float = SETTLE_S / 3) -> None:
    """A slow copy: pieces with pauses shorter than the settle time (the pacing of a writer,
    not a wait for the system under test)."""
    data = source.read_bytes()
    step = len(data) // pieces + 1
    with target.open("wb") as out:
        for i in range(0, len(data), step):
            out.write(data[i : i + step])
            out.flush()
            time.sleep(pause_s)


def watcher_jobs(stack: Stack) -> list[dict]:
    return [j for j in stack.client.call(ListJobs(limit=1000))["jobs"] if j["source"] == "watcher"]


def test_files_are_transcribed_once_exported_and_moved(watched: tuple[Stack, Path], tmp_path: Path) -> None:
    stack, folder = watched
    inbox, out, done, failed = (folder / n for n in ("inbox", "out", "done", "failed"))
    first = espeak_wav("Please open the settings menu.", tmp_path / "a.wav")
    second = espeak_wav("The meeting has been moved to Thursday.", tmp_path / "b.wav")
    drop_by_rename(first, inbox, "memo.wav")
    copy_slowly(second, inbox / "meeting.wav")
    (inbox / "notes.mp3").write_text("this is not audio at all\n" * 50)
    shutil.copyfile(first, inbox / "memo copy.wav")  # same content, another name

    poll(lambda: (out / "memo.txt").exists() and (out / "meeting.txt").exists(), 120, what="exports")
    poll(lambda: (failed / "notes.mp3.error.txt").exists(), 60, what="the error file")
    poll(lambda: (out / "memo copy.txt").exists(), 60, what="the duplicate's export")
    assert "settings menu" in (out / "memo.txt").read_text().lower()
    assert "thursday" in (out / "meeting.txt").read_text().lower()
    assert json.loads((out / "meeting.json").read_text())["segments"]
    assert (out / "memo copy.txt").read_text() == (out / "memo.txt").read_text()
    poll(lambda: sorted(p.name for p in done.iterdir()) == ["meeting.wav", "memo copy.wav", "memo.wav"], 30)
    assert (failed / "notes.mp3").exists()
    assert "could not be transcribed" in (failed / "notes.mp3.error.txt").read_text()
    assert not list(inbox.iterdir())
    jobs = watcher_jobs(stack)
    assert sorted(j["label"] for j in jobs) == ["meeting.wav", "memo.wav", "notes.mp3"]  # once each
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temp file left in the outbox"


def test_a_killed_watcher_loses_nothing_and_repeats_nothing(
    watched: tuple[Stack, Path], tmp_path: Path
) -> None:
    stack, folder = watched
    inbox, out = folder / "inbox", folder / "out"
    sentences = ["Open the door.", "Close the window.", "Turn on the lights in the kitchen."]
    for i, sentence in enumerate(sentences):
        drop_by_rename(espeak_wav(sentence, tmp_path / f"{i}.wav"), inbox, f"clip{i}.wav")
    poll(lambda: len(watcher_jobs(stack)) >= 1, 60, what="the first submission")
    stack.signal("watcher", signal.SIGKILL)
    stack.start("watcher")
    poll(lambda: all((out / f"clip{i}.txt").exists() for i in range(3)), 180, what="every export")
    jobs = watcher_jobs(stack)
    assert sorted(j["label"] for j in jobs) == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"clip{i}.{f}" for i in range(3) for f in ("json", "txt")
    )


def test_watch_add_remove_status_at_run_time(watched: tuple[Stack, Path], tmp_path: Path) -> None:
    stack, folder = watched
    extra = folder / "extra"
    added = stack.cli("watch", "add", str(extra), "--json")
    assert added.returncode == 0, added.stderr
    assert str(extra) in [i["path"] for i in json.loads(added.stdout)["inboxes"]]
    drop_by_rename(espeak_wav("Open the door.", tmp_path / "d.wav"), extra, "door.wav")
    poll(lambda: (folder / "out" / "door.txt").exists(), 120, what="the export from the added folder")
    status = json.loads(stack.cli("watch", "status", "--json").stdout)
    files = {f["name"]: f["state"] for i in status["inboxes"] for f in i["files"]}
    assert files.get("door.wav") == "exported"
    stack.restart("watcher")  # the added folder is remembered
    stack.wait_ready(roles=("watcher",))
    status = json.loads(stack.cli("watch", "status", "--json").stdout)
    assert str(extra) in [i["path"] for i in status["inboxes"]]
    removed = stack.cli("watch", "remove", str(extra), "--json")
    assert removed.returncode == 0 and str(extra) not in [
        i["path"] for i in json.loads(removed.stdout)["inboxes"]
    ]
    again = stack.cli("watch", "remove", str(extra))
    assert again.returncode == 1 and "is not watched" in again.stderr


def test_the_scheduler_killed_mid_batch_loses_nothing(watched: tuple[Stack, Path], tmp_path: Path) -> None:
    stack, folder = watched
    inbox, out = folder / "inbox", folder / "out"
    sentences = ["Open the door.", "Close the window.", "Please open the settings menu."]
    for i, sentence in enumerate(sentences):
        drop_by_rename(espeak_wav(sentence, tmp_path / f"{i}.wav"), inbox, f"take{i}.wav")
    poll(lambda: len(watcher_jobs(stack)) >= 2, 60, what="submissions")
    stack.signal("scheduler", signal.SIGKILL)
    stack.start("scheduler")
    poll(lambda: all((out / f"take{i}.txt").exists() for i in range(3)), 180, what="every export")
    assert sorted(j["label"] for j in watcher_jobs(stack)) == ["take0.wav", "take1.wav", "take2.wav"]
    assert len(list(out.iterdir())) == 6


@pytest.fixture
def every_format_watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    folder = Path(tmp_path_factory.mktemp("watch"))
    settings = {
        "watch.inboxes": str(folder / "inbox"),
        "watch.formats": "txt,srt,vtt,json",
        "watch.settle_s": SETTLE_S,
    }
    with Stack(settings) as stack:
        stack.start("scheduler", "ingest", "transcriber", "watcher")
        stack.wait_ready(roles=("ingest", "transcriber", "watcher"))
        yield stack, folder


def test_five_formats_some_copied_slowly_and_bad_files_beside_them(
    every_format_watched: tuple[Stack, Path], tmp_path: Path
) -> None:
    stack, folder = every_format_watched
    inbox, out, done, failed = (folder / n for n in ("inbox", "out", "done", "failed"))
    sentences = [
        "Please open the settings menu.",
        "Open the door.",
        "Close the window.",
        "The meeting has been moved to Thursday.",
        "Turn on the lights in the kitchen.",
    ]
    made = [every_format(speech_pcm(s), tmp_path, f"s{i}")[i] for i, s in enumerate(sentences)]
    for i, path in enumerate(made):  # wav, flac, mp3, m4a, mp4 (video)
        if i % 2:
            copy_slowly(path, inbox / path.name)
        else:
            drop_by_rename(path, inbox, path.name)
    (inbox / "slides.pdf.mp3").write_text("%PDF-1.4 not audio\n" * 100)
    (inbox / "empty.wav").write_bytes(b"")
    flac = with_sox(speech_pcm("Open the door. Close the window."), tmp_path / "cut.flac")
    (inbox / "cut.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])  # truncated

    expected = [f"{p.stem}.{fmt}" for p in made for fmt in ("txt", "srt", "vtt", "json")]
    poll(lambda: all((out / name).exists() for name in expected), 240, what="every output")
    poll(lambda: len(list(failed.glob("*.error.txt"))) == 3, 120, what="three error files")
    for path, sentence in zip(made, sentences, strict=True):
        text = (out / f"{path.stem}.txt").read_text().lower()
        assert sentence.lower().split()[1] in text, (path.name, text)
    assert sorted(p.name for p in done.iterdir()) == sorted(p.name for p in made)
    assert sorted(p.name for p in failed.iterdir() if not p.name.endswith(".error.txt")) == [
        "cut.flac",
        "empty.wav",
        "slides.pdf.mp3",
    ]
    for name in ("cut.flac", "empty.wav", "slides.pdf.mp3"):
        reason = (failed / f"{name}.error.txt").read_text()
        assert "could not be transcribed" in reason and len(reason) > 60, reason
    labels = [j["label"] for j in watcher_jobs(stack)]
    assert sorted(labels) == sorted([p.name for p in made] + ["cut.flac", "empty.wav", "slides.pdf.mp3"])


def test_say_during_a_batch_comes_back_within_one_window(
    every_format_watched: tuple[Stack, Path], long_audio: Path, utterance: tuple[Path, str]
) -> None:
    stack, folder = every_format_watched
    for i in range(2):
        drop_by_rename(long_audio, folder / "inbox", f"lecture{i}.flac")
    poll(lambda: any(j["state"] == "running" for j in watcher_jobs(stack)), 120, what="the batch to run")
    wav, sentence = utterance
    said = stack.cli("say", str(wav), "--json")
    assert said.returncode == 0, said.stderr
    reply = json.loads(said.stdout)
    assert reply["text"].strip(" .").lower() == sentence.strip(" .").lower()
    windows = [c for c, _ in stack_chunk_timings(stack)]
    own = sum(window_compute_s(stack, reply["job"]["id"]))
    # at most the window in flight, then its own window, plus 0.5 s of round trips
    bound = max(windows) + own + 0.5
    assert reply["latency_s"] <= bound, (reply["latency_s"], max(windows), own)
    assert any(j["state"] != "completed" for j in watcher_jobs(stack)), "the batch was still running"


def stack_chunk_timings(stack: Stack) -> list[tuple[float, float]]:
    from actors.hub.store import Store

    store = Store(stack.cfg.store_path)
    try:
        return store.chunk_timings(1000)
    finally:
        store.close()


def test_an_idle_watcher_exports_as_soon_as_the_job_completes(
    watched: tuple[Stack, Path], tmp_path: Path
) -> None:
    """Completion comes through the events, not the 5 s safety poll: the transcript is
    written within 1 s of the job's completion, however long the model took."""
    stack, folder = watched
    wav = espeak_wav("Open the door.", tmp_path / "door.wav")
    drop_by_rename(wav, folder / "inbox", "door.wav")
    exported = folder / "out" / "door.txt"
    poll(exported.exists, 120, interval_s=0.01, what="the transcript")
    job = next(j for j in watcher_jobs(stack) if j["label"] == "door.wav")
    delay_s = exported.stat().st_mtime - job["finished"]
    # st_mtime comes from the kernel's coarse clock, a tick (up to 10 ms) behind time.time()
    assert -0.02 <= delay_s < 1.0, f"exported {delay_s:.3f} s after the job completed"


def test_files_present_at_start_go_in_name_order_and_names_never_collide(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    folder = Path(tmp_path_factory.mktemp("watch"))
    inbox = folder / "inbox"
    inbox.mkdir()
    espeak_wav("Please open the settings menu.", inbox / "b.wav")
    espeak_wav("Open the door.", inbox / "a.wav")
    with_sox(speech_pcm("Turn on the lights in the kitchen."), inbox / "a.mp3")  # same stem
    settings = {"watch.inboxes": str(inbox), "watch.formats": "txt", "watch.settle_s": SETTLE_S}
    with Stack(settings) as stack:
        stack.start("scheduler", "ingest", "transcriber")
        stack.wait_ready()
        sub = stack.subscribe(b"watch.")
        stack.start("watcher")
        out = folder / "out"
        poll(lambda: len(list(out.glob("*.txt"))) == 3, 120, what="three transcripts")
        jobs = sorted(watcher_jobs(stack), key=lambda j: j["created"])
        assert [j["label"] for j in jobs] == ["a.mp3", "a.wav", "b.wav"]
        assert "kitchen" in (out / "a.txt").read_text().lower()
        assert "door" in (out / "a-2.txt").read_text().lower()
        assert "settings" in (out / "b.txt").read_text().lower()
        events = collect_events(sub, lambda ev: sum(e.kind == "file_exported" for e in ev) >= 3, 30)
        kinds = [e.kind for e in events]
        for kind in ("file_seen", "file_submitted", "file_exported"):
            assert kinds.count(kind) == 3, kinds
        sub.close(linger=0)


def test_sources_left_in_place_are_never_done_twice(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = Path(tmp_path_factory.mktemp("watch"))
    inbox = folder / "inbox"
    settings = {
        "watch.inboxes": str(inbox),
        "watch.formats": "txt",
        "watch.settle_s": SETTLE_S,
        "watch.move_done": False,
    }
    with Stack(settings) as stack:
        stack.start("scheduler", "ingest", "transcriber", "watcher")
        stack.wait_ready(roles=("ingest", "transcriber", "watcher"))
        drop_by_rename(espeak_wav("Open the door.", folder / "door.wav"), inbox, "door.wav")
        poll(lambda: (folder / "out" / "door.txt").exists(), 60, what="the transcript")
        stack.restart("watcher")
        stack.wait_ready(roles=("watcher",))
        status = json.loads(stack.cli("watch", "status", "--json").stdout)
        assert {f["name"]: f["state"] for f in status["inboxes"][0]["files"]} == {"door.wav": "exported"}
        assert (inbox / "door.wav").exists() and len(watcher_jobs(stack)) == 1
        assert sorted(p.name for p in (folder / "out").iterdir()) == ["door.txt"]


def test_chaos_outputs_are_never_seen_half_written(watched: tuple[Stack, Path], tmp_path: Path) -> None:
    """The watcher, then the scheduler, SIGKILLed while a batch runs; a reader polling the
    outbox every few ms never sees a file that later changes."""
    stack, folder = watched
    inbox, out = folder / "inbox", folder / "out"
    first_seen: dict[str, bytes] = {}
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for path in out.iterdir() if out.exists() else []:
                if not path.name.startswith(".") and path.name not in first_seen:
                    first_seen[path.name] = path.read_bytes()
            time.sleep(0.003)

    watcher_thread = threading.Thread(target=reader, daemon=True)
    watcher_thread.start()
    sentences = [
        "Open the door.",
        "Close the window.",
        "Please open the settings menu.",
        "Turn on the lights in the kitchen.",
        "The meeting has been moved to Thursday.",
    ]
    for i, sentence in enumerate(sentences):
        drop_by_rename(espeak_wav(sentence, tmp_path / f"{i}.wav"), inbox, f"part{i}.wav")
    poll(lambda: len(watcher_jobs(stack)) >= 1, 60, what="a submission")
    stack.signal("watcher", signal.SIGKILL)
    poll(lambda: any(j["state"] == "completed" for j in watcher_jobs(stack)), 60, what="a job to finish")
    stack.signal("scheduler", signal.SIGKILL)
    stack.start("scheduler", "watcher")
    names = [f"part{i}.{fmt}" for i in range(5) for fmt in ("txt", "json")]
    poll(lambda: all((out / n).exists() for n in names), 240, what="every output")
    stop.set()
    watcher_thread.join(5)
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # nothing twice, nothing missing
    assert sorted(j["label"] for j in watcher_jobs(stack)) == [f"part{i}.wav" for i in range(5)]
    for name, seen in first_seen.items():
        assert seen == (out / name).read_bytes(), f"{name} was visible before it was complete"


def test_recursive_inbox_mtime_order_and_excluded_names(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    folder = Path(tmp_path_factory.mktemp("watch"))
    inbox = folder / "inbox"
    (inbox / "2026" / "march").mkdir(parents=True)
    espeak_wav("Open the door.", inbox / "2026" / "march" / "zeta.wav")
    espeak_wav("Turn on the lights in the kitchen.", inbox / "alpha.wav")
    os.utime(inbox / "alpha.wav", (2_000_000_000, 2_000_000_000))  # newer than zeta
    shutil.copyfile(
        espeak_wav("Close the window.", tmp_path / "half.wav"), inbox / "half.wav.part"
    )  # downloading
    settings = {
        "watch.inboxes": str(inbox),
        "watch.formats": "txt",
        "watch.settle_s": SETTLE_S,
        "watch.recursive": True,
        "watch.order": "mtime",
    }
    with Stack(settings) as stack:
        stack.start("scheduler", "ingest", "transcriber", "watcher")
        stack.wait_ready(roles=("ingest", "transcriber", "watcher"))
        out = folder / "out"
        poll(lambda: (out / "zeta.txt").exists() and (out / "alpha.txt").exists(), 120, what="both")
        jobs = sorted(watcher_jobs(stack), key=lambda j: j["created"])
        assert [j["label"] for j in jobs] == ["zeta.wav", "alpha.wav"]  # oldest first
        assert (inbox / "half.wav.part").exists() and not (out / "half.txt").exists()
