"""rtvc on PipeWire (the sound server of most Linux desktops), measured: the declared latency is what impulses take
through it, frame for frame, by its ALSA plugin (device "pipewire", "default" on such a desktop) and by its JACK
library (pw-jack). tests/pipewire_harness.py runs a private PipeWire with WirePlumber and null sinks for the sound
card; port to port is rtvc's whole path there, the devices' part included.

Through the ALSA plugin PortAudio declared each side's buffer less one period; the capture's part is one period
(it is read as soon as a period is in), and rtvc declared 10.7 ms more than it took at period 128 (rtvc.audio.io).

An xrun can move the ALSA plugin's buffering by a period or two for the rest of a run (its recovery refills the
buffer; the harness's clients joining the graph as rtvc starts can cause one; once in CI it started a period off with
no xrun seen): most impulses of a run must take the declared latency or a whole period or two more or less, and one
run in RUNS every impulse the declared one.
CI installs the packages (.ci/run); elsewhere the test says which are missing (pipewire-alsa makes PipeWire the
ALSA default, so `make test` does not install it on a desktop that has another sound server).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from pipewire_harness import ROOT, PipeWire, Served, impulses, missing, run_once

pytestmark = [
    pytest.mark.pipewire,
    pytest.mark.skipif(bool(missing()), reason=f"needs the packages {' '.join(missing())} (CI installs them)"),
]
RUNS = 3
PASSTHROUGH = ROOT / "profiles" / "passthrough.toml"


@pytest.fixture
def pipewire():
    """A PipeWire of the test's own: one kept for the module ran its graph (null sinks that always process) beside
    the PipeWire of each test that makes its own, and on 2 cores their ALSA streams had xruns now and then that
    moved the plugin's buffering (a quantum test failed in CI: 5 xruns; the serve test: delays 1024 frames apart)."""
    with PipeWire(256) as pw:
        yield pw


@pytest.mark.parametrize("via", ["alsa", "jack"])
def test_the_declared_latency_is_what_impulses_take_on_pipewire(pipewire, via):
    tried = []
    for _ in range(RUNS):
        r = run_once(pipewire, via, 0, 4.0)
        tried.append(r)
        assert sum(r["measured"].values()) >= 6, r  # (an impulse every 0.5 s for 4 s)
        if on_time(r):
            break
    assert on_time(tried[-1]), f"no run had every impulse on time: {tried}"
    if via == "alsa":
        # the capture's part is one period (PortAudio said its buffer less one period: three here)
        assert r["device_in"] == r["period"], r


def test_a_quantum_held_above_256_gets_alsa_streams_of_one_quantum():
    """A user's clock.min-quantum of 1024 (a common cure for crackling elsewhere): PortAudio's low-latency ALSA
    buffer (512 frames) let no impulse through, while rtvc said it ran (at 512: about 13 underruns a second). rtvc
    now opens PipeWire's ALSA streams with a period of one quantum, and declares what impulses take."""
    with PipeWire(1024) as pw:
        for period in (0, 256):  # (256 under it: 442 xruns in 10 s, and 1536 frames declared too many, before)
            tried = []
            for _ in range(RUNS):
                r = run_once(pw, "alsa", period, 4.0)
                tried.append(r)
                assert sum(r["measured"].values()) >= 6, r  # (none came through before)
                assert r["period"] == 1024, r
                if r["xruns_late"] <= 2 and on_time(r):  # (xruns before: ~44 a second, in every run)
                    break
            assert tried[-1]["xruns_late"] <= 2 and on_time(tried[-1]), f"no run was clean and on time: {tried}"
        said = doctor(pw, 'host_api = "ALSA"\ninput_device = "pipewire"\noutput_device = "pipewire"')
    line = [ln for ln in said.splitlines() if ln.split()[1:2] == ["pipewire"]]
    assert line and "quantum held at 1024 frames or more (clock.min-quantum)" in line[0], said
    assert "pw-jack" in line[0], said
    assert "pw-metadata -n settings 0 clock.min-quantum 256" in line[0], said  # (a command: "lower" alone was none)


def on_time(r: dict) -> bool:
    """Every impulse of a run of run_once took the declared latency. A run that is not is one with an xrun (as the
    harness's clients join the graph, mostly), after which the ALSA plugin's buffering can sit a period off for
    the rest of the run (its recovery refills it): most impulses then took the declared latency, or a whole period
    or two more or less (1024 frames less at quantum 1024 in a run with one xrun at its start). The plugin's
    buffering can also move with no xrun that rtvc sees (CI at quantum 1024, 0 xruns: all 8 impulses 1024 frames
    late once; 7 on time and 1 a period early another time): such a run is tried again as one with an xrun."""
    most = max(r["measured"], key=r["measured"].get)
    if set(r["measured"]) == {r["declared"]}:
        return True
    off = abs(most - r["declared"])
    assert off in (0, r["period"], 2 * r["period"]), f"most impulses took {most} frames: {r}"
    return False


def doctor(pw: PipeWire, audio: str = "") -> str:
    """`rtvc doctor` on PipeWire, with these [audio] settings."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.toml").write_text(f"[audio]\n{audio}\n")
        done = subprocess.run(
            [sys.executable, "-m", "rtvc", "doctor"], env={**pw.env, "XDG_CONFIG_HOME": tmp}, cwd=tmp,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    return done.stdout


def test_a_quantum_forced_while_rtvc_serves_reopens_its_alsa_streams_sized_for_it():
    """`pw-metadata -n settings 0 clock.force-quantum 1024` while rtvc serves through the ALSA device "default":
    rtvc's streams, opened for PipeWire's quantum then (256), let nothing through. rtvc follows PipeWire's settings,
    reopens its streams sized for the new quantum, and again with its low latency once the quantum is let go (the
    setting removed: a helper's review found the watch kept it, and missed a clock.min-quantum raised next).
    (Through the ALSA plugin the latency can come out a period or two off after a reopen: its own buffering.)"""
    with PipeWire(256, max_quantum=1024) as pw, Served(pw, "default") as rtvc:

        def planned(period: int) -> dict:
            got = wait_for(lambda: (lat := rtvc.latency()) and lat["device_in"] == period and lat, rtvc)
            return got

        def heard(lat: dict, period: int, tries: int = 2) -> None:
            xruns = rtvc.rpc.call("status.get")["engine"]["xruns"]["total"]
            delays = impulses(pw, 1.0, 3.0)
            assert len(delays) >= 5, (delays, rtvc.log()[-2000:])  # (an impulse every 0.5 s)
            # (after a reopen the ALSA plugin's buffering can sit a period or two off what PortAudio says: -256
            # frames at 128 in CI, +128 and +1024 by hand; what this checks is that the sound comes)
            most = max(set(delays), key=delays.count)
            assert abs(most - lat["total"]) <= max(period, 256), (delays, lat)
            if period > 128:  # sized for the quantum: steady, no underrun (before: none came through, or ~13/s)
                more = rtvc.rpc.call("status.get")["engine"]["xruns"]["total"] - xruns
                # (one impulse may come late just after the reopen: CI once had the first of 6 six periods late,
                # the rest on one delay; not seen in runs by hand)
                steady = delays.count(most) >= len(delays) - 1
                if (more > 1 or not steady) and tries > 1:
                    # (a second window, 4 s on: the machine's own stall right after the reopen, 2 xruns once with the
                    # whole file's tests before it and none in runs of this test alone; streams sized wrong underrun
                    # in every window)
                    return heard(lat, period, tries - 1)
                assert more <= 1, rtvc.log()[-2000:]
                assert steady, (delays, lat)
            # (at 128 frames, PortAudio's low latency, a loaded machine has an xrun now and then, each moving the
            # plugin's buffering: CI saw 1664 to 1920 frames in one run; test_the_declared_latency_... covers it)

        low = planned(128)
        assert low["total"] == 1792, low  # (37.33 ms: PortAudio's low latency, callbacks of 128 frames)
        pw.force_quantum(1024)
        heard(planned(1024), 1024)
        assert "PipeWire's quantum is now at least 1024 frames (clock.force-quantum)" in rtvc.log()
        pw.setting("clock.force-quantum", None)  # (removed: the watch kept it, and missed what came next)
        planned(128)
        pw.setting("clock.min-quantum", 512)
        heard(planned(512), 512)
        pw.setting("clock.min-quantum", 256)
        again = planned(128)
        assert again["total"] == low["total"], again
        heard(again, 128)


@pytest.mark.parametrize("via", ["alsa", "jack", "voice-mic", "voice-mic-installed"])
def test_pipewire_restarted_under_serve_brings_the_sound_back(via):
    """PipeWire restarted while rtvc serves (`systemctl --user restart pipewire`, a common cure for a desktop's sound
    trouble). Through the ALSA plugin the streams fail and rtvc's recovery reopens them. Under pw-jack PortAudio
    cannot let go of the old server (its stop waits ten minutes), and rtvc stayed silent until restarted by hand:
    now it starts anew by itself once PipeWire runs (rtvc.restart), in the same process, its settings kept. With the
    virtual microphone (gone with the old PipeWire) the same, and the new serve makes the node again; installed
    (`rtvc virtual-mic install`), PipeWire makes it again at its start, and rtvc does not take that "rtvc voice" for
    its own client still there (it tried the stop that hangs, 5 s, before it restarted)."""
    from rtvc.audio import voice_mic

    pw = PipeWire(256, user_config=via == "voice-mic-installed")
    if via == "voice-mic-installed":
        (pw.conf.parent / "pipewire.conf.d").mkdir()
        (pw.conf.parent / "pipewire.conf.d" / "rtvc-voice.conf").write_text(voice_mic.DROP_IN)
    with pw, Served(pw, "default", via=via.removesuffix("-installed")) as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        rtvc.rpc.call("params.set", values={"gain_db": -6.0})
        assert len(impulses(pw, 1.0, 2.0, out_of=rtvc.out_of)) >= 3
        first = rtvc.latency()  # (JACK's figures come a moment after the first callbacks)
        pid = rtvc.proc.pid
        pw.restart()
        t0 = time.monotonic()
        delays = rtvc.heard_again(40)
        print(f"{via}: sound again {time.monotonic() - t0:.1f} s after PipeWire restarted")
        assert rtvc.proc.poll() is None and rtvc.proc.pid == pid
        assert rtvc.rpc.call("status.get")["control"]["params"]["gain_db"] == -6.0
        most = max(set(delays), key=delays.count)
        lat, log = rtvc.latency(), rtvc.log()  # (JACK's figures come a moment after the first callbacks)
        if via != "alsa":  # (exact: no buffer of PortAudio's own under JACK)
            assert "stopping (to start anew)" in log, log[-3000:]
            # (the server gone when rtvc asked, or back without rtvc's client: never the stop that hangs first)
            assert "did not stop" not in log, log[-3000:]
            assert "was restarted (or dropped rtvc)" in log or "rtvc played on is gone" in log, log[-3000:]
            assert "PipeWire (its JACK, which rtvc plays through)" in log, log[-3000:]  # (not "the JACK server")
            assert most == lat["total"] == first["total"], (delays, lat, first)
        else:  # (the ALSA plugin's drift after a reopen: test_a_quantum_forced_while_rtvc_serves_...)
            # reopened in the same process; or, where PortAudio hung (a stop or a start that did not return, its ALSA
            # thread spinning in its xrun handling: CI's failure, about once in 10 restarts), started anew, said so
            hung = "PortAudio cannot go on in this process" in log
            if not hung:
                assert "devices back after a failure" in log and "start anew" not in log, log[-3000:]
            else:
                assert "stopping (to start anew)" in log, log[-3000:]
            assert abs(most - lat["total"]) <= 256, (delays, lat)
        assert "Traceback" not in log, log[-3000:]


# PortAudio 19.6's ALSA host API on PipeWire's plugin, made to fail as it did after PipeWire restarted: while the
# file $RTVC_TEST_ALSA_BREAK exists, every poll reports an error (an xrun) and snd_pcm_start fails; while
# $RTVC_TEST_ALSA_SPIN exists too, the stream's state stays "xrun" after each failed restart, as the plugin's did
# with its connection gone, and PortAudio's xrun handling loops for ever. Loaded into rtvc serve by LD_PRELOAD
# (PortAudio calls libasound's functions through its symbol table).
_ALSA_BREAK = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>
typedef struct _snd_pcm snd_pcm_t;
static void *asound(const char *name) {
    void *h = dlopen("libasound.so.2", RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}
static int there(const char *var) {
    const char *f = getenv(var);
    return f && access(f, F_OK) == 0;
}
static int broken(void) { return there("RTVC_TEST_ALSA_BREAK"); }
int snd_pcm_start(snd_pcm_t *pcm) {
    int (*real)(snd_pcm_t *) = (int (*)(snd_pcm_t *))asound("snd_pcm_start");
    return broken() || !real ? -EBADFD : real(pcm);
}
int snd_pcm_poll_descriptors_revents(snd_pcm_t *pcm, struct pollfd *pfds, unsigned int nfds, unsigned short *revents) {
    typedef int (*revents_fn)(snd_pcm_t *, struct pollfd *, unsigned int, unsigned short *);
    revents_fn real = (revents_fn)asound("snd_pcm_poll_descriptors_revents");
    int r = real ? real(pcm, pfds, nfds, revents) : -EBADFD;
    if (r >= 0 && broken()) *revents |= POLLERR;
    return r;
}
typedef struct _snd_pcm_status snd_pcm_status_t;
int snd_pcm_status_get_state(const snd_pcm_status_t *st) {
    int (*real)(const snd_pcm_status_t *) = (int (*)(const snd_pcm_status_t *))asound("snd_pcm_status_get_state");
    return (broken() && there("RTVC_TEST_ALSA_SPIN")) || !real ? 4 /* SND_PCM_STATE_XRUN */ : real(st);
}
"""


def alsa_break(tmp_path: Path) -> Path:
    """_ALSA_BREAK built (gcc: rtvc's audio core needs it too)."""
    shim = tmp_path / "alsa_break.so"
    (tmp_path / "alsa_break.c").write_text(_ALSA_BREAK)
    cc = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(tmp_path / "alsa_break.c"), "-ldl"],
                        capture_output=True, text=True)  # fmt: skip
    assert cc.returncode == 0, cc.stderr
    return shim


def test_a_stream_start_that_hangs_in_portaudio_makes_serve_start_anew(tmp_path):
    """Seen after a restart of PipeWire: the stream failed (its ALSA thread's restart refused), and the recovery's
    reopen never came back from PortAudio's start (PortAudio 19.6: the stream's thread failed its own start and
    nothing woke the caller), holding the device switch for ever: rtvc stayed silent, status said "not back yet",
    and only a restart by hand cured it. The start is given up after 10 s and serve starts anew in the same process
    (a new PortAudio), its settings kept, and the sound is back."""
    shim = alsa_break(tmp_path)
    trigger = tmp_path / "break"
    with PipeWire(256) as pw:
        served = Served(pw, "default", via="alsa")
        served.env.update(LD_PRELOAD=str(shim), RTVC_TEST_ALSA_BREAK=str(trigger))
        with served as rtvc:
            wait_for(lambda: rtvc.latency(), rtvc)
            rtvc.rpc.call("params.set", values={"gain_db": -6.0})
            assert len(impulses(pw, 1.0, 2.0, out_of=rtvc.out_of)) >= 3
            pid = rtvc.proc.pid
            trigger.touch()  # the stream fails, and so will its reopen's start
            wait_for(lambda: "did not start within 10 s" in rtvc.log(), rtvc, timeout=40)
            trigger.unlink()  # (the new serve's start is not made to fail)
            t0 = time.monotonic()
            delays = rtvc.heard_again(40)
            print(f"sound again {time.monotonic() - t0:.1f} s after rtvc said the start hung")
            assert rtvc.proc.poll() is None and rtvc.proc.pid == pid
            assert rtvc.rpc.call("status.get")["control"]["params"]["gain_db"] == -6.0
            log = rtvc.log()
            assert "PortAudio cannot go on in this process (the audio stream did not start within 10 s" in log, log
            assert "stopping (to start anew)" in log and "started anew (1 of at most 3" in log, log[-3000:]
            assert len(delays) >= 3 and "Traceback" not in log, log[-3000:]


def wait_for(fn, rtvc, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (got := fn()):
        assert time.monotonic() < deadline, f"timed out; rtvc said:\n{rtvc.log()[-3000:]}"
        time.sleep(0.1)
    return got


def test_under_pw_jack_rtvc_takes_pipewires_default_microphone_and_speakers(pipewire):
    """Under pw-jack PortAudio's default JACK device was the first sink, in and out: rtvc recorded its own output
    from the sink's monitor (an impulse came back every 34.67 ms without end; a howl with a pitch voice). PipeWire's
    JACK has no 'system' ports; rtvc takes the devices the desktop's sound settings make the default (WirePlumber's
    "default" metadata: mic and speakers here), and every impulse goes from mic to speakers on time."""
    r = run_once(pipewire, "jack-defaults", 0, 4.0)
    assert sum(r["measured"].values()) >= 6, r
    assert on_time(r), r


def test_under_pw_jack_devices_named_with_a_patterns_characters_are_taken(pipewire):
    """PipeWire's JACK names a sound card's devices by their description: "... Speaker + Headphones" (Intel laptops),
    "... (HDMI)". PortAudio's JACK host API (19.6) reads a device's name as a regular expression, found none of their
    ports and listed them with no channels: under pw-jack rtvc refused to start on such defaults ("PipeWire's default
    output ... is not among them"). rtvc opens their streams on another device and moves its ports to them; every
    impulse goes from that microphone to those speakers on time."""
    pipewire.add_node("alsa_input.sof", "Audio/Source/Virtual", "Digital Microphone (SOF)")
    pipewire.add_node("alsa_output.sof", "Audio/Sink", "Speaker + Headphones")
    pipewire.set_default("source", "alsa_input.sof")
    pipewire.set_default("sink", "alsa_output.sof")
    tried = []
    for _ in range(RUNS):  # (a run whose buffering sat a period off is tried again: on_time)
        r = run_once(pipewire, "jack-defaults", 0, 3.0, into="Digital Microphone (SOF):input_MONO",
                     out_of="Speaker + Headphones:monitor_MONO")  # fmt: skip
        tried.append(r)
        assert sum(r["measured"].values()) >= 4, r
        if on_time(r):
            break
    assert on_time(tried[-1]), f"no run had every impulse on time: {tried}"


def test_hear_myself_on_stereo_speakers_named_with_a_patterns_characters(pipewire):
    """An AMD laptop's speakers under PipeWire: "Family 17h (Models 10h-1fh) HD Audio Controller Analog Stereo", the
    default, followed by hear-myself under --virtual-mic. No other device has two playback ports to open the stream
    on first (rtvc's virtual microphone and the harness's sinks are mono): it opens with one, spread over both of the
    speakers' ports (the voice is the same on each), rather than refuse to start."""
    amd = "Family 17h (Models 10h-1fh) HD Audio Controller Analog Stereo"
    pipewire.add_node("alsa_output.pci-0000_05_00.6.analog-stereo", "Audio/Sink", amd, stereo=True)
    pipewire.set_default("sink", "alsa_output.pci-0000_05_00.6.analog-stereo")
    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        got = rtvc.rpc.call("devices.list")["in_use"]
        assert amd in (got["monitor"] or ""), (got, rtvc.log()[-3000:])
        assert rtvc.rpc.call("monitor.set", on=True)["on"] is True
        for side in ("FL", "FR"):
            heard = impulses(pipewire, 0.5, 1.5, out_of=f"{amd}:monitor_{side}")
            assert len(heard) >= 2, (side, heard, rtvc.log()[-3000:])
        assert "opens on" in rtvc.log() and "Traceback" not in rtvc.log(), rtvc.log()[-3000:]


def rtvc_run(pw: PipeWire, tmp_path, *flags: str, seconds: float = 1.0):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "rtvc", "run", "--headless", "--duration", str(seconds), "--no-gate",
         "--profile", str(ROOT / "profiles" / "passthrough.toml"), *flags],
        env={**pw.env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def voice_mics(pw: PipeWire) -> list[dict]:
    import subprocess

    from rtvc.audio.voice_mic import parse_dump

    # (more lists after the first where the graph changes as it writes: one document failed, "Extra data", in CI)
    dump = parse_dump(subprocess.run(["pw-dump"], env=pw.env, capture_output=True, text=True, check=True).stdout)
    assert dump is not None
    return [
        o["info"]["props"]
        for o in dump
        if o["type"].endswith(":Node") and o["info"]["props"].get("node.name") == "rtvc-voice"
    ]


def test_rtvc_makes_its_virtual_microphone_and_a_program_records_the_voice_from_it(pipewire, tmp_path):
    """`rtvc run --virtual-mic`, no pw-jack, no device named: rtvc makes the node "rtvc voice" (the README's recipe
    by hand before), loads PipeWire's JACK itself, takes PipeWire's default microphone, and a program recording from
    the virtual microphone gets every impulse after the declared latency, to the frame. The node stays for the call
    program (it keeps its microphone while rtvc is off); the next start takes it as it is, a second is not made."""
    assert voice_mics(pipewire) == []
    for _ in range(RUNS):  # (a run whose plugin buffering sat a period off is tried again: on_time)
        r = run_once(pipewire, "voice-mic", 0, 4.0, out_of="rtvc voice:capture_MONO")
        assert sum(r["measured"].values()) >= 6, r
        if on_time(r):
            break
    assert on_time(r), r
    assert r["device_out"] == 0, r
    (mic,) = voice_mics(pipewire)
    assert mic["media.class"] == "Audio/Source/Virtual" and mic["node.description"] == "rtvc voice", mic
    again = rtvc_run(pipewire, tmp_path, "--virtual-mic")
    said = again.stdout + again.stderr
    assert again.returncode == 0, said[-2000:]
    assert "virtual microphone 'rtvc voice': there" in said, said[-2000:]
    assert "output  [" in said and "rtvc voice (JACK" in said, said[-2000:]
    assert "monitor [" in said and "speakers (JACK" in said, said[-2000:]  # (hear-myself: the default speakers)
    assert len(voice_mics(pipewire)) == 1


def links_into_the_voice_mic(pw: PipeWire) -> list[str]:
    """The ports playing into rtvc's virtual microphone."""
    return _voice_mic_links(pw, "|<-")


def links_out_of_the_voice_mic(pw: PipeWire) -> list[str]:
    """The ports recording from rtvc's virtual microphone."""
    return _voice_mic_links(pw, "|->")


def _voice_mic_links(pw: PipeWire, arrow: str) -> list[str]:
    """The ports linked to rtvc's virtual microphone's, the way `arrow` points (pw-link -l: a port, then its links
    indented)."""
    got = subprocess.run(["pw-link", "-l"], env=pw.env, capture_output=True, text=True, check=True).stdout
    found, port = [], ""
    for line in got.splitlines():
        if not line.startswith(" "):
            port = line.strip()
        elif port.startswith("rtvc-voice:") and line.strip().startswith(arrow):
            found.append(line.split(arrow, 1)[1].strip())
    return found


def test_a_second_rtvc_refuses_to_play_into_the_virtual_microphone_another_plays_into(pipewire, tmp_path):
    """A second rtvc (a serve on another port, or `rtvc run --virtual-mic`) beside a serve with the virtual
    microphone played into "rtvc voice" too: the call heard both voices summed (peaks of 1.73, 7.7 % of its samples
    clipped) while each rtvc's status said its output stayed under full scale. The second one refuses now, naming the
    other and the fix, and the call keeps the first one's voice alone."""
    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        assert len(links_into_the_voice_mic(pipewire)) == 1
        second = rtvc_run(pipewire, tmp_path, "--virtual-mic")
        said = second.stdout + second.stderr
        assert second.returncode != 0, said[-2000:]
        assert f"another rtvc, 'rtvc' (process {rtvc.proc.pid}), plays into the virtual microphone" in said, said
        assert "stop the other rtvc" in said and "without the virtual microphone" in said, said[-2000:]
        assert len(links_into_the_voice_mic(pipewire)) == 1
        assert rtvc.rpc.call("status.get")["engine"]["state"] == "running"
        delays = impulses(pipewire, 0.5, 1.5, out_of=rtvc.out_of)  # (the first one's voice: on time, to the frame)
        assert len(delays) >= 2 and set(delays) == {rtvc.latency()["total"]}, delays
    # the first one gone: the microphone is free again; a program the user connected to it is said, and left alone
    subprocess.run(["pw-link", "speakers:monitor_MONO", "rtvc-voice:input_MONO"], env=pipewire.env, check=True)
    again = rtvc_run(pipewire, tmp_path, "--virtual-mic")
    said = again.stdout + again.stderr
    assert again.returncode == 0, said[-2000:]
    assert "'speakers' plays into it too: the call hears it mixed with rtvc's voice" in said, said[-2000:]


def test_two_rtvc_started_at_once_do_not_both_play_into_the_virtual_microphone(pipewire, tmp_path):
    """Two rtvc with the virtual microphone started in the same instant (a login's service and an autostart): the
    check above sees another rtvc only once it plays, and both passed it; the call heard both voices summed. One of
    them plays now; the other refuses, naming the first's process; "rtvc voice" stays one node, played into once."""
    import subprocess
    import sys

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "rtvc", "run", "--headless", "--duration", "6", "--no-gate",
             "--profile", str(ROOT / "profiles" / "passthrough.toml"), "--virtual-mic"],
            env={**pipewire.env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    warm = rtvc_run(pipewire, tmp_path, "--virtual-mic")  # (PipeWire settled, and the node there, as others find it)
    assert warm.returncode == 0, warm.stdout[-2000:] + warm.stderr[-2000:]
    runs = [start(), start()]
    said = [p.communicate(timeout=90)[0] for p in runs]
    codes = sorted(p.returncode for p in runs)
    assert codes == [0, 2], "\n----\n".join(s[-1500:] for s in said)
    refused = said[[p.returncode for p in runs].index(2)]
    other = runs[[p.returncode for p in runs].index(0)].pid
    assert f"another rtvc (process {other}) is starting to play into the virtual microphone" in refused or (
        f"another rtvc, 'rtvc' (process {other}), plays into the virtual microphone" in refused
    ), refused
    assert "stop the other rtvc" in refused, refused
    assert len(voice_mics(pipewire)) == 1, voice_mics(pipewire)
    # one that holds the claim but plays nothing yet (it is loading its voice): refused, named
    holder = subprocess.Popen(
        [sys.executable, "-c", "from rtvc.audio import voice_mic as v; v.claim(); print('held', flush=True); input()"],
        env=pipewire.env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        second = rtvc_run(pipewire, tmp_path, "--virtual-mic")
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"another rtvc (process {holder.pid}) is starting to play" in second.stderr, second.stderr
    finally:
        holder.kill()
        holder.wait()
    assert rtvc_run(pipewire, tmp_path, "--virtual-mic").returncode == 0  # (its end lets go of it)


def test_the_virtual_microphone_removed_under_serve_is_said_in_status_until_it_is_back(pipewire):
    """`rtvc virtual-mic remove` (or pw-cli destroy rtvc-voice) while serve plays into it: status said `running`
    with no detail while the call heard nothing. It says so now, and the fix; rtvc does not make the node again (its
    removal was the user's own), and once it is back (`rtvc virtual-mic install`) rtvc plays into it again and the
    detail is gone."""
    import sys

    def engine() -> dict:
        return rtvc.rpc.call("status.get")["engine"]

    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        assert engine()["detail"] == ""
        before = impulses(pipewire, 0.5, 1.5, out_of=rtvc.out_of)
        assert len(before) >= 2 and set(before) == {rtvc.latency()["total"]}, before
        subprocess.run(["pw-cli", "destroy", "rtvc-voice"], env=pipewire.env, check=True, capture_output=True)
        said = wait_for(lambda: "moved by PipeWire to the default" in engine()["detail"] and engine()["detail"], rtvc)
        assert "'rtvc voice' is gone from PipeWire" in said and "`rtvc virtual-mic install` makes it again" in said
        assert engine()["state"] == "running" and voice_mics(pipewire) == []
        time.sleep(2.0)
        assert voice_mics(pipewire) == []  # (not made again behind the user's back)
        done = subprocess.run(
            [sys.executable, "-m", "rtvc", "virtual-mic", "install"], env=rtvc.env, cwd=rtvc.work,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        wait_for(lambda: engine()["detail"] == "", rtvc)
        assert len(links_into_the_voice_mic(pipewire)) == 1
        # (the voice heard again, on time; the node made anew takes part in driving PipeWire's graph, and an impulse
        # of the first second after it came back was once a period late, 1 of 3 on a loaded machine: looked at again)
        for _ in range(3):
            delays = impulses(pipewire, 0.5, 1.5, out_of=rtvc.out_of)
            if len(delays) >= 2 and set(delays) == set(before):
                break
        assert len(delays) >= 2 and set(delays) == set(before), (before, delays)
        assert f"engine running: {said}" in rtvc.log() and "Traceback" not in rtvc.log(), rtvc.log()[-3000:]


def test_a_run_with_a_monitor_ends_without_an_xrun():
    """Every run with a monitor (hear-myself; with the virtual microphone, PipeWire's default speakers) ended on one:
    the input stream was stopped first, the worker had nothing to convert, and the monitor, stopped a JACK cycle
    later, underran (640 frames at quantum 1024, 3 runs of 3); the final report counted it as an xrun. The outputs
    stop first now."""
    with PipeWire(1024) as pw:
        tried = [run_once(pw, "voice-mic", 0, 3.0) for _ in range(RUNS)]
    assert all(sum(r["measured"].values()) >= 4 for r in tried), tried
    assert any(r["xruns"] == 0 for r in tried), tried


def test_the_virtual_microphone_as_the_default_microphone_is_not_taken_as_rtvcs_own(pipewire, tmp_path):
    """A user who makes "rtvc voice" the desktop's default microphone (so that every program gets the voice): rtvc's
    own default input would be its output, a feedback loop. rtvc takes the microphone of highest priority instead,
    says so, and refuses its own virtual microphone named as its input."""
    import subprocess

    assert rtvc_run(pipewire, tmp_path, "--virtual-mic").returncode == 0
    subprocess.run(
        ["pw-metadata", "0", "default.audio.source", '{"name":"rtvc-voice"}'], env=pipewire.env, check=True,
        capture_output=True,
    )  # fmt: skip
    done = rtvc_run(pipewire, tmp_path, "--virtual-mic")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "input   [" in done.stdout and "] mic (JACK" in done.stdout, done.stdout[-2000:]
    said = "note: input device: PipeWire's default microphone is rtvc's own 'rtvc voice'; rtvc takes 'mic' (node mic)"
    assert said in done.stdout and "the microphone of highest priority" in done.stdout, done.stdout[-2000:]
    named = rtvc_run(pipewire, tmp_path, "--virtual-mic", "--input-device", "rtvc voice")
    assert named.returncode == 2 and "rtvc would hear itself" in named.stderr, named.stderr


def test_virtual_mic_install_keeps_it_over_a_pipewire_restart_and_remove_takes_it_away():
    """A microphone made by rtvc is gone when PipeWire restarts (a log-out): a call program started before rtvc found
    no "rtvc voice" and took the real microphone, the user's own voice. `rtvc virtual-mic install` writes it into
    PipeWire's user config (made at each start); `remove` takes it away, now and at the next start."""
    import subprocess
    import sys

    def rtvc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rtvc", *args], env=pw.env, cwd=pw.dir, capture_output=True, text=True, timeout=60
        )

    with PipeWire(256, user_config=True) as pw:
        drop_in = pw.dir / "config" / "pipewire" / "pipewire.conf.d" / "rtvc-voice.conf"
        done = rtvc("virtual-mic", "install")
        assert done.returncode == 0 and drop_in.is_file(), done.stderr
        assert f"wrote {drop_in}" in done.stdout and "'rtvc voice' made now" in done.stdout, done.stdout
        assert len(voice_mics(pw)) == 1
        pw.restart()
        assert len(voice_mics(pw)) == 1  # (made by PipeWire itself: no rtvc ran since)
        used = rtvc("run", "--headless", "--duration", "1", "--virtual-mic", "--profile", str(PASSTHROUGH))
        assert used.returncode == 0 and "'rtvc voice': there (PipeWire node rtvc-voice)" in used.stdout, used.stdout
        assert "virtual-mic install" not in used.stdout  # (the hint to install it: not when it is)
        assert len(voice_mics(pw)) == 1
        # a call recording from it: PipeWire would move it to the default microphone, the user's own voice (a review)
        call = subprocess.Popen(
            ["pw-record", "--target", "rtvc-voice", str(drop_in.parent / "call.wav")],
            env=pw.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 15
            while not links_out_of_the_voice_mic(pw):
                assert time.monotonic() < deadline, "pw-record never linked to rtvc-voice"
                time.sleep(0.2)
            refused = rtvc("virtual-mic", "remove")
            assert refused.returncode == 2 and "'pw-record' (process " in refused.stderr, refused.stderr
            assert "records from the virtual microphone 'rtvc voice'" in refused.stderr, refused.stderr
            assert "--force" in refused.stderr and drop_in.is_file() and len(voice_mics(pw)) == 1
            done = rtvc("virtual-mic", "remove", "--force")
            assert "recorded from it: PipeWire moves it to the default microphone" in done.stdout, done.stdout
        finally:
            call.terminate()
            call.wait(10)
        assert done.returncode == 0 and not drop_in.exists(), done.stderr
        assert "removed the node rtvc-voice" in done.stdout, done.stdout
        assert voice_mics(pw) == []
        pw.restart()
        assert voice_mics(pw) == []
        again = rtvc("virtual-mic", "remove")
        assert again.returncode == 0 and "no virtual microphone to remove" in again.stdout, again.stdout


def test_the_virtual_microphone_without_pipewire_says_what_is_missing(tmp_path):
    """No PipeWire for this user (plain ALSA, jackd): a clear error, exit 2, nothing opened."""
    import subprocess
    import sys

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PIPEWIRE_RUNTIME_DIR": str(runtime)}
    done = subprocess.run(
        [sys.executable, "-m", "rtvc", "run", "--headless", "--duration", "1", "--virtual-mic"],
        env={**env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-2000:]
    assert "audio.virtual_mic: PipeWire does not answer" in done.stderr, done.stderr
    assert "systemctl --user start pipewire" in done.stderr, done.stderr


def test_doctor_and_devices_show_the_virtual_microphone_rtvc_plays_into(pipewire, tmp_path):
    """With virtual_mic in config.toml, `rtvc doctor` and `rtvc devices` show what `rtvc run` opens: PipeWire's JACK
    devices (without rtvc loading it, PortAudio had none: jackd's library, no jackd), the voice into the node."""
    import subprocess
    import sys

    said = doctor(pipewire, "virtual_mic = true")
    assert "virtual microphone 'rtvc voice': made now" in said, said[-3000:]
    sound = [ln for ln in said.splitlines() if "sound devices" in ln]
    assert sound and sound[0].startswith("ok") and "output [" in sound[0] and "rtvc voice" in sound[0], said[-3000:]
    assert "input [" in sound[0] and "] mic (JACK" in sound[0], sound  # (PipeWire's default microphone)
    listed = subprocess.run(  # (by the flag this time, as `rtvc run --virtual-mic` is given it)
        [sys.executable, "-m", "rtvc", "devices", "--virtual-mic"],
        env={**pipewire.env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "rtvc voice" in listed.stdout and "JACK" in listed.stdout, listed.stdout
    assert "config: virtual microphone 'rtvc voice': there" in listed.stdout, listed.stdout


def test_mixers_show_rtvc_by_name_through_the_alsa_plugin(pipewire, tmp_path):
    """pavucontrol, qpwgraph and wpctl showed rtvc's streams as "PipeWire ALSA [python3.11]"."""
    import subprocess
    import sys

    rtvc = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "run", "--headless", "--host-api", "ALSA", "--input-device", "pipewire",
         "--output-device", "pipewire", "--duration", "4", "--profile", str(ROOT / "profiles" / "passthrough.toml")],
        env={**pipewire.env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline, names = time.monotonic() + 10, []
        while time.monotonic() < deadline and names.count('application.name = "rtvc"') < 2:
            time.sleep(0.3)
            nodes = subprocess.run(["pw-cli", "ls", "Node"], env=pipewire.env, capture_output=True, text=True).stdout
            names = [ln.strip() for ln in nodes.splitlines() if "application.name" in ln]
        assert names.count('application.name = "rtvc"') == 2, names  # (the capture and the playback stream)
    finally:
        rtvc.wait(30)


def test_doctor_on_pipewire_points_at_pw_jack_not_at_starting_jackd(pipewire):
    said = doctor(pipewire)
    jack = [ln for ln in said.splitlines() if " jack " in f" {ln} "]
    assert jack and "PipeWire runs" in jack[0] and "pw-jack" in jack[0], said[-2000:]
    mic = [ln for ln in said.splitlines() if "virtual mic" in ln]  # (offered: pipewire-jack is there)
    assert mic and mic[0].startswith("ok") and "rtvc run --virtual-mic" in mic[0], said[-2000:]
    # (PipeWire's quantum here is 256: rtvc's low-latency ALSA buffer keeps up with it, nothing to say)
    assert "sound devices" in said and not [ln for ln in said.splitlines() if ln.split()[1:2] == ["pipewire"]], said


def test_rtvc_follows_the_desktops_default_microphone_and_speakers(pipewire):
    """A headset plugged in, or another microphone chosen in the desktop's sound settings, becomes PipeWire's default,
    and programs on PipeWire's own streams move to it. On PipeWire's JACK rtvc's ports stayed on the devices of its
    start: the user spoke into the headset and the call heard the laptop's microphone. rtvc now follows the default
    where it took it (here the virtual microphone's input, and hear-myself's speakers), once per change, and keeps a
    device the user named."""
    import re

    def in_use() -> dict[str, str]:
        got = rtvc.rpc.call("devices.list")["in_use"]
        found = {role: (re.search(r"\] (.*) \(", got[role] or "") or [None, ""])[1] for role in ("input", "monitor")}
        return {**found, "follows": got.get("follows", [])}

    followed = "PipeWire's default devices changed: rtvc follows them"
    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        assert in_use() == {"input": "mic", "monitor": "speakers", "follows": ["input", "monitor"]}, rtvc.log()
        assert "following PipeWire's default microphone and speakers for hear-myself" in rtvc.log(), rtvc.log()
        # (a sound card's nodes have a description: PipeWire's JACK names them by it)
        pipewire.add_node("alsa_input.usb-headset", "Audio/Source/Virtual", "USB Headset Mic")
        pipewire.add_node("alsa_output.usb-headset", "Audio/Sink", "USB Headset")
        t0 = time.monotonic()
        pipewire.set_default("source", "alsa_input.usb-headset")
        pipewire.set_default("sink", "alsa_output.usb-headset")
        wait_for(lambda: in_use()["input"] == "USB Headset Mic" and in_use()["monitor"] == "USB Headset", rtvc)
        print(f"followed the new defaults {time.monotonic() - t0:.2f} s after they were set")
        lat = wait_for(lambda: rtvc.latency(), rtvc)
        rtvc.rpc.call("monitor.set", on=True)
        delays = impulses(pipewire, 1.0, 2.0, into="USB Headset Mic:input_MONO", out_of=rtvc.out_of)
        assert len(delays) >= 3 and set(delays) == {lat["total"]}, (delays, lat)  # (on time, to the frame)
        heard = impulses(pipewire, 0.5, 1.5, into="USB Headset Mic:input_MONO", out_of="USB Headset:monitor_MONO")
        assert len(heard) >= 2, heard
        assert impulses(pipewire, 0.5, 1.5, into="mic:input_MONO", out_of=rtvc.out_of) == []  # (the old one: off)
        log = rtvc.log()
        assert log.count(followed) == 1 and "Traceback" not in log, log[-3000:]  # (both in one switch, once)
        assert "devices switched (rtvc's JACK ports moved to them" in log, log[-3000:]  # (no reopen: no gap)
        # a microphone the user chose stays; hear-myself's speakers, still the default's, follow it back
        rtvc.rpc.call("devices.select", input="USB Headset Mic")
        assert in_use()["follows"] == ["monitor"]
        pipewire.set_default("source", "mic")
        pipewire.set_default("sink", "speakers")
        wait_for(lambda: in_use()["monitor"] == "speakers", rtvc)
        time.sleep(1.0)
        assert in_use() == {"input": "USB Headset Mic", "monitor": "speakers", "follows": ["monitor"]}, rtvc.log()
        assert rtvc.log().count(followed) == 2, rtvc.log()[-3000:]


def test_a_new_default_whose_name_a_listed_device_holds_is_that_new_device(pipewire):
    """ "USB Headset" made the default speakers after rtvc read its device list, where "USB Headset Mic" (a virtual
    source: it has ports to play into) was: rtvc took the one listed device whose name holds the default's, and played
    hear-myself into a microphone (a review). A JACK client of the default's very name is that device."""
    import re

    def monitor() -> str:
        got = rtvc.rpc.call("devices.list")["in_use"]
        return (re.search(r"\] (.*) \(", got["monitor"] or "") or [None, ""])[1]

    pipewire.add_node("alsa_input.usb-headset", "Audio/Source/Virtual", "USB Headset Mic")
    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        assert monitor() == "speakers", rtvc.log()
        pipewire.add_node("alsa_output.usb-headset", "Audio/Sink", "USB Headset")
        pipewire.set_default("sink", "alsa_output.usb-headset")
        wait_for(lambda: monitor() not in ("speakers", ""), rtvc)
        assert monitor() == "USB Headset", rtvc.log()[-3000:]


def test_a_headset_whose_speakers_and_microphone_share_a_name_is_heard_by_its_microphone(pipewire):
    """Under PipeWire's JACK a sink and a source of one name (a Bluetooth headset, a laptop's "Built-in Audio Analog
    Stereo") are one JACK client, the sink's monitor ports first: rtvc's input channel 1 was the speakers' monitor,
    and the call's voices, played into the headset, came back converted (a review). Its microphone is heard now, and
    what its speakers play is not."""
    pipewire.add_node("bluez_output.wh", "Audio/Sink", "WH-1000XM4")
    pipewire.add_node("bluez_input.wh", "Audio/Source/Virtual", "WH-1000XM4")
    pipewire.set_default("source", "bluez_input.wh")
    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: "JACK ports' latency: " in rtvc.log(), rtvc)  # (JACK's figures for the devices, asked after)
        lat = rtvc.latency()
        said = "is a microphone and speakers of one name: channel 1 is its port capture_MONO (not the speakers'"
        assert said in rtvc.log(), rtvc.log()
        delays = impulses(pipewire, 1.0, 2.0, into="WH-1000XM4:input_MONO", out_of=rtvc.out_of)
        assert len(delays) >= 3 and set(delays) == {lat["total"]}, (delays, lat)
        assert impulses(pipewire, 0.5, 1.5, into="WH-1000XM4:playback_MONO", out_of=rtvc.out_of) == []


def test_rtvc_follows_the_default_microphone_after_wireplumber_restarted():
    """A review: WirePlumber restarted alone (a crash, `systemctl --user restart wireplumber`) makes its "default"
    metadata anew, and the watch (`pw-metadata -m`) heard nothing from the new one: a headset chosen after it was
    never followed, with no word. The watch now looks again every CHECK_S and follows the object made anew."""
    with PipeWire(256, own_default=False) as pw, Served(pw, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        pw.restart_wireplumber()
        pw.add_node("alsa_input.usb-headset", "Audio/Source/Virtual", "USB Headset Mic")
        pw.set_default("source", "alsa_input.usb-headset")
        took = lambda: "USB Headset Mic" in (rtvc.rpc.call("devices.list")["in_use"]["input"] or "")  # noqa: E731
        wait_for(took, rtvc, 20)
        log = rtvc.log()
        assert "PipeWire's default devices: watched again (made anew" in log and "Traceback" not in log, log[-3000:]


def test_a_serve_started_anew_waits_for_pipewire_past_its_patience_with_the_virtual_microphone(tmp_path):
    """A review: a serve started anew (PipeWire restarted) with the virtual microphone ended when PipeWire and its
    session manager were not back within RESUME_DEVICES_S ("audio.virtual_mic: PipeWire does not answer"). A restart
    must not end rtvc: it looks again every 2 s, says why, and plays into "rtvc voice" once PipeWire is there."""
    import json
    import sys

    from rtvc import restart
    from rtvc.serve import RESUME_DEVICES_S

    pw = PipeWire(256)  # (its folders made; PipeWire itself not started yet)
    served = Served(pw, "default", via="voice-mic")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({}))
    served.env[restart.RESUME_ENV] = str(state)  # (as rtvc.restart's exec leaves it)
    with served.log_path.open("wb") as log:
        served.proc = subprocess.Popen(
            [sys.executable, "-m", "rtvc", "serve", "--config", str(served.work / "config.toml")],
            env=served.env, cwd=served.work, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        t0 = time.monotonic()
        said = "restarted: the virtual microphone is not ready (audio.virtual_mic: PipeWire does not answer"
        wait_for(lambda: said in served.log(), served, RESUME_DEVICES_S + 10)
        time.sleep(max(0.0, RESUME_DEVICES_S + 3 - (time.monotonic() - t0)))
        assert served.proc.poll() is None, served.log()[-3000:]  # (past its patience: still there)
        with pw:
            served.connect(60)
            wait_for(lambda: served.latency(), served, 30)
            assert len(voice_mics(pw)) == 1 and len(links_into_the_voice_mic(pw)) == 1, served.log()[-3000:]
            assert served.log().count(said) == 1, served.log()[-3000:]  # (said once, not every 2 s)
            served.__exit__()
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()
        import shutil

        shutil.rmtree(served.work, ignore_errors=True)
        shutil.rmtree(pw.dir, ignore_errors=True)


def test_portaudios_alsa_thread_spinning_in_its_xrun_handling_makes_serve_start_anew_at_once(tmp_path):
    """Reproduced after restarts of PipeWire (about 1 in 10 without real-time scheduling, as on CI's runners; CI's
    failure of the test above): the ALSA plugin's restart kept failing, and PortAudio 19.6's xrun handling looped
    for ever: no callback, a whole core, its error lines into the log at about 100 MB/s and its memory growing;
    its stop never returned (the thread never reads the request). rtvc gave up the stop after 5 s and stayed
    silent for good (10-18 GB of memory within two minutes in a helper's runs). Now the callback thread's CPU time
    tells the spin, and serve starts anew at once, in the same process, its settings kept."""
    shim = alsa_break(tmp_path)
    trigger, spin = tmp_path / "break", tmp_path / "spin"
    spin.touch()
    with PipeWire(256) as pw:
        served = Served(pw, "default", via="alsa")
        served.env.update(LD_PRELOAD=str(shim), RTVC_TEST_ALSA_BREAK=str(trigger), RTVC_TEST_ALSA_SPIN=str(spin))
        with served as rtvc:
            wait_for(lambda: rtvc.latency(), rtvc)
            rtvc.rpc.call("params.set", values={"gain_db": -6.0})
            assert len(impulses(pw, 1.0, 2.0, out_of=rtvc.out_of)) >= 3
            pid = rtvc.proc.pid
            trigger.touch()
            t0 = time.monotonic()
            wait_for(lambda: "stopping (to start anew)" in rtvc.log(), rtvc, timeout=30)
            said = time.monotonic() - t0
            trigger.unlink()  # (the new serve's streams are left alone)
            delays = rtvc.heard_again(40)
            size = rtvc.log_path.stat().st_size / 1e6
            print(f"started anew {said:.1f} s after PortAudio's thread began to spin, sound again after "
                  f"{time.monotonic() - t0:.1f} s; the log {size:.0f} MB")  # fmt: skip
            log = rtvc.log()
            # given up at once, told by the thread's CPU time; on a machine so loaded that the spinning thread gets
            # less than half a core, after the stop that hangs (5 s): said which
            spotted = "PortAudio's audio thread spins without calling back" in log
            print("told by the thread's CPU time" if spotted else "after the stop that hung")
            assert spotted or "did not stop" in log, log[-3000:]
            assert "PortAudio cannot go on in this process" in log, log[-3000:]
            assert rtvc.proc.poll() is None and rtvc.proc.pid == pid and len(delays) >= 3
            assert rtvc.rpc.call("status.get")["control"]["params"]["gain_db"] == -6.0


def test_a_start_that_hangs_as_serve_starts_makes_it_start_anew(tmp_path):
    """Seen where a serve started anew met PipeWire's ALSA plugin not quite back: its first start of the streams
    never returned, and serve ended with an error (rtvc: error: the audio stream did not start within 10 s). It
    starts anew again (within rtvc.restart's bound of 3 in 10 minutes), and the sound comes."""
    shim = alsa_break(tmp_path)
    trigger = tmp_path / "break"
    trigger.touch()  # (from the start: the first streams' start hangs)
    with PipeWire(256) as pw:
        served = Served(pw, "default", via="alsa")
        served.env.update(LD_PRELOAD=str(shim), RTVC_TEST_ALSA_BREAK=str(trigger))
        with served as rtvc:
            wait_for(lambda: "stopping (to start anew)" in rtvc.log(), rtvc, timeout=30)
            trigger.unlink()
            pid = rtvc.proc.pid
            delays = rtvc.heard_again(40)
            log = rtvc.log()
            assert "PortAudio cannot go on in this process (the audio stream did not start within 10 s" in log, log
            assert rtvc.proc.poll() is None and rtvc.proc.pid == pid and len(delays) >= 3


def test_a_followed_microphone_unplugged_while_the_default_falls_to_rtvc_voice_gives_way_to_the_highest(pipewire):
    """A user who once made "rtvc voice" the desktop's default microphone: WirePlumber remembers it, and when a
    headset rtvc followed is unplugged, the default falls back to rtvc's own node, not to "mic". rtvc stayed on the
    gone headset ("connects it again when it is back"), and the call heard silence for good while status said
    running. It takes the microphone of highest priority now, as at start, and the voice reaches the call again."""
    import re
    import subprocess

    def mic_in_use() -> str:
        got = rtvc.rpc.call("devices.list")["in_use"]["input"] or ""
        return (re.search(r"\] (.*) \(", got) or [None, ""])[1]

    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        pipewire.set_default("source", "rtvc-voice")  # (the desktop's sound settings, once)
        pipewire.add_node("headset", "Audio/Source/Virtual")
        time.sleep(1.0)
        assert mic_in_use() == "mic", rtvc.log()[-3000:]  # (rtvc's own as the default: the microphone stays)
        pipewire.set_default("source", "headset")
        wait_for(lambda: mic_in_use() == "headset", rtvc)
        subprocess.run(["pw-cli", "destroy", "headset"], env=pipewire.env, check=True, capture_output=True, timeout=10)
        wait_for(lambda: mic_in_use() == "mic", rtvc)
        lat = wait_for(lambda: rtvc.latency(), rtvc)
        delays = impulses(pipewire, 1.0, 2.0, out_of=rtvc.out_of)
        assert len(delays) >= 3 and set(delays) == {lat["total"]}, (delays, lat, rtvc.log()[-3000:])
        assert "Traceback" not in rtvc.log(), rtvc.log()[-3000:]


def test_a_followed_microphone_unplugged_while_rtvc_voice_is_already_the_default_gives_way_to_the_highest(pipewire):
    """As above, but "rtvc voice" became the default microphone while rtvc was on the headset: when the headset goes,
    PipeWire's default does not change (it is rtvc's own already), no event came, and rtvc stayed on the gone
    headset, the call silent. The loss of the followed microphone's connection is the sign now."""
    import re
    import subprocess

    def mic_in_use() -> str:
        got = rtvc.rpc.call("devices.list")["in_use"]["input"] or ""
        return (re.search(r"\] (.*) \(", got) or [None, ""])[1]

    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        pipewire.add_node("headset", "Audio/Source/Virtual")
        pipewire.set_default("source", "headset")
        wait_for(lambda: mic_in_use() == "headset", rtvc)
        pipewire.set_default("source", "rtvc-voice")  # (the desktop's sound settings: the headset stays in use)
        time.sleep(1.0)
        assert mic_in_use() == "headset", rtvc.log()[-3000:]
        subprocess.run(["pw-cli", "destroy", "headset"], env=pipewire.env, check=True, capture_output=True, timeout=10)
        wait_for(lambda: mic_in_use() == "mic", rtvc)
        lat = wait_for(lambda: rtvc.latency(), rtvc)
        delays = impulses(pipewire, 1.0, 2.0, out_of=rtvc.out_of)
        assert len(delays) >= 3 and set(delays) == {lat["total"]}, (delays, lat, rtvc.log()[-3000:])
        log = rtvc.log()
        assert "a device rtvc followed is gone: rtvc follows PipeWire's default devices" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]


def test_pipewires_alsa_device_is_refused_as_the_input_while_rtvc_voice_is_the_default_microphone(pipewire):
    """With "rtvc voice" the desktop's default microphone, ALSA's "pipewire" (and "default") records it: the switch
    to it was accepted, WirePlumber linked rtvc's own output to its input, and the call heard silence while a sound
    went round into the limiter. Refused now, as "rtvc voice" named is: the microphone in use stays, and the voice
    still reaches the call."""
    with Served(pipewire, "default", via="voice-mic") as rtvc:
        wait_for(lambda: rtvc.latency(), rtvc)
        pipewire.set_default("source", "rtvc-voice")
        time.sleep(1.0)
        listed = rtvc.rpc.call("devices.list")
        index = next(str(d["index"]) for d in listed["devices"] if d["name"] == "pipewire" and d["host_api"] == "ALSA")
        with pytest.raises(AssertionError, match="rtvc would hear itself"):
            rtvc.rpc.call("devices.select", input=index)
        assert "] mic (JACK" in rtvc.rpc.call("devices.list")["in_use"]["input"], rtvc.log()[-3000:]
        lat = wait_for(lambda: rtvc.latency(), rtvc)
        delays = impulses(pipewire, 0.5, 1.5, out_of=rtvc.out_of)
        assert len(delays) >= 2 and set(delays) == {lat["total"]}, (delays, lat, rtvc.log()[-3000:])
