"""Audio actor: owns the microphone and turns push-to-talk into high-priority jobs.

Binds the `ptt` endpoint (SPEC.md 12.2) and serves PTT requests from the hotkey actor and
`sottovoce ptt`. The stream stays open so the Recorder (actors/ptt/recorder.py) always has the
pre-roll. A finished utterance is checked with VAD: one without speech is dropped with an
event; one with speech is submitted (SUBMIT-AUDIO, priority high, source ptt) with its
latency marks. A submit that fails (scheduler down) is kept and retried, never lost. A
failed or silent device is reported, closed and reopened with back-off (SPEC.md 12.5).

When a recording starts the actor takes a drain hold (HOLD on its member socket), so the
scheduler starts no file window until the utterance is done; it releases the hold itself
when the recording ends without a job (SPEC.md 6.4). A long recording is streamed: every
piece cut in a pause is submitted while the user still speaks, and the release sends only
the tail (SPEC.md 12.4).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from actors.media.loudness import mel_reference
from actors.media.speech import speech_seconds
from actors.ptt.microphone import Microphone, MicrophoneError
from actors.ptt.pieces import CUT_CHECK_S, WINDOW_SAMPLES, PieceCutter
from actors.ptt.recorder import Recorder, Utterance
from actors.runtime import process
from actors.runtime.client import CallFailed, CallTimeout, Client, ClientError
from actors.runtime.config import Config
from actors.runtime.endpoint import Endpoint
from actors.runtime.reactor import Member
from protocol import ErrorCode
from protocol.control import AppendAudio, Cancel, JobOptions, ListJobs, Reply, Report, SubmitAudio
from protocol.ptt import PTT_ACTIONS, Ptt
from protocol.records import Record
from protocol.vocab import SAMPLE_RATE, Priority, Role
from protocol.work import Hold

POLL_MS = 20  # how often captured blocks are moved from PortAudio's queue to the recorder
REOPEN_MIN_S = 0.25
SUBMIT_TIMEOUT_S = 3.0
SUBMIT_RETRY_S = 1.0

Request = SubmitAudio | AppendAudio


class AudioActor(Member):
    ROLE = Role.AUDIO

    def __init__(self, cfg: Config, log: Any, microphone: Microphone | None = None) -> None:
        super().__init__(cfg, log)
        self.recorder = Recorder(
            preroll_s=int(cfg.get("audio.preroll_ms")) / 1000,
            postroll_s=int(cfg.get("audio.postroll_ms")) / 1000,
            max_samples=int(float(cfg.get("audio.max_utterance_s")) * SAMPLE_RATE),
        )
        self.min_speech_s = int(cfg.get("audio.min_speech_ms")) / 1000
        self.vad_threshold = float(cfg.get("audio.vad_threshold"))
        self.retry_max_s = float(cfg.get("audio.retry_max_s"))
        self.language = cfg.get("audio.language") or None
        self.keep_dir = cfg.get("audio.keep_dir")
        self.mic = microphone or Microphone(cfg.get("audio.device"), int(cfg.get("audio.stall_ms")) / 1000)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.client = Client(cfg, timeout_s=SUBMIT_TIMEOUT_S, name="audio")
        self.endpoint = Endpoint(cfg, "ptt", log)
        self.reopen_at: float | None = None
        self.reopen_s = REOPEN_MIN_S
        self.device_problem = ""
        self.awaiting_frames = False
        """Opened, but no audio yet: health and `recovered` wait for the first frames."""
        self.drain = bool(cfg.get("audio.drain"))
        self.hold_max_s = float(cfg.get("audio.hold_max_s"))
        self.holding: set[str] = set()
        """Holds taken and not yet handed to a job or released: said again after a reconnect."""
        self.link.after_ready = lambda: [Hold(hold_id=h, max_s=self.hold_max_s) for h in self.holding]
        self.stream = bool(cfg.get("audio.stream"))
        self.cutter = PieceCutter.from_config(cfg)
        """Where a streamed dictation is cut into pieces (actors/ptt/pieces.py)."""
        self.sent = 0
        """Samples of the current recording already cut into pieces."""
        self.cut_check_at = 0.0
        self.stream_jobs: dict[str, str] = {}
        """Utterance id -> its open job, once the first piece was accepted."""
        self.unsent: deque[tuple[str, Request]] = deque()
        """(utterance id, request) in order; an APPEND-AUDIO gets its job id when sent."""
        self.uncertain = False
        """The last submit timed out: the scheduler may have accepted it."""
        self.retry_submit_at = 0.0

    # --- device --------------------------------------------------------------------------

    def open_device(self) -> None:
        try:
            self.mic.open()
        except MicrophoneError as exc:
            self.device_down(str(exc))
            return
        self.reopen_at, self.awaiting_frames = None, True
        if self.mic.opened > 1:
            self.recorder.discontinuity()
        self.log.info("device_open", device=self.mic.name)

    def device_up(self) -> None:
        """The first frames arrived: only now is the device working again."""
        self.awaiting_frames, self.reopen_s = False, REOPEN_MIN_S
        self.link.set_health("ok")
        if self.device_problem:
            self.log.info("device_recovered", device=self.mic.name)
            self.report("device", state="recovered", device=self.mic.name, detail="", retry_in_s=0)
        self.device_problem = ""

    def device_down(self, reason: str) -> None:
        """Close the stream, report once per outage, and schedule a reopen with back-off."""
        self.mic.close()
        self.awaiting_frames = False
        if self.recorder.state == "tail":  # the post-roll will not come: keep what we have
            self.finish(self.recorder.finish_now())
        if reason != self.device_problem:
            self.log.warning("device_lost", reason=reason, retry_in_s=self.reopen_s)
            self.report("device", state="lost", device=self.mic.name, detail=reason, retry_in_s=self.reopen_s)
        self.device_problem = reason
        self.link.set_health("degraded", f"microphone: {reason}")
        self.reopen_at = time.monotonic() + self.reopen_s
        self.reopen_s = min(self.reopen_s * 2, self.retry_max_s)

    def pump(self) -> None:
        """Move captured audio into the recorder; check the device; reopen when due."""
        if self.mic.is_open:
            for block, captured in self.mic.read():
                utterance = self.recorder.feed(block, captured)
                if utterance is not None:
                    self.finish(utterance)
            self.cut_piece()
            if self.awaiting_frames and self.mic.frames_since_open:
                self.device_up()
            problem = self.mic.problem()
            if problem:
                self.device_down(problem)
        elif self.reopen_at is not None and time.monotonic() >= self.reopen_at:
            self.open_device()

    # --- ptt requests ----------------------------------------------------------------------

    def handle(self, req: Ptt) -> Reply:
        at = req.at or time.time()
        rec = self.recorder
        action = req.action
        if action not in PTT_ACTIONS:
            return Reply(
                status="error",
                code=ErrorCode.INVALID_ARGUMENT,
                reason=f"unknown action {action!r}; one of {', '.join(PTT_ACTIONS)}",
            )
        self.pump()  # audio up to now goes to the recorder before the cut is placed
        if action == "toggle":
            action = "stop" if rec.state == "recording" else "start"
        outcome = "ignored"
        if action == "start" and rec.state != "recording":
            if not self.mic.is_open:
                return Reply(
                    status="error",
                    code=ErrorCode.DEVICE_UNAVAILABLE,
                    reason=f"the microphone is unavailable: {self.device_problem or 'not open yet'}",
                )
            if rec.state == "tail":  # pressed again during the post-roll: close that one now
                self.finish(rec.finish_now())
            rec.start(at, req.origin)
            self.sent = 0
            self.hold(rec.id, True)
            outcome = "started"
            self.report("recording", state="started", utterance=rec.id, origin=req.origin)
        elif action == "stop" and rec.state == "recording":
            utterance_id, duration = rec.id, rec.duration_s
            done = rec.stop(at)
            outcome = "stopped"
            self.report(
                "recording", state="stopped", utterance=utterance_id, origin=req.origin, duration_s=duration
            )
            if done is None and not self.mic.is_open:  # lost mid-recording: no post-roll will come
                done = rec.finish_now()
            self.finish(done)
        elif action == "cancel" and rec.state == "recording":  # a finished (stopping) one is kept
            utterance, duration = rec.id, rec.duration_s
            rec.cancel()
            self.abandon_stream(utterance)
            self.hold(utterance, False)
            outcome = "cancelled"
            reason = req.reason or "cancelled"
            self.report("dropped", utterance=utterance, reason=reason, duration_s=duration, speech_s=0.0)
        self.log.info("ptt", action=req.action, outcome=outcome, origin=req.origin)
        data: dict[str, Any] = {
            "outcome": outcome,
            "recording": rec.recording,
            "utterance": rec.id,
            "duration_s": round(rec.duration_s, 3),
        }
        if req.action == "status":
            data.update(device=self.mic.name, health=self.link.health, detail=self.link.detail)
        return Reply(status="ok", data=data)

    # --- utterances ------------------------------------------------------------------------

    def finish(self, utterance: Utterance | None) -> None:
        """Drop an utterance without speech; submit one with speech."""
        if utterance is None:
            return
        if utterance.capped:
            utterance.key_up = time.time()
            self.report(
                "recording",
                state="capped",
                utterance=utterance.id,
                origin=utterance.origin,
                duration_s=len(utterance.pcm) / SAMPLE_RATE,
            )
        if self.streaming(utterance.id):
            self.finish_stream(utterance)
            return
        duration = len(utterance.pcm) / SAMPLE_RATE
        speech = speech_seconds(utterance.pcm, self.vad_threshold) if len(utterance.pcm) else 0.0
        if speech < self.min_speech_s:
            self.hold(utterance.id, False)
            self.log.info("dropped", utterance=utterance.id, duration_s=duration, speech_s=speech)
            self.report(
                "dropped",
                utterance=utterance.id,
                reason="no_speech" if len(utterance.pcm) else "empty",
                duration_s=round(duration, 3),
                speech_s=round(speech, 3),
            )
            return
        mel_max = None
        if len(utterance.pcm) > WINDOW_SAMPLES:  # windowed like a file: one reference level
            mel_max = mel_reference(utterance.pcm)
        if self.keep_dir:
            self.keep(utterance)
        marks = {"key_down": utterance.key_down, "key_up": utterance.key_up, "submitted": time.time()}
        self.queue(utterance.id, self.submit_request(utterance.id, utterance.pcm, marks, mel_max, False))

    def submit_request(
        self, utterance_id: str, pcm: np.ndarray, marks: dict[str, float], mel_max: float | None, more: bool
    ) -> SubmitAudio:
        self.holding.discard(utterance_id)  # from now on the hold ends with the job
        return SubmitAudio(
            pcm=pcm.astype("<i2").tobytes(),
            priority=Priority.HIGH,
            options=JobOptions(language=self.language),
            label=f"utterance {utterance_id}",
            source="ptt",
            marks=marks,
            mel_max=mel_max,
            open=more,
            hold=utterance_id if self.drain else "",
            member=self.link.name,
        )

    def queue(self, utterance_id: str, request: Request) -> None:
        self.unsent.append((utterance_id, request))
        self.submit_pending()

    # --- drain and streaming (SPEC.md 12) ----------------------------------------------------

    def hold(self, utterance_id: str, active: bool) -> None:
        """Take or release the drain hold for a recording (a no-op with audio.drain off)."""
        if not self.drain:
            return
        if active:
            self.holding.add(utterance_id)
        else:  # the recording ends without a job (or its job is being cancelled)
            self.holding.discard(utterance_id)
        self.link.send(Hold(hold_id=utterance_id, active=active, max_s=self.hold_max_s))

    def streaming(self, utterance_id: str) -> bool:
        """Pieces of this utterance were cut (sent or waiting to be)."""
        return utterance_id in self.stream_jobs or any(u == utterance_id for u, _ in self.unsent)

    def cut_piece(self) -> None:
        """While recording, send the unsent audio up to a pause as the next piece."""
        rec = self.recorder
        if not self.stream or rec.state != "recording" or time.monotonic() < self.cut_check_at:
            return
        self.cut_check_at = time.monotonic() + CUT_CHECK_S
        unsent = rec.recorded(self.sent)
        cut = self.cutter.next_cut(unsent)
        if cut is None:
            return
        mel_max = mel_reference(rec.recorded()[: self.sent + cut])
        piece = unsent[:cut]
        if self.sent == 0:
            marks = {"key_down": rec.key_down, "first_piece": time.time()}
            request: Request = self.submit_request(rec.id, piece, marks, mel_max, True)
        else:
            pcm = piece.astype("<i2").tobytes()
            request = AppendAudio(job_id="", pcm=pcm, offset=self.sent, mel_max=mel_max)
        self.log.info("piece", utterance=rec.id, offset=self.sent, samples=cut)
        self.sent += cut
        self.queue(rec.id, request)

    def finish_stream(self, utterance: Utterance) -> None:
        """The release of a streamed recording: send the tail as the final piece."""
        end = self.cutter.last_end(utterance.pcm, self.sent)
        if end < len(utterance.pcm):  # paused before letting go: the final piece is empty
            self.log.info("tail_without_speech", utterance=utterance.id, samples=len(utterance.pcm) - end)
        tail = utterance.pcm[self.sent : end]
        marks = {"key_up": utterance.key_up, "submitted": time.time()}
        self.queue(
            utterance.id,
            AppendAudio(
                job_id="",
                pcm=tail.astype("<i2").tobytes(),
                offset=self.sent,
                final=True,
                marks=marks,
                mel_max=mel_reference(utterance.pcm),
            ),
        )
        if self.keep_dir:
            self.keep(utterance)

    def abandon_stream(self, utterance_id: str) -> None:
        """A cancelled recording: unsent pieces go, an open job is cancelled."""
        kept = [(u, r) for u, r in self.unsent if u != utterance_id]
        self.unsent.clear()
        self.unsent.extend(kept)
        job_id = self.stream_jobs.pop(utterance_id, None)
        if job_id is not None:
            try:
                self.client.call(Cancel(job_id=job_id))
            except ClientError as exc:  # it is closed later (SPEC.md 12.4) and its text kept in history
                self.log.warning("stream_cancel_failed", job=job_id, reason=str(exc))

    def keep(self, utterance: Utterance) -> None:
        """Write the utterance as `utterance-<id>.wav` in audio.keep_dir (troubleshooting)."""
        import wave

        path = Path(self.keep_dir).expanduser() / f"utterance-{utterance.id}.wav"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE)
                out.writeframes(utterance.pcm.astype("<i2").tobytes())
        except OSError as exc:
            self.log.warning("keep_failed", path=str(path), reason=str(exc))

    def submit_pending(self) -> None:
        """Submit kept utterances in order; on failure keep them and retry later. A submit
        whose reply timed out may have been accepted: its label is looked up before it is
        sent again, so an utterance never becomes two jobs."""
        while self.unsent:
            utterance_id, request = self.unsent[0]
            if isinstance(request, AppendAudio):
                job_id = self.stream_jobs.get(utterance_id)
                if job_id is None:  # its first piece was refused: nothing to append to
                    self.unsent.popleft()
                    continue
                request = dataclasses.replace(request, job_id=job_id)
            try:
                if isinstance(request, SubmitAudio) and self.uncertain:
                    found = self.already_submitted(request.label)
                    if found:
                        self.log.info("submit_was_accepted", label=request.label)
                        self.accepted(utterance_id, request, found)
                        self.uncertain = False
                        continue
                job = self.client.call(request)["job"]
            except CallFailed as exc:  # refused, not lost: retrying would fail the same way
                self.unsent.popleft()
                self.hold(utterance_id, False)
                label = f"utterance {utterance_id}"
                self.log.error("submit_refused", label=label, reason=str(exc))
                self.report("dropped", utterance=label, reason="rejected", detail=exc.reason)
                continue
            except ClientError as exc:
                self.uncertain = self.uncertain or isinstance(exc, CallTimeout)
                self.log.warning("submit_failed", reason=str(exc), kept=len(self.unsent))
                self.retry_submit_at = time.monotonic() + SUBMIT_RETRY_S
                return
            self.uncertain = False
            self.accepted(utterance_id, request, job["id"])
            self.log.info(
                "submitted",
                job=job["id"],
                label=f"utterance {utterance_id}",
                piece=type(request).TYPE,
                audio_s=len(request.pcm) / 2 / SAMPLE_RATE,
                overflows=self.mic.flags,  # PortAudio blocks flagged since start (lost input)
            )

    def accepted(self, utterance_id: str, request: Record, job_id: str) -> None:
        self.unsent.popleft()
        if isinstance(request, SubmitAudio) and request.open:
            self.stream_jobs[utterance_id] = job_id
        elif isinstance(request, AppendAudio) and request.final:
            self.stream_jobs.pop(utterance_id, None)

    def already_submitted(self, label: str) -> str | None:
        jobs = self.client.call(ListJobs(limit=100))["jobs"]
        return next((j["id"] for j in jobs if j["label"] == label and j["source"] == "ptt"), None)

    def report(self, kind: str, **data: Any) -> None:
        """Ask the scheduler to publish an event; best effort, never waits."""
        if not self.link.send(Report(kind=kind, data=data)):
            self.log.info("report_dropped", kind=kind, why="no scheduler")

    # --- the member's hooks ---------------------------------------------------------------

    def on_start(self) -> None:
        speech_seconds(np.zeros(SAMPLE_RATE, np.int16), self.vad_threshold)  # load VAD before the first key
        self.open_device()  # registered means the device was tried and requests are served
        self.watch(self.endpoint.socket, lambda: self.endpoint.serve(Ptt, self.handle, self.link.name))
        self.log.info("started", endpoint=self.cfg.endpoint("ptt"))

    def poll_ms(self) -> int:
        return POLL_MS

    def on_turn(self) -> None:
        self.pump()
        if self.unsent and time.monotonic() >= self.retry_submit_at:
            self.submit_pending()

    def on_stop(self) -> None:
        if self.unsent:
            self.log.error("utterances_unsent", count=len(self.unsent))
        self.mic.close()
        self.endpoint.close()
        self.client.close()


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("audio", __doc__, argv)
    lock = process.sole_instance(cfg.runtime_dir / "audio.lock")
    if lock is None:  # one microphone owner per runtime dir: a second would steal the ptt socket
        print("sottovoce audio: another audio actor already runs for this runtime dir", file=sys.stderr)
        return 1
    AudioActor(cfg, log).run()
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
