"""On a machine with no display, no microphone and no /dev/input (a server, CI), the hotkey,
audio and deliver actors stay up with degraded health that says why, and the rest of the
stack keeps working."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from protocol.control import Ping
from tests.support.harness import Stack
from tests.support.pttdriver import ALL_ACTORS, MEMBERS

pytestmark = pytest.mark.stack


def headless(stack: Stack) -> Stack:
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        stack.env.pop(name, None)
    stack.env["PULSE_SERVER"] = "unix:/nonexistent/native"  # no sound server, no sound card
    return stack


def health(stack: Stack, actor: str) -> dict:
    return dict(stack.client.call(Ping(actor=actor))["workers"][0])


def test_members_degrade_and_say_why_while_the_stack_works(utterance: tuple[Path, str]) -> None:
    wav, sentence = utterance
    with headless(Stack()) as s:
        s.start(*ALL_ACTORS)
        s.wait_ready(roles=("ingest", "transcriber", *MEMBERS))
        audio, hotkey, deliver = (health(s, a) for a in MEMBERS)
        assert hotkey["health"] == "degraded" and "DISPLAY is not set" in hotkey["detail"]
        assert "sottovoce ptt toggle" in hotkey["detail"]
        assert audio["health"] == "degraded" and "microphone" in audio["detail"]
        assert deliver["health"] == "degraded" and "no display" in deliver["detail"]
        said = s.cli("say", str(wav), "--json")
        assert said.returncode == 0, said.stderr
        assert json.loads(said.stdout)["text"].strip(" .").lower() == sentence.strip(" .").lower()
        refused = s.cli("ptt", "start")
        assert refused.returncode == 1 and "microphone is unavailable" in refused.stderr
        ping = s.cli("ping", "hotkey")
        assert ping.returncode == 0 and "degraded" in ping.stdout
        assert len(s.log_events("hotkey", "hotkey_unavailable")) == 1  # one clear warning
        for actor in MEMBERS:
            assert s.procs[actor].poll() is None, f"{actor} exited"


def test_uinput_backend_without_dev_input_is_reported() -> None:
    if any(os.access(dev, os.R_OK) for dev in Path("/dev/input").glob("event*")):
        pytest.skip("this machine has readable keyboard devices; the test needs a machine without")
    with headless(Stack({"hotkey.backend": "uinput"})) as s:
        s.start("scheduler", "hotkey")
        s.wait_ready(roles=("hotkey",))
        detail = health(s, "hotkey")["detail"]
        assert "uinput" in detail and "/dev/input" in detail


def test_ptt_without_an_audio_actor_says_so() -> None:
    with Stack() as s:
        s.start("scheduler")
        s.wait_ready(roles=())
        out = s.cli("ptt", "toggle")
        assert out.returncode == 1 and "audio actor is not running" in out.stderr


def test_a_bad_hotkey_setting_is_refused_clearly() -> None:
    with Stack({"hotkey.mode": "latch"}) as s:
        s.start("hotkey")
        code = s.procs["hotkey"].wait(timeout=30)
        assert code == 2 and "hold or toggle" in s.output("hotkey")


def test_member_endpoints_answer_bad_frames_and_keep_serving(tmp_path: Path) -> None:
    import zmq

    from protocol import decode, encode
    from protocol.ptt import Ptt, Watch

    with headless(Stack({"watch.inboxes": str(tmp_path / "inbox")})) as s:
        s.start("scheduler", "audio", "watcher")
        s.wait_ready(roles=("audio", "watcher"))
        for name, wrong, right in (
            ("ptt", Watch(action="status"), Ptt(action="status")),
            ("watch", Ptt(action="status"), Watch(action="status")),
        ):
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(s.cfg.endpoint(name))
            codes = []
            for payload in (b"\xc1 not msgpack", encode(wrong, "test"), encode(right, "test")):
                sock.send_multipart([b"", payload])
                assert sock.poll(10_000), f"{name} did not answer"
                codes.append(decode(sock.recv_multipart()[-1])[1].code or "ok")
            sock.close()
            assert codes == ["bad_frame", "unknown_type", "ok"], (name, codes)
