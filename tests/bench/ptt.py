"""Push-to-talk benchmark through the real rig: key release to text in the clipboard.

The whole stack runs on an Xvfb display with a PulseAudio virtual microphone (tests/support/rig.py),
one transcriber: the benchmark presses ctrl+space with xdotool, starts real speech 50 ms
later, releases the key when it has played, and reads the X clipboard with xclip until the
text is there (every 0.1 s, and every 2 ms once the stack announces a delivery: polling
xclip flat out would take a quarter of a core from the transcriber). Three parts (--parts,
default all), in one rig, in this order:

base (the push-to-talk figures; audio.drain and audio.stream at their defaults, on):
1. idle: N real clips (2-10 s, from ../shared/data/speech, picked with the seed):
   release-to-clipboard (seen with xclip) and release_to_text (the stack's own marks:
   the hotkey's release timestamp to the deliver actor's), p50/p95.
2. load: the same clips while the 237 s reading transcribes at low priority (two copies
   unfinished at every key press), so a window is always in flight; each key press waits a
   seeded random 0-2 s first, so it lands anywhere in a window. Target: load p95 <= idle p95
   + the file's window compute p95 (the core issue's preemption bound).
3. bare: bare faster-whisper `transcribe()` of each clip's samples (same model, language en,
   beam 5, warm), the floor for release-to-text; ratio = idle p50 / bare p50.
4. first_word: the first word of the delivered text must equal the first word bare
   faster-whisper finds in the clip (and the reference's).

drain (SPEC.md 6.4): idle and load as above once with `audio.drain` on (the base runs) and
once off (the audio actor restarted with the setting): release-to-clipboard p50/p95 per
phase, the ratio load/idle, and how many utterances found the model busy with another job's
window at the key release (the job's `busy_at_key_up` mark, SPEC.md 12.6).

streaming (SPEC.md 12.4): utterances of about 10, 30 and 90 s (--sizes) of real speech, clips
joined with 0.5 s pauses (seeded; the references joined), --stream-reps different ones per
size, each dictated with `audio.stream` on and off: release-to-clipboard, the pieces sent,
WER of the text; then, with the stack stopped, bare faster-whisper on the exact utterance the
audio actor recorded (`audio.keep_dir`): what a design that transcribes only after the
release pays, its WER, and the ratio release_to_text / bare time.

    .venv/bin/python tests/bench/ptt.py [--parts base,drain,streaming] [--clips N]
        [--sizes 10,30,90] [--stream-reps R] [--seed S] [--out FILE]

Progress goes to stderr; the results, one JSON document, to stdout (and to FILE).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from actors.hub.jobbook import percentile  # noqa: E402
from actors.runtime.client import read_events  # noqa: E402
from protocol.control import Cancel, Stats  # noqa: E402
from protocol.vocab import FINAL_STATES  # noqa: E402
from tests.bench.core import load_bare_model, machine_info, print_json, rnd, say  # noqa: E402
from tests.support.harness import LONG_FLAC, SPEECH, collect_events, poll  # noqa: E402
from tests.support.pttdriver import Dictation, PushToTalkRig  # noqa: E402
from tests.support.replay import GAP_S, long_utterance, manifest_clips  # noqa: E402
from tests.support.rig import RATE_HZ, load_pcm  # noqa: E402
from tests.support.scoring import wer  # noqa: E402

PARTS = ("base", "drain", "streaming")
LEAD_S = 0.05
CLIP_MIN_S, CLIP_MAX_S = 2.0, 10.0
LOAD_JITTER_S = 2.0  # under load a key press waits a random 0-2 s: about one window's compute
LOAD_DEPTH = 2  # unfinished file jobs under load: ~20 s of windows, more than a dictation takes
TEXT_TIMEOUT_S = 60.0
SLOW_READ_S = 0.1  # the clipboard is read this often while no delivery was announced...
FAST_READ_S = 0.002  # ...and this often for FAST_FOR_S after a job.delivered event
FAST_FOR_S = 0.5
LONG_TEXT_TIMEOUT_S = 180.0


def pick_clips(count: int, seed: int) -> list[dict[str, Any]]:
    rows = [r for r in manifest_clips() if CLIP_MIN_S <= float(r["duration_s"]) <= CLIP_MAX_S]
    random.Random(seed).shuffle(rows)
    return [{"file": r["file"], "reference": r["reference"]} for r in rows[:count]]


def first_word(text: str) -> str:
    from whisper_normalizer.english import EnglishTextNormalizer

    words = EnglishTextNormalizer()(text).split()
    return words[0] if words else ""


def bare_transcribe(pcms: list[np.ndarray], condition: bool = True) -> list[tuple[float, str]]:
    """Bare faster-whisper on each recording, warm (language en, beam 5; conditioned on the
    previous text, faster-whisper's default, unless `condition` is false, as in the stack's
    default options): seconds and text."""
    model = load_bare_model()
    model.transcribe(pcms[0].astype(np.float32) / 32768, language="en", beam_size=5)  # warm up
    out = []
    for pcm in pcms:
        started = time.perf_counter()
        segments, _ = model.transcribe(
            pcm.astype(np.float32) / 32768,
            language="en",
            beam_size=5,
            condition_on_previous_text=condition,
        )
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        out.append((time.perf_counter() - started, text))
    del model
    return out


def clipboard_text(rig: PushToTalkRig, delivered: Any, d: Dictation, timeout_s: float) -> tuple[str, float]:
    """The delivered text and when xclip first showed it. Polling xclip every few ms (as
    PushToTalkRig.clipboard_text does) takes about a quarter of a core from the transcriber
    on 2 cores; here the clipboard is read every SLOW_READ_S, and every FAST_READ_S for
    FAST_FOR_S after each `job.delivered` event (published once the text is in the clipboard;
    a stale one only costs a few reads)."""
    deadline = time.monotonic() + timeout_s
    fast_until = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        wait_s = FAST_READ_S if now < fast_until else SLOW_READ_S
        for event in read_events(delivered, min(wait_s, max(0.0, deadline - now))):
            if event.kind == "delivered":
                fast_until = time.monotonic() + FAST_FOR_S
                break
        text = rig.display.clipboard()
        if text and text != d.marker:
            return text, time.time()
    raise TimeoutError(f"no text in the clipboard in {timeout_s} s")


def dictate(
    rig: PushToTalkRig,
    delivered: Any,
    pcm: np.ndarray,
    reference: str,
    name: str,
    phase: str,
    timeout_s: float,
) -> dict[str, Any]:
    """One dictation: hold, speak `pcm`, release, wait for the clipboard; its measures."""
    audio_s = len(pcm) / RATE_HZ
    before = len(rig.history(limit=0))
    d = rig.dictate(pcm, lead_s=LEAD_S, wait_s=audio_s + 30)
    try:
        text, seen = clipboard_text(rig, delivered, d, timeout_s)
    except TimeoutError:  # counted, not fatal: the summary says how many
        say(f"{phase}: {name}: no text in {timeout_s:.0f} s")
        return {"file": name, "audio_s": rnd(audio_s), "error": f"no text in {timeout_s:.0f} s"}
    entry = rig.wait_history(before + 1)[0]
    marks = rig.stack.job(entry["job_id"])["marks"]
    say(f"{phase}: {name} {audio_s:.1f} s -> {seen - d.key_up:.2f} s")
    return {
        "file": name,
        "audio_s": rnd(audio_s),
        "job_id": entry["job_id"],
        "release_to_clipboard_s": rnd(seen - d.key_up),
        "latency": entry["latency"],
        "busy_at_key_up": marks.get("busy_at_key_up"),
        "text": text,
        "wer": rnd(wer(reference, text), 4),
    }


def summary(all_results: list[dict[str, Any]]) -> dict[str, Any]:
    results = [r for r in all_results if "error" not in r]
    seen = [r["release_to_clipboard_s"] for r in results]
    marks = [r["latency"]["release_to_text"] for r in results if "release_to_text" in r["latency"]]
    busy = [r["busy_at_key_up"] for r in results if r.get("busy_at_key_up") is not None]
    return {
        "release_to_clipboard_s": {"p50": rnd(percentile(seen, 50)), "p95": rnd(percentile(seen, 95))},
        "release_to_text_s": {"p50": rnd(percentile(marks, 50)), "p95": rnd(percentile(marks, 95))},
        "count": len(results),
        "failed": len(all_results) - len(results),
        "wer_mean": rnd(sum(r["wer"] for r in results) / len(results), 4) if results else None,
        "busy_at_key_up": {"busy": int(sum(busy)), "of": len(busy)},
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return rnd(a / b, 3) if a is not None and b else None


# --- base and drain ---------------------------------------------------------------------------


def keep_load(rig: PushToTalkRig, load_jobs: list[str]) -> None:
    """Top the unfinished low-priority file jobs up to LOAD_DEPTH, so the model never runs out
    of file windows during a dictation (with drain on or off alike)."""
    unfinished = [j for j in load_jobs if rig.stack.job(j)["state"] not in FINAL_STATES]
    for _ in range(LOAD_DEPTH - len(unfinished)):
        load_jobs.append(rig.stack.submit_file(LONG_FLAC, priority="low"))


def clip_phases(
    rig: PushToTalkRig,
    delivered: Any,
    clips: list[dict[str, Any]],
    pcms: list[np.ndarray],
    drain: bool,
    seed: int,
) -> dict[str, Any]:
    """The idle and the loaded dictations of every clip, with audio.drain on or off."""
    mode = "on" if drain else "off"
    rig.restart("audio", **{"audio.drain": str(drain).lower()})
    idle = [
        dictate(rig, delivered, pcm, c["reference"], c["file"], f"drain {mode}, idle", TEXT_TIMEOUT_S)
        for c, pcm in zip(clips, pcms, strict=True)
    ]
    sub = rig.stack.subscribe(b"job.")
    load_jobs: list[str] = []
    keep_load(rig, load_jobs)
    collect_events(sub, lambda ev: any(e.kind == "dispatched" for e in ev), 60)
    sub.close(linger=0)
    jitter = random.Random(f"{seed}-load")
    loaded = []
    for clip, pcm in zip(clips, pcms, strict=True):
        keep_load(rig, load_jobs)
        time.sleep(jitter.uniform(0, LOAD_JITTER_S))  # a moment in the window, not a wait for one
        loaded.append(
            dictate(
                rig, delivered, pcm, clip["reference"], clip["file"], f"drain {mode}, load", TEXT_TIMEOUT_S
            )
        )
    for job_id in load_jobs:  # the next phase starts on an idle stack
        if rig.stack.job(job_id)["state"] not in FINAL_STATES:
            rig.stack.client.call(Cancel(job_id=job_id))
        rig.stack.wait_job(job_id, 120)
    stats = rig.stack.client.call(Stats())
    return {
        "idle": idle,
        "loaded": loaded,
        "file_jobs": len(load_jobs),
        "window_compute_p95_s": rnd(stats["chunk_compute_s"]["p95"]),
    }


def drain_summary(phases: dict[str, Any], bare_p50: float | None) -> dict[str, Any]:
    idle, load = summary(phases["idle"]), summary(phases["loaded"])
    return {
        "idle": idle,
        "load": {**load, "file_jobs": phases["file_jobs"]},
        "load_vs_idle": {
            q: ratio(load["release_to_clipboard_s"][q], idle["release_to_clipboard_s"][q])
            for q in ("p50", "p95")
        },
        "idle_release_to_text_vs_bare_p50": ratio(idle["release_to_text_s"]["p50"], bare_p50),
    }


def base_results(
    clips: list[dict[str, Any]], bare: list[tuple[float, str]], on: dict[str, Any]
) -> dict[str, Any]:
    """The push-to-talk figures (docs/benchmarks.md, "Push-to-talk") from the runs with drain on."""
    idle, loaded = on["idle"], on["loaded"]
    idle_sum, load_sum = summary(idle), summary(loaded)
    bare_s = [b[0] for b in bare]
    all_first = [
        {
            "phase": phase,
            "file": c["file"],
            "ptt": first_word(r["text"]),
            "bare": first_word(b[1]),
            "reference": first_word(c["reference"]),
        }
        for phase, results in (("idle", idle), ("load", loaded))
        for r, b, c in zip(results, bare, clips, strict=True)
        if "error" not in r
    ]
    compute_p95 = on["window_compute_p95_s"]
    bound = (idle_sum["release_to_text_s"]["p95"] or 0) + (compute_p95 or 0)
    return {
        "idle": idle_sum,
        "load": {**load_sum, "file_jobs": on["file_jobs"], "window_compute_p95_s": compute_p95},
        "bare": {
            "transcribe_s": {"p50": rnd(percentile(bare_s, 50)), "p95": rnd(percentile(bare_s, 95))},
            "ratio_idle_release_to_text_vs_bare_p50": ratio(
                idle_sum["release_to_text_s"]["p50"], percentile(bare_s, 50)
            ),
            "wer_mean": rnd(
                sum(wer(c["reference"], b[1]) for c, b in zip(clips, bare, strict=True)) / len(clips), 4
            ),
        },
        "load_bound": {
            "bound_s": rnd(bound),
            "load_p95_s": load_sum["release_to_text_s"]["p95"],
            "met": (load_sum["release_to_text_s"]["p95"] or 0) <= bound,
        },
        "first_word": {
            "same_as_bare": sum(f["ptt"] == f["bare"] for f in all_first),
            "same_as_reference": sum(f["ptt"] == f["reference"] for f in all_first),
            "bare_same_as_reference": sum(f["bare"] == f["reference"] for f in all_first),
            "of": len(all_first),
            "differences": [f for f in all_first if f["ptt"] != f["bare"]],
        },
    }


# --- streaming --------------------------------------------------------------------------------


def pieces_sent(rig: PushToTalkRig, label: str, spans: int) -> list[float]:
    """Seconds of audio in each piece the audio actor sent for the utterance `label` (its log)."""
    try:
        sent = poll(
            lambda: (
                (s := [e for e in rig.stack.log_events("audio", "submitted") if e.get("label") == label])
                and len(s) >= spans
                and s
            ),
            5,
            interval_s=0.05,
            what=f"{spans} pieces of {label} in the audio log",
        )
    except TimeoutError:
        return []
    return [rnd(e["audio_s"]) or 0.0 for e in sent]


def stream_dictations(
    rig: PushToTalkRig, delivered: Any, utterances: list[dict[str, Any]], keep_dir: Path
) -> list[dict[str, Any]]:
    """Every utterance with audio.stream on, then off; with the pieces sent and the kept audio."""
    runs = []
    for mode, stream in (("on", True), ("off", False)):
        settings = {"audio.stream": str(stream).lower(), "audio.drain": "true", "audio.keep_dir": keep_dir}
        rig.restart("audio", **settings)
        for u in utterances:
            name = f"{u['size_s']:g} s #{u['rep']}"
            r = dictate(rig, delivered, u["pcm"], u["reference"], name, f"stream {mode}", LONG_TEXT_TIMEOUT_S)
            r.update(size_s=u["size_s"], rep=u["rep"], stream=mode, files=u["files"])
            if "job_id" in r:
                job = rig.stack.job(r["job_id"])
                marks = job["marks"]
                r["pieces"] = job["spans"]
                r["pieces_s"] = pieces_sent(rig, job["label"], job["spans"])
                r["windows"] = job["chunks_done"]
                if "first_piece" in marks:
                    r["first_piece_before_release_s"] = rnd(marks["key_up"] - marks["first_piece"])
                r["kept"] = str(keep_dir / f"utterance-{job['label'].removeprefix('utterance ')}.wav")
            runs.append(r)
    return runs


def stream_bare(runs: list[dict[str, Any]], utterances: list[dict[str, Any]]) -> None:
    """Bare faster-whisper on each dictation's recorded utterance (or, if it was not kept, the
    samples played), added to its run with the ratio release_to_text / bare time."""
    played = {(u["size_s"], u["rep"]): u for u in utterances}
    pcms, sources = [], []
    for r in runs:
        kept = Path(r.get("kept", ""))
        if r.get("kept") and kept.exists():
            pcms.append(load_pcm(kept))
            sources.append("kept")
        else:
            pcms.append(played[(r["size_s"], r["rep"])]["pcm"])
            sources.append("played")
    say(f"bare faster-whisper on {len(pcms)} recorded utterances")
    unconditioned = bare_transcribe(pcms, condition=False)
    for r, pcm, source, (s, text), (_, text_same) in zip(
        runs, pcms, sources, bare_transcribe(pcms), unconditioned, strict=True
    ):
        reference = played[(r["size_s"], r["rep"])]["reference"]
        r["bare"] = {"audio": source, "audio_s": rnd(len(pcm) / RATE_HZ), "s": rnd(s), "text": text}
        r["bare"]["wer"] = rnd(wer(reference, text), 4)
        r["bare_same_options"] = {"text": text_same, "wer": rnd(wer(reference, text_same), 4)}
        r["release_to_text_vs_bare"] = ratio(r.get("latency", {}).get("release_to_text"), s)


def stream_summary(runs: list[dict[str, Any]], sizes: list[float]) -> dict[str, Any]:
    def p50(values: list[float]) -> float | None:
        return rnd(percentile(values, 50))

    def mean(values: list[float]) -> float | None:
        return rnd(sum(values) / len(values), 4) if values else None

    out: dict[str, Any] = {}
    for size in sizes:
        of_size = [r for r in runs if r["size_s"] == size]
        entry: dict[str, Any] = {"audio_s_p50": p50([r["audio_s"] for r in of_size])}
        for mode in ("on", "off"):
            all_mode = [r for r in of_size if r["stream"] == mode]
            ok = [r for r in all_mode if "error" not in r]
            seen = [r["release_to_clipboard_s"] for r in ok]
            text = [r["latency"]["release_to_text"] for r in ok if "release_to_text" in r["latency"]]
            entry[mode] = {
                "release_to_clipboard_s": {"p50": p50(seen), "max": rnd(max(seen, default=None))},
                "release_to_text_s_p50": p50(text),
                "pieces_p50": percentile([r["pieces"] for r in ok], 50),
                "wer_mean": mean([r["wer"] for r in ok]),
                "bare_s_p50": p50([r["bare"]["s"] for r in ok]),
                "bare_wer_mean": mean([r["bare"]["wer"] for r in ok]),
                "bare_same_options_wer_mean": mean([r["bare_same_options"]["wer"] for r in ok]),
                "wer_minus_bare_same_options_points": [
                    rnd(100 * (r["wer"] - r["bare_same_options"]["wer"]), 2) for r in ok
                ],
                "release_to_text_vs_bare_p50": rnd(
                    percentile([r["release_to_text_vs_bare"] for r in ok if r["release_to_text_vs_bare"]], 50)
                ),
                "count": len(ok),
                "failed": len(all_mode) - len(ok),
            }
        entry["release_to_text_on_vs_off_p50"] = ratio(
            entry["on"]["release_to_text_s_p50"], entry["off"]["release_to_text_s_p50"]
        )
        out[f"{size:g}"] = entry
    return out


# --- run --------------------------------------------------------------------------------------


def run(parts: list[str], count: int, sizes: list[float], reps: int, seed: int) -> dict[str, Any]:
    machine = machine_info()
    results: dict[str, Any] = {
        "benchmark": "ptt",
        "date": machine["date"],
        "machine": machine,
        "settings": {
            "parts": parts,
            "clips": count,
            "seed": seed,
            "lead_s": LEAD_S,
            "load_file": LONG_FLAC.name,
            "load_jitter_s": LOAD_JITTER_S,
            "stream_sizes_s": sizes,
            "stream_reps": reps,
            "gap_s": GAP_S,
            "clipboard_read_s": {"slow": SLOW_READ_S, "after_delivered": FAST_READ_S},
            "bare": "embedded tiny.en, cpu int8, language en, beam 5, else faster-whisper's defaults",
            "bare_same_options": "the same with condition_on_previous_text off, as the stack's defaults",
        },
    }
    runs: dict[str, Any] = {}
    clip_parts = "base" in parts or "drain" in parts
    if clip_parts:
        clips = pick_clips(count, seed)
        pcms = [load_pcm(SPEECH / c["file"]) for c in clips]
        say("bare faster-whisper on each clip")
        bare = bare_transcribe(pcms)
        runs["bare"] = [
            {"file": c["file"], "s": rnd(b[0]), "text": b[1]} for c, b in zip(clips, bare, strict=True)
        ]
    utterances = [
        {**long_utterance(size, f"{seed}-{rep}-{size:g}"), "rep": rep}
        for rep in range(reps if "streaming" in parts else 0)
        for size in sizes
    ]
    keep_dir = Path(tempfile.mkdtemp(prefix="pttkeep", dir="/tmp"))
    rig = PushToTalkRig().start()
    delivered = rig.stack.subscribe(b"job.delivered")
    try:
        if clip_parts:
            phases = {"on": clip_phases(rig, delivered, clips, pcms, True, seed)}
            if "drain" in parts:
                phases["off"] = clip_phases(rig, delivered, clips, pcms, False, seed)
        stream_runs = stream_dictations(rig, delivered, utterances, keep_dir) if "streaming" in parts else []
    finally:
        delivered.close(linger=0)
        rig.close()
    try:
        if clip_parts:
            if "base" in parts:
                results.update(base_results(clips, bare, phases["on"]))
            runs.update(idle=phases["on"]["idle"], load=phases["on"]["loaded"])
            if "drain" in parts:
                bare_p50 = percentile([b[0] for b in bare], 50)
                on, off = (drain_summary(phases[m], bare_p50) for m in ("on", "off"))
                results["drain"] = {
                    "on": on,
                    "off": off,
                    "load_off_vs_on": {
                        q: ratio(
                            off["load"]["release_to_clipboard_s"][q], on["load"]["release_to_clipboard_s"][q]
                        )
                        for q in ("p50", "p95")
                    },
                }
                runs.update(drain_off_idle=phases["off"]["idle"], drain_off_load=phases["off"]["loaded"])
        if stream_runs:
            stream_bare(stream_runs, utterances)
            results["streaming"] = stream_summary(stream_runs, sizes)
            runs["streaming"] = stream_runs
    finally:
        shutil.rmtree(keep_dir, ignore_errors=True)
    results["runs"] = runs
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {','.join(PARTS)} (default all)")
    parser.add_argument("--clips", type=int, default=20, help="utterances per phase (default 20)")
    parser.add_argument(
        "--sizes", default="10,30,90", help="streaming: utterance sizes, s (default 10,30,90)"
    )
    parser.add_argument(
        "--stream-reps", type=int, default=3, help="streaming: utterances per size (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or any(p not in PARTS for p in parts):
        parser.error(f"--parts: any of {', '.join(PARTS)}, comma-separated")
    try:
        sizes = [float(s) for s in args.sizes.split(",") if s]
    except ValueError:
        parser.error("--sizes: seconds, comma-separated")
    if args.clips < 1 or args.stream_reps < 1 or not sizes or min(sizes) < 3:
        parser.error("--clips and --stream-reps must be at least 1, --sizes at least 3 s")
    if not (SPEECH / "manifest.tsv").exists():
        parser.error(f"needs the real speech data at {SPEECH}")
    print_json(run(parts, args.clips, sizes, args.stream_reps, args.seed), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
