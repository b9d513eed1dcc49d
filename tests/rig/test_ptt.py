"""Push-to-talk end to end, driven as a person would on the headless rig (tests/support/rig.py): a real
Xvfb keyboard (xdotool), a real PulseAudio microphone read through sounddevice, the real
hotkey, audio and deliver actors, the real stack and tiny.en, and the real X clipboard."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protocol.control import Cancel, JobStatus, ListJobs, Ping, Stats
from protocol.vocab import FINAL_STATES
from tests.support.harness import SPEECH, poll, transcript, window_compute_s
from tests.support.keylistener import KeyListener
from tests.support.pttdriver import KEY, PushToTalkRig, wait_kind
from tests.support.rig import Display, load_pcm, speech_pcm
from tests.support.scoring import wer

pytestmark = [pytest.mark.stack, pytest.mark.rig]

SENTENCE = "We will meet again next week."
PLEASE = "Please open the settings menu."
LONGER = "Please open the settings menu and select the audio tab."
KITCHEN = "Turn on the lights in the kitchen."
# espeak-ng sentences that bare tiny.en transcribes exactly wherever they start in the
# utterance (SENTENCE: 40 of 40 starts 5 ms apart); PLEASE flips to "sanding" at 3 of 40, so
# it serves only the first- and last-word tests


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture
def events(rig: PushToTalkRig) -> Iterator[Any]:
    sub = rig.stack.subscribe(b"")
    poll(lambda: rig.stack.client.call(Ping()) and True, 5)  # subscription settles while we ping
    yield sub
    sub.close(linger=0)


def test_hold_speak_release_puts_the_sentence_in_the_clipboard_and_history(
    rig: PushToTalkRig, events: Any
) -> None:
    d = rig.dictate(speech_pcm(SENTENCE, pad_s=0.0), lead_s=0.05)  # speech starts 50 ms after the press
    text, seen = rig.clipboard_text(d)
    assert words(text) == words(SENTENCE)  # first and last word included
    delivered, seen_events = wait_kind(events, "delivered")
    kinds = [e.kind for e in seen_events]
    assert (
        kinds.index("recording") < kinds.index("queued") < kinds.index("completed") < kinds.index("delivered")
    )
    job = rig.stack.client.call(JobStatus(job_id=delivered.job_id))["job"]
    assert job["source"] == "ptt" and job["priority"] == "high"
    marks = job["marks"]
    for mark in ("key_down", "key_up", "submitted", "received", "dispatched", "completed", "delivered"):
        assert mark in marks, mark
    assert abs(marks["key_up"] - d.key_up) < 0.1  # the hotkey's own timestamp of the release
    entry = rig.wait_history(1)[0]
    assert entry["text"] == text and entry["model"] and entry["language"] == "en"
    assert entry["latency"]["release_to_text"] == delivered.data["latency"]["release_to_text"]
    assert seen - d.key_up < 5.0, "release to clipboard"
    out = rig.stack.cli("history", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["entries"][0]["text"] == text
    stats = rig.stack.client.call(Stats())["ptt_latency_s"]["release_to_text"]
    assert stats["count"] >= 1 and stats["p50"] is not None
    shown = rig.stack.cli("stats").stdout
    assert "push-to-talk release to text: p50" in shown and "over 1" in shown


def speak_around_the_key(rig: PushToTalkRig, press_after_s: float, release_before_s: float) -> str:
    """Start PLEASE, press the key `press_after_s` after its first sound, release it
    `release_before_s` before its last sound; return what was delivered."""
    pcm = speech_pcm(PLEASE, pad_s=0.0)
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > 300)[0]
    first_sound, last_sound = loud[0] / 16000, loud[-1] / 16000
    marker = rig.mark_clipboard()
    written = rig.mic.play(pcm)
    poll(lambda: time.time() >= written + first_sound + press_after_s, 5, interval_s=0.002)
    rig.display.key_down(KEY)
    poll(lambda: time.time() >= written + last_sound - release_before_s, 10, interval_s=0.002)
    rig.display.key_up(KEY)
    rig.mic.wait_played()
    return str(poll(lambda: (t := rig.display.clipboard()) != marker and t, 60, what="clipboard"))


def test_preroll_keeps_the_first_word_spoken_before_the_key(rig: PushToTalkRig) -> None:
    """Speech starts 250 ms before the press: the 300 ms pre-roll keeps "Please"; without a
    pre-roll (the control) the first word is lost."""
    assert words(speak_around_the_key(rig, press_after_s=0.25, release_before_s=-0.3))[0] == "please"
    rig.restart("audio", **{"audio.preroll_ms": 0})
    try:
        clipped = speak_around_the_key(rig, press_after_s=0.25, release_before_s=-0.3)
        assert words(clipped)[0] != "please", clipped
    finally:
        rig.restart("audio", **{"audio.preroll_ms": 300})


def test_postroll_keeps_the_last_word_after_an_early_release(rig: PushToTalkRig) -> None:
    """The key comes up 220 ms before the last sound: the 200 ms post-roll keeps "menu";
    without a post-roll (the control) the last word is lost."""
    assert words(speak_around_the_key(rig, press_after_s=-0.3, release_before_s=0.22))[-1] == "menu"
    rig.restart("audio", **{"audio.postroll_ms": 0})
    try:
        clipped = speak_around_the_key(rig, press_after_s=-0.3, release_before_s=0.22)
        assert words(clipped)[-1] != "menu", clipped
    finally:
        rig.restart("audio", **{"audio.postroll_ms": 200})


def test_a_real_recording(rig: PushToTalkRig, real_speech: Path) -> None:
    pcm = load_pcm(real_speech / "clips" / "whisper_jfk" / "jfk.flac")
    d = rig.dictate(pcm)
    text, _ = rig.clipboard_text(d)
    reference = (real_speech / "clips" / "whisper_jfk" / "jfk.ref.txt").read_text()
    assert words(text) == words(reference)
    assert any(e["text"] == text for e in rig.wait_history(1))


def test_tap_shorter_than_min_hold_is_dropped(rig: PushToTalkRig, events: Any) -> None:
    before = len(rig.stack.client.call(ListJobs(limit=1000))["jobs"])
    rig.display.key_down(KEY)
    rig.display.key_up(KEY)  # a few ms: far below hotkey.min_hold_ms (150)
    dropped, _ = wait_kind(events, "dropped", reason="tap")
    assert dropped.job_id == "" and dropped.data["utterance"]
    assert len(rig.stack.client.call(ListJobs(limit=1000))["jobs"]) == before


def test_silent_recording_is_dropped_not_hallucinated(rig: PushToTalkRig, events: Any) -> None:
    before = len(rig.stack.client.call(ListJobs(limit=1000))["jobs"])
    rig.dictate(np.zeros(16000 * 2, np.int16))  # 2 s of digital silence, key held throughout
    dropped, _ = wait_kind(events, "dropped", reason="no_speech")
    assert dropped.data["duration_s"] >= 2.0 and dropped.data["speech_s"] < 0.25
    assert len(rig.stack.client.call(ListJobs(limit=1000))["jobs"]) == before


def test_cli_ptt_start_stop_from_a_shell(rig: PushToTalkRig, events: Any) -> None:
    marker = rig.mark_clipboard()
    out = rig.stack.cli("ptt", "start", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outcome"] == "started"
    again = rig.stack.cli("ptt", "start", "--json")  # idempotent, like key autorepeat
    assert json.loads(again.stdout)["outcome"] == "ignored"
    rig.mic.play(speech_pcm(LONGER))
    rig.mic.wait_played()
    status = rig.stack.cli("ptt", "status")
    assert status.returncode == 0 and "recording" in status.stdout and "default" in status.stdout
    assert rig.stack.cli("ptt", "stop").returncode == 0
    text = poll(lambda: (t := rig.display.clipboard()) != marker and t, 60, what="clipboard")
    assert words(text) == words(LONGER)


def test_toggle_mode(rig: PushToTalkRig, events: Any) -> None:
    rig.restart("hotkey", **{"hotkey.mode": "toggle"})
    try:
        marker = rig.mark_clipboard()
        rig.display.key_down(KEY)
        rig.display.key_up(KEY)  # released at once: still recording in toggle mode
        wait_kind(events, "recording", state="started")
        rig.mic.play(speech_pcm("The meeting has been moved to Thursday."))
        rig.mic.wait_played()
        rig.display.key_down(KEY)
        rig.display.key_up(KEY)
        wait_kind(events, "recording", state="stopped")
        text = poll(lambda: (t := rig.display.clipboard()) != marker and t, 60, what="clipboard")
        assert words(text) == words("The meeting has been moved to Thursday.")
    finally:
        rig.restart("hotkey", **{"hotkey.mode": "hold"})


def test_key_autorepeat_gives_one_recording(rig: PushToTalkRig, events: Any, tmp_path: Path) -> None:
    repeating = Display(autorepeat=True).start()
    hotkey_display = rig.stack.env["DISPLAY"]
    watcher = KeyListener(repeating.env, tmp_path / "watch.py")  # sees what the hotkey sees
    try:
        rig.stack.env["DISPLAY"] = repeating.name  # the hotkey listens there; deliver stays put
        rig.restart("hotkey")
        marker = rig.mark_clipboard()
        repeating.key_down(KEY)
        rig.mic.play(speech_pcm(SENTENCE + " " + SENTENCE))
        rig.mic.wait_played()  # about 2.5 s held: dozens of repeated presses
        repeating.key_up(KEY)
        text = poll(lambda: (t := rig.display.clipboard()) != marker and t, 60, what="clipboard")
        spaces = [e for e in watcher.drain() if e.get("press") == "space"]
        assert len(spaces) >= 10, "the X server did not autorepeat"
        _, seen = wait_kind(events, "delivered")
        starts = [e for e in seen if e.kind == "recording" and e.data["state"] == "started"]
        queued = [e for e in seen if e.kind == "queued"]
        assert len(starts) == 1 and len(queued) == 1
        assert words(text) == words(SENTENCE + " " + SENTENCE)
    finally:
        rig.stack.env["DISPLAY"] = hotkey_display
        rig.restart("hotkey")
        watcher.close()
        repeating.stop()


def test_under_file_load_ptt_comes_first_and_the_file_is_unchanged(
    rig: PushToTalkRig, events: Any, long_audio: Path, clean_transcript: list[tuple[float, float, str]]
) -> None:
    """A low-priority file runs; an utterance arrives within its own window, one file window
    and the post-roll (model times measured in this run, plus 0.5 s), and the file's
    transcript is the clean run's."""
    file_job = rig.stack.submit_file(long_audio, priority="low")
    filler = rig.stack.submit_file(long_audio, priority="low")  # keeps the transcriber busy longer
    _, before = wait_kind(events, "dispatched", timeout_s=60, job_id=file_job)
    d = rig.dictate(speech_pcm(SENTENCE))
    text, _ = rig.clipboard_text(d)
    assert words(text) == words(SENTENCE)
    delivered, after = wait_kind(events, "delivered")
    seen = before + after
    dispatches = [(i, e.job_id) for i, e in enumerate(seen) if e.kind == "dispatched"]
    ptt_at = next(i for i, job in dispatches if job == delivered.job_id)
    assert any(job in (file_job, filler) for i, job in dispatches if i > ptt_at), (
        "file windows still ran after the utterance: it overtook work in progress"
    )
    done = rig.stack.wait_job(file_job, 600)
    assert done["state"] == "completed"
    file_window_s = max(window_compute_s(rig.stack, file_job))
    own_s = sum(window_compute_s(rig.stack, delivered.job_id))
    latency = delivered.data["latency"]["release_to_text"]
    assert latency <= own_s + file_window_s + 0.2 + 0.5, (latency, own_s, file_window_s)
    assert transcript(rig.stack, file_job) == clean_transcript
    if rig.stack.job(filler)["state"] not in FINAL_STATES:
        rig.stack.client.call(Cancel(job_id=filler))  # the next test starts idle


def test_microphone_unplugged_mid_recording_recovers_without_restart(rig: PushToTalkRig, events: Any) -> None:
    pid = rig.stack.procs["audio"].pid
    marker = rig.mark_clipboard()
    rig.display.key_down(KEY)
    rig.mic.play(speech_pcm(KITCHEN))
    rig.mic.wait_played()
    rig.mic.unload_source()
    wait_kind(events, "device", state="lost", timeout_s=30)
    health = rig.stack.client.call(Ping(actor="audio"))["workers"][0]
    assert health["health"] == "degraded" and "microphone" in health["detail"]
    rig.display.key_up(KEY)  # what was recorded before the loss is still transcribed
    text = poll(lambda: (t := rig.display.clipboard()) != marker and t, 60, what="clipboard")
    assert words(text) == words(KITCHEN)
    refused = rig.stack.cli("ptt", "start")
    assert refused.returncode == 1 and "microphone is unavailable" in refused.stderr
    rig.mic.load_source()
    wait_kind(events, "device", state="recovered", timeout_s=30)
    assert rig.stack.procs["audio"].pid == pid and rig.stack.procs["audio"].poll() is None
    assert rig.stack.client.call(Ping(actor="audio"))["workers"][0]["health"] == "ok"
    d = rig.dictate(speech_pcm(SENTENCE))
    text, _ = rig.clipboard_text(d)
    assert words(text) == words(SENTENCE)


def test_long_utterance_is_capped_at_max_length(rig: PushToTalkRig, events: Any) -> None:
    rig.restart("audio", **{"audio.max_utterance_s": 2.0})
    try:
        rig.display.key_down(KEY)
        rig.mic.play(speech_pcm("The quick brown fox jumps over the lazy dog. " * 2))
        _, seen = wait_kind(events, "recording", state="capped", timeout_s=30)
        if not any(e.kind == "queued" for e in seen):  # submitted at the cap, key still held
            seen += wait_kind(events, "queued")[1]
        queued = next(e for e in seen if e.kind == "queued")
        rig.mic.wait_played()
        rig.display.key_up(KEY)  # the recording already ended: this stop is ignored
        assert queued.data["source"] == "ptt" and queued.data["duration_s"] <= 2.0
        assert rig.stack.wait_job(queued.job_id, 60)["state"] == "completed"
    finally:
        rig.restart("audio", **{"audio.max_utterance_s": 300.0})


def test_history_search_export_clear(rig: PushToTalkRig, tmp_path: Path) -> None:
    entries = rig.history(limit=0)
    assert entries, "earlier tests dictated"
    word = words(entries[0]["text"])[0]
    found = json.loads(rig.stack.cli("history", "--search", word.upper(), "--json").stdout)
    assert found["entries"] and all(word in e["text"].lower() for e in found["entries"])
    assert json.loads(rig.stack.cli("history", "--limit", "1", "--json").stdout)["entries"] == entries[:1]
    out = tmp_path / "history.json"
    assert rig.stack.cli("history", "export", "--format", "json", "--output", str(out)).returncode == 0
    assert [e["text"] for e in json.loads(out.read_text())] == [e["text"] for e in entries]
    txt = rig.stack.cli("history", "export", "--format", "txt").stdout
    assert txt.count("\n") == len(entries) and entries[0]["text"] in txt.splitlines()[-1]
    cleared = rig.stack.cli("history", "clear", "--json")
    assert json.loads(cleared.stdout)["deleted"] == len(entries)
    assert rig.history() == [] and "no history" in rig.stack.cli("history").stdout


def test_history_retention_is_enforced(rig: PushToTalkRig, events: Any) -> None:
    rig.restart("scheduler", **{"history.max_entries": 1})
    rig.stack.wait_ready(roles=("transcriber", "audio", "hotkey", "deliver"))
    try:
        for sentence in (SENTENCE, KITCHEN):
            d = rig.dictate(speech_pcm(sentence))
            text, _ = rig.clipboard_text(d)
            newest = poll(lambda t=text: (h := rig.history(limit=0)) and h[0]["text"] == t and h, 30)
            assert len(newest) == 1, newest  # max_entries = 1
    finally:
        rig.restart("scheduler", **{"history.max_entries": 10000})
        rig.stack.wait_ready(roles=("transcriber", "audio", "hotkey", "deliver"))


def test_paste_mode_pastes_into_the_focused_application_and_restores_the_clipboard(
    rig: PushToTalkRig, tmp_path: Path
) -> None:
    rig.restart("deliver", **{"deliver.mode": "paste", "deliver.restore_after_ms": 300})
    app = KeyListener(rig.display.env, tmp_path / "app.py")  # stands in for the focused window
    try:
        rig.display.set_clipboard("what the user had copied")
        rig.display.key_down(KEY)
        rig.mic.play(speech_pcm(SENTENCE))
        rig.mic.wait_played()
        rig.display.key_up(KEY)
        pasted = app.until(lambda e: "pasted" in e, timeout_s=60)[-1]["pasted"]
        assert words(pasted) == words(SENTENCE)
        poll(lambda: rig.display.clipboard() == "what the user had copied", 10, what="the clipboard restored")
    finally:
        app.close()
        rig.restart("deliver", **{"deliver.mode": "clipboard"})


def test_type_mode_types_at_the_cursor(rig: PushToTalkRig, tmp_path: Path) -> None:
    rig.restart("deliver", **{"deliver.mode": "type"})
    app = KeyListener(rig.display.env, tmp_path / "app.py")
    try:
        d = rig.dictate(speech_pcm(SENTENCE))
        text, _ = rig.clipboard_text(d)  # the clipboard gets it too
        presses = app.until(lambda e: e.get("press") == text[-1], timeout_s=60)
        typed = "".join(
            " " if e["press"] == "space" else e["press"]
            for e in presses
            if "press" in e and (len(e["press"]) == 1 or e["press"] == "space")
        )
        assert typed.endswith(text)  # after the hotkey's own space
    finally:
        app.close()
        rig.restart("deliver", **{"deliver.mode": "clipboard"})


def test_an_utterance_made_while_the_scheduler_is_down_is_kept_and_transcribed_once(
    rig: PushToTalkRig,
) -> None:
    rig.stack.signal("scheduler", signal.SIGKILL)
    d = rig.dictate(speech_pcm(SENTENCE))  # hotkey and audio work without the scheduler
    poll(lambda: rig.stack.log_events("audio", "submit_failed"), 30, what="the audio actor to keep it")
    rig.stack.start("scheduler")
    rig.stack.wait_ready(roles=("ingest", "transcriber", "audio", "hotkey", "deliver"))
    text, _ = rig.clipboard_text(d)
    assert words(text) == words(SENTENCE)
    label = rig.stack.log_events("audio", "submitted")[-1]["label"]
    jobs = rig.stack.client.call(ListJobs(limit=1000))["jobs"]
    assert [j["label"] for j in jobs].count(label) == 1


def test_a_dictation_longer_than_one_window_is_windowed_like_a_file(rig: PushToTalkRig, events: Any) -> None:
    """40 s held: more than one 30 s Whisper window, one job, the whole text in order.

    With the real speech data present, tests/rig/test_drain_ptt.py's 90 s streamed dictation
    asserts all of this and more (three pieces or more, no clip dropped, WER within 3 points
    of bare), so this one runs only where that one skips: a clone without ../shared/data."""
    if (SPEECH / "manifest.tsv").exists():
        pytest.skip("covered by test_drain_ptt's 90 s dictation of real clips, which runs here")
    pcm = np.concatenate([speech_pcm(s) for s in (SENTENCE, LONGER, KITCHEN) * 6])[: 40 * 16000]
    from faster_whisper import WhisperModel

    from actors.workers.model import embedded_model_path

    bare_segments, _ = WhisperModel(embedded_model_path(), device="cpu", compute_type="int8").transcribe(
        pcm.astype(np.float32) / 32768, language="en", beam_size=5
    )
    bare = " ".join(s.text.strip() for s in bare_segments)
    d = rig.dictate(pcm)
    text, _ = rig.clipboard_text(d, timeout_s=120)
    job = rig.stack.client.call(ListJobs(limit=1))["jobs"][0]  # the newest: this dictation
    assert job["source"] == "ptt" and job["chunks_done"] >= 2 and job["duration_s"] > 40
    assert wer(bare, text) <= 0.05, (bare, text)
