"""`devices.select` when the devices fail under it: the error names what failed and status says so.

The PortAudio streams are stood in for here (a device that vanishes between being found and being opened
cannot be timed on a JACK server); the switch itself runs over real callbacks in test_device_switch.py.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

import pytest

import rtvc.audio.switch as switch
from rtvc.audio import devices
from rtvc.audio.devices import DeviceNotFound, RescanHung
from rtvc.config import load_config
from rtvc.errors import DeviceError
from rtvc.run import build_engine


@dataclass(frozen=True)
class Dev:
    name: str
    host_api: str = "ALSA"
    index: int = 0

    def title(self) -> str:
        return self.name


@dataclass(frozen=True)
class Choice:
    input: Dev
    output: Dev
    monitor: Dev | None = None
    monitor_channels: int = 0
    input_channel: int = 1
    output_channels: int = 2
    duplex: bool = False

    def describe(self) -> str:
        return f"{self.input.name} -> {self.output.name}"


class Streams:
    gone: ClassVar[set[str]] = set()  # device names that fail to open
    busy: ClassVar[set[str]] = set()  # device names that open but refuse to start
    hung: ClassVar[set[str]] = set()  # device names whose streams do not stop (a JACK server that died)
    stuck: ClassVar[set[str]] = set()  # device names whose streams' start does not return (rtvc.audio.io.StartHung)
    started: ClassVar[list[str]] = []
    stopped: ClassVar[list[str]] = []

    running = True  # (started, not stopped: what a move of JACK ports asks)

    def __init__(self, choice, engine, samplerate, period, jack_clients=None):
        if choice.input.name in self.gone or (choice.monitor and choice.monitor.name in self.gone):
            name = choice.input.name if choice.input.name in self.gone else choice.monitor.name
            raise DeviceError(f"{name} could not be opened", "plug it back in")
        self.choice = choice
        self.period = period  # (what the engine plans for: DeviceStreams may raise it, for PipeWire's quantum)
        self.pipewire_defaults = None  # (no PipeWire here: no quantum to follow)
        engine.monitor_opened(choice.monitor is not None)  # (as DeviceStreams does)

    def start(self, jack_latency: bool = True) -> None:
        if self.choice.input.name in self.busy:
            raise DeviceError(f"could not start {self.choice.input.name}", "is the device in use or unplugged?")
        if self.choice.input.name in self.stuck:
            from rtvc.audio.io import StartHung

            raise StartHung("the audio stream did not start within 10 s: PortAudio hung in this process", "restart")
        self.started.append(self.choice.input.name)

    def jack_latency(self) -> None:  # (ALSA devices here: nothing to ask, as DeviceStreams does for them)
        pass

    def stop(self) -> bool:
        if self.choice.input.name in self.hung:
            return False
        self.stopped.append(self.choice.input.name)
        return True


class PortAudio:
    """PortAudio's device list as it was read: `unlisted` names are not in it; `rescan()` reads it again, and
    then finds the `plugged` ones (plugged in since). `refuse`: the error a rescan raises (a dead JACK server)."""

    unlisted: ClassVar[set[str]] = set()
    plugged: ClassVar[set[str]] = set()
    refuse: ClassVar[DeviceError | None] = None
    rescans: ClassVar[int] = 0
    quiet: ClassVar[list[bool]] = []  # each read's `quiet` (rtvc.audio.devices.rescan: its line in the debug log)

    @classmethod
    def rescan(cls, quiet: bool = False) -> None:
        if cls.refuse is not None:
            raise cls.refuse
        cls.rescans += 1
        cls.quiet.append(quiet)
        cls.unlisted = cls.unlisted - cls.plugged

    # what a new PortAudio would list, read in a child while the streams run (rtvc.audio.devices.listing_anew)
    @classmethod
    def nothing_new(cls) -> bool:
        return not cls.unlisted & cls.plugged

    @classmethod
    def listing_unchanged(cls, in_use) -> bool:
        return cls.nothing_new() and not any(d.name in cls.unlisted for d in in_use if d is not None)


@pytest.fixture
def switcher(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
    (tmp_path / "config.toml").write_text(
        '[voice]\nprofile = "passthrough"\n[audio]\ninput_device = "usb mic"\noutput_device = "headphones"\n'
    )
    cfg = load_config(tmp_path / "config.toml")
    engine = build_engine(cfg)
    engine.start()
    monkeypatch.setattr(switch, "DeviceStreams", Streams)

    def choose(a, fixed=None):
        fixed = fixed or {}
        for role, name in (("input", a.input_device), ("output", a.output_device), ("monitor", a.monitor_device)):
            if role not in fixed and name in PortAudio.unlisted:
                raise DeviceNotFound(f"no device matches '{name}'", "see `rtvc devices`")
        mon = fixed.get("monitor") or (Dev(a.monitor_device) if a.monitor_device else None)
        return Choice(fixed.get("input") or Dev(a.input_device), fixed.get("output") or Dev(a.output_device), mon)

    def find_pinned(dev, role):  # (a device's pin is the device itself here)
        if dev.name in PortAudio.unlisted:
            raise DeviceNotFound(f"the {role} device '{dev.name}' is gone", "plug it back in")
        return dev

    monkeypatch.setattr(switch, "choose_devices", choose)
    monkeypatch.setattr(switch, "pin_device", lambda dev: dev)
    monkeypatch.setattr(switch, "find_pinned", find_pinned)
    monkeypatch.setattr(switch, "rescan_devices", PortAudio.rescan)
    monkeypatch.setattr(switch, "nothing_new", PortAudio.nothing_new)
    monkeypatch.setattr(switch, "listing_unchanged", PortAudio.listing_unchanged)
    for name, value in (("unlisted", set()), ("plugged", set()), ("refuse", None), ("rescans", 0), ("quiet", [])):
        monkeypatch.setattr(PortAudio, name, value)
    monkeypatch.setattr(Streams, "gone", set())
    monkeypatch.setattr(Streams, "busy", set())
    monkeypatch.setattr(Streams, "hung", set())
    monkeypatch.setattr(Streams, "stuck", set())
    monkeypatch.setattr(Streams, "started", [])
    monkeypatch.setattr(Streams, "stopped", [])
    first = Choice(Dev("usb mic"), Dev("headphones"))
    s = switch.DeviceSwitcher(engine, cfg.audio, first, Streams(first, engine, 48000, 256))
    engine.resume(256)
    yield s
    engine.stop()


def test_new_devices_that_do_not_open_leave_the_old_ones(switcher):
    Streams.gone = {"webcam mic"}
    with pytest.raises(DeviceError, match="webcam mic could not be opened"):
        switcher.switch("webcam mic", None)
    assert switcher.in_use()["input"] == "usb mic"
    assert switcher.engine.status().state == "running"


def test_new_devices_that_open_but_do_not_start_leave_the_old_ones_running(switcher):
    Streams.busy = {"webcam mic"}  # another program holds it: it opens, then refuses to start
    with pytest.raises(DeviceError, match="could not start webcam mic") as e:
        switcher.switch("webcam mic", None)
    assert not isinstance(e.value, switch.AudioLost)  # the reply may say the current devices stay: they do
    # (tried again once after reading the device list again), then the old ones again
    assert Streams.stopped == ["usb mic", "webcam mic", "webcam mic"] and Streams.started == ["usb mic"]
    assert PortAudio.rescans == 1
    assert switcher.streams.choice.input.name == "usb mic" and switcher.in_use()["input"] == "usb mic"
    assert switcher.engine.status().state == "running"


def test_when_old_and_new_devices_both_fail_both_are_named_and_status_says_so(switcher):
    Streams.gone = {"webcam mic", "usb mic"}  # the old mic was unplugged while the switch ran
    with pytest.raises(switch.AudioLost) as e:
        switcher.switch("webcam mic", None)
    assert "webcam mic could not be opened" in str(e.value) and "usb mic could not be opened" in str(e.value)
    assert "devices.select" in str(e.value)
    st = switcher.engine.status()
    assert st.state == "failed" and "usb mic" in st.detail
    Streams.gone = set()  # plugged back in: a later switch brings the engine back
    assert switcher.switch("usb mic", None)["in_use"]["input"] == "usb mic"
    st = switcher.engine.status()
    assert (st.state, st.detail) == ("starting", "")  # until the new stream's first callback sets its period


def test_a_monitor_device_is_added_changed_and_dropped_and_the_others_stay(switcher):
    assert switcher.switch(None, None, "headphones 2")["in_use"] == {
        "virtual": False, "input": "usb mic", "output": "headphones", "monitor": "headphones 2",
    }  # fmt: skip
    assert switcher.audio.monitor_device == "headphones 2"
    assert switcher.switch("webcam mic", None)["in_use"]["monitor"] == "headphones 2"  # None keeps it
    assert switcher.switch(None, None, "")["in_use"]["monitor"] is None  # "" drops it
    Streams.gone = {"usb mic"}
    with pytest.raises(DeviceError):
        switcher.switch("usb mic", None, "headphones 3")
    assert switcher.in_use()["monitor"] is None and switcher.audio.monitor_device == ""  # nothing changed


def test_a_lost_monitor_is_dropped_by_the_next_switch_not_reopened(switcher):
    """Headphones unplugged, then the mic changed: the lost monitor was chosen again (PortAudio's list does not
    change while rtvc runs), failed to open, and took the switch, and the fallback to the old devices, with it."""
    assert switcher.switch(None, None, "headset")["in_use"]["monitor"] == "headset"
    switcher.engine.monitor_enabled = True
    Streams.gone = {"headset"}
    switcher.engine.monitor_lost("the monitor stream stopped: headset failed or disappeared")
    assert not switcher.engine.monitor_enabled  # hear-myself off: it has nowhere to go
    assert switcher.switch("webcam mic", None)["in_use"] == {
        "virtual": False, "input": "webcam mic", "output": "headphones", "monitor": None,
    }  # fmt: skip
    assert switcher.audio.monitor_device == "" and switcher.engine.status().state == "running"
    # and when the new devices fail, the old ones come back without the lost monitor
    assert switcher.switch(None, None, "headset 2")["in_use"]["monitor"] == "headset 2"
    Streams.gone = {"headset 2", "usb mic"}
    switcher.engine.monitor_lost("the monitor stream stopped: headset 2 failed or disappeared")
    with pytest.raises(DeviceError, match="usb mic could not be opened"):
        switcher.switch("usb mic", None)
    assert switcher.in_use()["input"] == "webcam mic" and switcher.in_use()["monitor"] is None
    assert switcher.engine.status().state == "running"


def test_a_device_in_the_list_is_switched_to_without_reading_the_list_again(switcher):
    assert switcher.switch("webcam mic", None)["in_use"]["input"] == "webcam mic"
    assert PortAudio.rescans == 0  # (a rescan stops the audio for longer)


def test_a_device_plugged_in_after_start_is_found_by_reading_the_list_again(switcher):
    PortAudio.unlisted = PortAudio.plugged = {"new headset"}
    assert switcher.switch(None, "new headset")["in_use"]["output"] == "new headset"
    assert PortAudio.rescans == 1
    assert Streams.stopped == ["usb mic"] and Streams.started == ["usb mic"]  # the new pair runs
    assert switcher.engine.status().state == "running"


def test_a_name_found_nowhere_leaves_the_old_devices_running_after_looking_again(switcher):
    PortAudio.unlisted, PortAudio.plugged = {"no-such-card", "webcam"}, {"webcam"}  # (something else plugged in)
    with pytest.raises(DeviceNotFound, match="no device matches 'no-such-card'") as e:
        switcher.switch("no-such-card", None)
    assert not isinstance(e.value, switch.AudioLost)
    assert PortAudio.rescans == 1
    assert Streams.started == ["usb mic"] and switcher.in_use()["input"] == "usb mic"
    assert switcher.engine.status().state == "running"


def test_a_name_found_nowhere_with_nothing_plugged_in_since_stops_nothing(switcher):
    """A device name mistyped (a Stream Deck key) stopped the voice for a quarter of a second to read the list
    again, while the answer said the current devices stayed: where a new PortAudio, in a child process, lists no
    device the list lacks, it is refused as it is."""
    PortAudio.unlisted = {"no-such-card"}
    for ask in (("no-such-card", None), (None, "no-such-card"), (None, None, "no-such-card")):
        with pytest.raises(DeviceNotFound, match="no device matches 'no-such-card'"):
            switcher.switch(*ask)
    assert PortAudio.rescans == 0 and Streams.stopped == [] and Streams.started == []
    assert switcher.in_use()["input"] == "usb mic" and switcher.engine.status().state == "running"


def test_after_the_streams_failed_the_list_is_read_again(switcher):
    """A USB mic plugged out and back in keeps its stale entry in PortAudio's list: reopening it by that entry
    fails until the list is read again."""
    switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
    assert switcher.switch("usb mic", None)["in_use"]["input"] == "usb mic"
    assert PortAudio.rescans == 1
    assert switcher.engine.status().state == "starting"  # until the new streams' first callback


def test_rescan_on_request_reopens_the_current_devices(switcher):
    PortAudio.unlisted = PortAudio.plugged = {"new headset"}
    got = switcher.rescan()
    assert got["in_use"] == {"virtual": False, "input": "usb mic", "output": "headphones", "monitor": None}
    assert PortAudio.rescans == 1 and Streams.started == ["usb mic"]


def test_a_rescan_on_request_with_nothing_plugged_in_or_out_stops_nothing(switcher):
    got = switcher.rescan()
    assert got["in_use"] == {"virtual": False, "input": "usb mic", "output": "headphones", "monitor": None}
    assert got["changed"] is False  # (no event)
    assert PortAudio.rescans == 0 and Streams.stopped == [] and Streams.started == []


def test_a_list_that_cannot_be_read_again_leaves_the_old_devices(switcher):
    PortAudio.unlisted = PortAudio.plugged = {"new headset"}
    PortAudio.refuse = DeviceError("the JACK server rtvc started on no longer answers", "start it and restart rtvc")
    with pytest.raises(DeviceError) as e:
        switcher.switch(None, "new headset")
    assert str(e.value).startswith(
        "no device matches 'new headset'; and the device list could not be read again: the JACK server rtvc"
    )
    assert switcher.in_use()["output"] == "headphones" and Streams.started == ["usb mic"]
    assert switcher.engine.status().state == "running"


def test_a_stop_that_hangs_gives_the_same_answer_until_rtvc_restarts(switcher):
    """The JACK server died under the daemon: PortAudio's stop never returns, and PortAudio cannot be used
    again in this process. Every later switch says so in the same words (the second one used to try to open
    the new devices, and failed with 'Insufficient memory')."""
    Streams.hung = {"usb mic"}
    answers = []
    for _ in range(2):
        with pytest.raises(switch.AudioLost) as e:
            switcher.switch("webcam mic", None)
        answers.append(str(e.value))
    assert answers[0] == answers[1] and "did not stop" in answers[0] and "restart rtvc serve" in answers[0]
    with pytest.raises(switch.AudioLost, match="did not stop"):
        switcher.rescan()
    assert Streams.started == [] and PortAudio.rescans == 0  # nothing opened, PortAudio left alone


def test_a_start_that_hangs_ends_the_recovery_and_serve_starts_anew(switcher, monkeypatch):
    """After a restart of PipeWire, PortAudio's start of the reopened streams on its ALSA plugin never returned
    (PortAudio 19.6: its stream thread's own start failed, and nothing woke the caller): the recovery held the
    switch lock for ever, status said "not back yet" and no one was told. The start is given up after
    START_TIMEOUT_S, nothing else is opened (PortAudio is done for in this process), and serve starts anew (off
    JACK, at once; rtvc.restart bounds how often); where it may not, the user is told to restart it."""
    switcher.engine.report_device_error("audio stream stopped: the device failed or disappeared")
    Streams.stuck = {"usb mic"}
    switcher.restart_refused = lambda: ""  # (serve's rtvc.restart.refusal, where it may start anew)
    switcher.recover_due(0.0)
    assert switcher.recover() is False
    assert switcher.restart_wanted.startswith("the audio stream did not start within 10 s")
    st = switcher.engine.status()
    assert st.state == "failed" and "(rtvc serve restarts itself now)" in st.detail
    assert Streams.started == [] and PortAudio.rescans == 1  # (the old devices were not tried again: hung too)
    assert not switcher.recover_due(100.0) and switcher.stuck()
    with pytest.raises(switch.AudioLost, match="did not start within 10 s"):
        switcher.switch("webcam mic", None)

    refused = "rtvc serve did not start itself anew: it already did so 3 times in 10 minutes"
    switcher._wedged, switcher.restart_wanted, switcher.restart_refused = "", "", lambda: refused
    with pytest.raises(switch.AudioLost) as e:
        switcher.rescan()
    assert f"{refused}: it starts itself anew once that many are older, or restart rtvc serve" in str(e.value)
    assert switcher.restart_wanted == ""
    switcher.restart_refused = lambda: ""  # (the bound passed: off JACK, serve is asked to start anew at once)
    deadline = time.monotonic() + 5
    while not switcher.restart_wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert switcher.restart_wanted.startswith("the audio stream did not start within 10 s"), switcher.restart_wanted


def test_a_jack_server_gone_once_too_often_says_why_rtvc_did_not_start_anew(switcher, monkeypatch):
    """The fourth JACK restart in 10 minutes left serve failed for good, its detail saying only "...cannot let go of
    it (restart rtvc serve)": nothing said that rtvc had not started itself anew, or why. The bound stays (a JACK
    server in a crash loop must not make rtvc start anew for ever); status and the answers now say it."""
    from rtvc import restart

    now = time.time()
    monkeypatch.setenv(restart.RESTARTS_ENV, ",".join(f"{now - s:.3f}" for s in (300, 200, 100)))
    jack = Choice(Dev("system", "JACK Audio Connection Kit"), Dev("system", "JACK Audio Connection Kit"))
    switcher.choice = jack
    switcher.restart_refused = restart.refusal
    monkeypatch.setattr(switcher, "_jack_links", lambda current: None)  # (no JACK server here to ask)
    monkeypatch.setattr(switcher, "_jack_clients", lambda current, choice: None)
    Streams.hung = {"usb mic"}  # (the streams' device: their stop hangs, as on a JACK server gone)
    monkeypatch.setattr("rtvc.audio.jack_probe.jack_server", lambda *a, **k: "answers")  # (a new one, at once)
    PortAudio.unlisted = PortAudio.plugged = {"new headset"}  # (so that the rescan stops the streams)
    with pytest.raises(switch.AudioLost) as e:
        switcher.rescan()  # (its stop hangs: PortAudio stuck on the server gone)
    said = (
        "rtvc serve did not start itself anew: it already did so 3 times in 10 minutes: it starts itself anew once "
        "that many are older, or restart rtvc serve"
    )
    assert said in str(e.value), e.value
    assert said in switcher.in_use()["stopped"] and said in switcher.engine.status().detail
    # the bound passed, the JACK server back (answering since the rescan, below): serve is asked to start anew (it
    # stayed silent for good: a review)
    time.sleep(1.5)
    assert switcher.restart_wanted == ""  # (still within the bound)
    monkeypatch.setenv(restart.RESTARTS_ENV, ",".join(f"{now - s:.3f}" for s in (900, 200, 100)))
    deadline = time.monotonic() + 5
    while not switcher.restart_wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert switcher.restart_wanted, "serve was not asked to start anew once it may"


def test_a_rescan_that_hangs_gives_the_same_answer_until_rtvc_restarts(switcher, monkeypatch):
    def hangs(quiet: bool = False):
        raise RescanHung("PortAudio did not restart within 10 s while reading the device list again", "restart rtvc")

    monkeypatch.setattr(switch, "rescan_devices", hangs)
    PortAudio.unlisted = PortAudio.plugged = {"new headset"}  # (a rescan with nothing new stops nothing)
    for _ in range(2):
        with pytest.raises(switch.AudioLost, match="PortAudio did not restart within 10 s"):
            switcher.rescan()
    assert switcher.engine.status().state == "failed"


def test_a_device_in_use_that_is_gone_after_a_rescan_is_named(switcher):
    PortAudio.unlisted = {"usb mic"}  # unplugged, its stream not (yet) failed
    with pytest.raises(switch.AudioLost) as e:
        switcher.rescan()
    assert str(e.value).startswith("the input device 'usb mic' is gone; no device runs now")
    assert switcher.in_use()["stopped"].startswith("the input device 'usb mic' is gone")
    assert switcher.engine.status().state == "failed"
    PortAudio.plugged = {"usb mic"}
    assert "stopped" not in switcher.switch("usb mic", None)["in_use"]


def test_new_devices_that_do_not_open_are_looked_for_in_a_new_list_once(switcher):
    """An entry gone stale (the device unplugged since the list was read) fails to open: the list is read again,
    and the device's new entry opens."""
    opened = []

    class Stale(Streams):
        def __init__(self, choice, engine, samplerate, period, jack_clients=None):
            opened.append(choice.input.name)
            if choice.input.name == "webcam mic" and PortAudio.rescans == 0:
                raise DeviceError("could not open the audio device: Unanticipated host error", "check it")
            super().__init__(choice, engine, samplerate, period)

    switch.DeviceStreams = Stale  # (monkeypatched by the fixture: restored after the test)
    assert switcher.switch("webcam mic", None)["in_use"]["input"] == "webcam mic"
    assert opened == ["webcam mic", "webcam mic"] and PortAudio.rescans == 1


def test_devices_that_failed_are_reopened_when_they_come_back(switcher):
    """A USB microphone unplugged: its stream fails. The daemon looks for it every RECOVER_S in a fresh device
    list and reopens it once it is plugged back in; meanwhile status says so."""
    switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
    assert not switcher.recover_due(100.0)  # (first seen failed now)
    assert not switcher.recover_due(100.0 + switch.RECOVER_S / 2)
    assert switcher.recover_due(100.0 + switch.RECOVER_S)
    PortAudio.unlisted = {"usb mic"}  # still unplugged
    assert switcher.recover() is False
    st = switcher.engine.status()
    assert st.state == "failed" and st.detail.startswith("input stream stopped: the device failed or disappeared")
    assert "not back yet (the input device 'usb mic' is gone; no device runs now)" in st.detail
    assert "rtvc looks for it every 2 s" in st.detail
    assert not switcher.recover_due(101.0 + switch.RECOVER_S)  # the next try waits its turn
    assert switcher.recover_due(100.0 + 2 * switch.RECOVER_S)
    PortAudio.plugged = {"usb mic"}  # plugged back in
    assert switcher.recover() is True
    assert PortAudio.rescans == 2 and Streams.started == ["usb mic"]
    assert switcher.in_use()["input"] == "usb mic"
    st = switcher.engine.status()
    assert (st.state, st.detail) == ("starting", "")  # running from the new streams' first callback
    assert not switcher.recover_due(200.0)


def test_a_device_gone_for_long_reads_the_device_list_when_the_system_changed_not_every_2_s(switcher, monkeypatch):
    """Each try reads PortAudio's list again (20-200 ms, ~17 KiB kept where PipeWire's ALSA plugin is installed):
    every RECOVER_S while a USB microphone stayed unplugged, 30 MB an hour. For a minute every look still tries; after
    it, a look tries only when the system's sound devices changed (a card plugged in, a sound server started again), or
    READ_LATER_S after the last try."""
    system = ["no usb mic"]
    monkeypatch.setattr(devices, "system_audio", lambda: (system[0],))
    switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
    t, tries = 1000.0, []
    assert not switcher.recover_due(t)  # (first seen failed now)
    while t < 1000.0 + 300.0:
        t += switch.RECOVER_S
        if switcher.recover_due(t):
            tries.append(t - 1000.0)
    assert tries[:29] == [switch.RECOVER_S * k for k in range(1, 30)]  # every look for the first minute
    later = [b - a for a, b in itertools.pairwise(tries[28:])]
    assert later and all(d == devices.READ_LATER_S for d in later), tries
    # a card plugged in: the next look tries, at once
    system[0] = "usb mic plugged in"
    assert switcher.recover_due(t + switch.RECOVER_S)
    assert not switcher.recover_due(t + 2 * switch.RECOVER_S)  # (seen: the next waits for a change or 30 s)


def test_the_system_audio_seen_changes_when_a_sound_server_starts_again(tmp_path, monkeypatch):
    """What Rereads compares: the real files. PipeWire started again makes a new socket (a new inode); nothing done,
    nothing changes."""
    import socket

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("PIPEWIRE_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("PIPEWIRE_REMOTE", raising=False)

    def server() -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / "pipewire-0"))
        return s

    none = devices.system_audio()
    first = server()
    running = devices.system_audio()
    assert running != none and devices.system_audio() == running
    first.close()
    (tmp_path / "pipewire-0").unlink()
    second = server()
    try:
        assert devices.system_audio() not in (running, none)
    finally:
        second.close()


def test_a_device_gone_for_long_is_said_once_in_the_log_not_at_every_try(switcher, caplog):
    """While a device stays unplugged the daemon tries every RECOVER_S; each try logged the list read again and the
    reopen refused: two lines every 2 s, 3600 an hour in a service's journal. The first try says them; the next ones
    go to the debug log while the reason stays the same; once back, a new loss is said again."""
    import logging

    caplog.set_level(logging.DEBUG, logger="rtvc")

    def said(text: str, level: int = logging.INFO) -> int:
        return sum(text in r.getMessage() for r in caplog.records if r.levelno == level)

    def lose() -> None:
        switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
        PortAudio.unlisted, PortAudio.plugged = {"usb mic"}, set()
        for _ in range(5):
            assert switcher.recover() is False

    lose()
    assert PortAudio.quiet == [False, True, True, True, True]
    assert said("they did not reopen") == 1 and said("they did not reopen", logging.DEBUG) == 4
    PortAudio.plugged = {"usb mic"}
    assert switcher.recover() is True and said("devices back after a failure") == 1
    assert switcher.recover_due(500.0) is False  # (running: what was said of the loss is forgotten)
    lose()
    assert PortAudio.quiet == [False, True, True, True, True, True, False, True, True, True, True]  # (+1: came back)
    assert said("they did not reopen") == 2 and said("they did not reopen", logging.DEBUG) == 8


def test_running_devices_are_left_alone(switcher):
    assert not switcher.recover_due(0.0) and not switcher.recover_due(1000.0)
    assert switcher.recover() is False and Streams.stopped == [] and PortAudio.rescans == 0


def test_a_stop_that_hangs_ends_the_recovery_and_says_to_restart(switcher):
    switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
    Streams.hung = {"usb mic"}
    switcher.recover_due(0.0)
    assert switcher.recover() is False
    st = switcher.engine.status()
    assert st.state == "failed" and "did not stop" in st.detail and "restart rtvc serve" in st.detail
    assert not switcher.recover_due(100.0) and PortAudio.rescans == 0


def _devices(*rows: tuple[int, str, str, int, int]) -> list[devices.Device]:
    return [devices.Device(i, name, api, n_in, n_out, 48000.0, 0.01, 0.01) for i, name, api, n_in, n_out in rows]


def test_a_pin_finds_the_same_device_after_the_list_is_renumbered(monkeypatch):
    """Two identical USB headsets on two host APIs (as Windows lists them under MME and WASAPI): the pinned one
    is found again by name, host API and its place among its twins, whatever the new indices."""
    before = _devices(
        (0, "Speakers (Realtek)", "MME", 0, 2),
        (1, "Microphone (USB Audio)", "MME", 1, 0),
        (2, "Microphone (USB Audio)", "MME", 1, 0),
        (3, "Microphone (USB Audio)", "Windows WASAPI", 1, 0),
    )
    monkeypatch.setattr(devices, "list_devices", lambda: before)
    pin = devices.pin_device(before[2])
    assert pin == devices.Pin("Microphone (USB Audio)", "MME", 1)
    after = _devices(
        (0, "Headset (new)", "MME", 1, 2),
        (1, "Speakers (Realtek)", "MME", 0, 2),
        (2, "Microphone (USB Audio)", "MME", 1, 0),
        (3, "Microphone (USB Audio)", "MME", 1, 0),
        (4, "Microphone (USB Audio)", "Windows WASAPI", 1, 0),
    )
    monkeypatch.setattr(devices, "list_devices", lambda: after)
    assert devices.find_pinned(pin, "input").index == 3
    assert devices.find_pinned(devices.pin_device(before[3]), "input").index == 4
    monkeypatch.setattr(devices, "list_devices", lambda: after[:2])
    with pytest.raises(DeviceNotFound) as e:
        devices.find_pinned(pin, "input")
    assert str(e.value).startswith("the input device 'Microphone (USB Audio)' (MME) is gone")


def test_a_device_that_stays_busy_is_looked_for_with_the_same_words_for_hours(switcher):
    """A device in the list that opens but will not start (another program holds it): each try reopens it, and while
    its streams start the engine is briefly not failed. The daemon's loop polled recover_due meanwhile: that was a
    recovery, and the next failure's words (already 'X; not back yet (...)') became the cause the next try quoted,
    so the detail (status, every engine event, a log line) grew by a sentence at each poll that landed there, for
    as long as the device stayed busy (here every poll lands there)."""
    polls: list[float] = []

    class Polled(Streams):
        def start(self, jack_latency: bool = True) -> None:
            switcher.recover_due(polls[-1] + 0.25)  # (serve's loop, every POLL_S, while the recovery runs)
            super().start(jack_latency)

    switch.DeviceStreams = Polled  # (monkeypatched by the fixture: restored after the test)
    Streams.busy = {"usb mic"}
    switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
    details = []
    for k in range(10):
        polls.append(100.0 + k * switch.RECOVER_S)
        if switcher.recover_due(polls[-1]) or switcher.recover_due(polls[-1] + switch.RECOVER_S / 2):
            assert switcher.recover() is False
        details.append(switcher.engine.status().detail)
    assert details[-1].startswith("input stream stopped: the device failed or disappeared; not back yet")
    assert details[-1].count("not back yet") == 1 and len(set(details[2:])) == 1


def test_under_the_virtual_microphone_another_output_is_refused_touching_nothing(switcher):
    """Under audio.virtual_mic the output is "rtvc voice", what the call records: a switch of the output to speakers
    (the TUI offered every output) took the voice from the call without a word."""
    import dataclasses

    switcher.audio = dataclasses.replace(switcher.audio, virtual_mic=True)
    for output in ("speakers", ""):
        with pytest.raises(DeviceError, match="would take your voice from the call") as e:
            switcher.switch(None, output)
        assert "hear-myself" in e.value.fix and "--virtual-mic" in e.value.fix
    assert Streams.stopped == [] and switcher.in_use()["output"] == "headphones"
    assert switcher.in_use()["virtual_mic"] is True
    assert switcher.switch("webcam mic", None)["in_use"]["input"] == "webcam mic"  # (the other roles switch)


def test_a_switch_asked_for_about_earlier_devices_is_not_made_on_these(switcher):
    """A follow of PipeWire's default (or a quantum's reopen) is asked for about the devices running then; a user's
    switch meanwhile (a reopen, or a move of rtvc's JACK ports, which keeps the streams) stands."""
    setup = switcher._setup
    assert switcher.switch("webcam mic", None)["in_use"]["input"] == "webcam mic"
    assert switcher.switch("usb mic", None, only_if=setup) is None
    assert switcher.in_use()["input"] == "webcam mic"
    assert switcher.switch("usb mic", None, only_if=switcher._setup)["in_use"]["input"] == "usb mic"


def test_rtvcs_own_jack_client_is_no_device_to_move_to(switcher, monkeypatch):
    """A JACK client not in PortAudio's list is moved to by its exact name; rtvc's own client (never listed: it has no
    ports when the list is read) would feed rtvc its own output, a howl: the name is refused (a new PortAudio, in a
    child, lists it, and it is no new device: rtvc.audio.devices.listing_anew)."""
    from rtvc.audio import jack_links

    jack = "JACK Audio Connection Kit"
    first = Choice(Dev("usb mic", jack), Dev("headphones", jack))
    switcher.choice = switcher.streams.choice = first
    moved = []
    monkeypatch.setattr(jack_links, "own_name", lambda: "rtvc")
    monkeypatch.setattr(jack_links, "client_ports", lambda name: (2, 2))  # (its ports: JACK lists them)
    monkeypatch.setattr(jack_links, "route", lambda groups: (moved.append(groups), None, None))
    PortAudio.unlisted = {"rtvc"}
    with pytest.raises(DeviceNotFound, match="rtvc"):
        switcher.switch("rtvc", None)
    assert moved == [] and PortAudio.rescans == 0 and switcher.in_use()["input"] == "usb mic"


def test_a_reopen_connects_rtvcs_new_ports_as_each_role_had_them():
    """After a reopen, the ports of a role whose device and channels are the same get their connections back, and
    those waited for on them (by the old port's name: PortAudio numbers the ports anew); a role on another device,
    or with another count of channels (stereo speakers for mono ones), gets PortAudio's connections to its device
    and, again, those to the programs the user connected (OBS), on the same ports of the role."""
    from rtvc.audio.switch import _links_after

    jack = "JACK Audio Connection Kit"
    mic, mono, stereo, phones, desk = (Dev(n, jack) for n in ("mic", "mono", "stereo", "phones", "desk"))
    old = Choice(mic, mono, phones, monitor_channels=2, output_channels=1)
    peers = {
        "inputs": [["mic:capture_1", "suppressor:out"]],
        "outputs": [["mono:in", "obs:in_1", "stereo:playback_2"], ["phones:l", "rec:in"], ["phones:r"]],
    }
    links = ("rtvc", peers, {"inputs": ["rtvc:in_0"], "outputs": ["rtvc:out_0", "rtvc:out_1", "rtvc:out_2"]})
    waited = [
        ["outputs", "rtvc:out_0", "obs2:in_1"],
        ["outputs", "rtvc:out_2", "rec:in_r"],
        ["inputs", "rtvc:in_0", "mic:x"],
    ]
    before = {"input": mic, "output": mono, "monitor": phones}
    # other speakers (stereo), the same headphones on the same ports' count, the same microphone
    new = Choice(mic, stereo, phones, monitor_channels=2, output_channels=2)
    restore, add, expected = _links_after(links, waited, old, before, new)
    assert restore == {
        "inputs": [["mic:capture_1", "mic:x", "suppressor:out"]],
        "outputs": [None, None, ["phones:l", "rec:in"], ["phones:r", "rec:in_r"]],
    }
    assert add == {"outputs": [["obs2:in_1", "obs:in_1"], []]}  # (not the old nor the new speakers')
    assert expected["outputs"] == [["obs:in_1"], [], ["phones:l", "rec:in"], ["phones:r"]]  # (no program gone)
    # the headphones with one channel now: the monitor's first port's others only; the input's device changed too
    other = Choice(Dev("usb", jack), stereo, desk, monitor_channels=1, output_channels=2)
    restore, add, _ = _links_after(links, waited, old, before, other)
    assert restore == {}
    assert add == {"inputs": [["suppressor:out"]], "outputs": [["obs2:in_1", "obs:in_1"], [], ["rec:in"]]}
    # the output off JACK: the monitor's ports are the first of the client's
    alsa = Choice(mic, Dev("hdmi"), phones, monitor_channels=2, output_channels=2)
    restore, add, _ = _links_after(links, [], old, before, alsa)
    assert restore["outputs"] == [["phones:l", "rec:in"], ["phones:r"]] and add == {}


def test_a_stream_on_a_device_portaudio_cannot_open_opens_on_another_and_its_ports_are_moved(monkeypatch):
    """rtvc.audio.io._carriers: a JACK device PortAudio cannot open (a pattern's characters in its name) opens on
    another JACK device with as many ports, "system" first; with fewer where none has as many (an output: the voice
    is the same on each channel); a monitor's ports after the output's only where the output is on JACK too."""
    from rtvc.audio import devices, io, jack_links
    from rtvc.audio.devices import Device

    jack = "JACK Audio Connection Kit"

    def dev(index, name, api=jack, inputs=2, outputs=2, by_move=False):
        return Device(index, name, api, inputs, outputs, 48000.0, 0.0, 0.0, by_move)

    system, voice = dev(0, "system", outputs=1), dev(1, "rtvc voice", inputs=1, outputs=1)
    speakers = dev(2, "Speaker + Headphones", inputs=0, outputs=2, by_move=True)
    mic, hdmi = dev(3, "mic", inputs=1, outputs=0), dev(4, "hdmi", api="ALSA", inputs=0)
    monkeypatch.setattr(devices, "list_devices", lambda: [voice, system, speakers, mic, hdmi])
    monkeypatch.setattr(jack_links, "clients", lambda: ["system", "rtvc voice", "Speaker + Headphones", "mic"])
    # the output on JACK: the monitor's ports after its one; "system" before rtvc's virtual microphone, with one
    # port for the speakers' two
    choice = io.DeviceChoice(mic, voice, speakers, 1, 1, 2)
    streams, opened, moves = io._carriers(choice)
    assert opened == {"input": mic, "output": voice, "monitor": system}
    assert moves == [("outputs", 1, 1, "Speaker + Headphones", "system", 2)]
    assert (streams.output_channels, streams.monitor_channels) == (1, 1)
    # the output on ALSA: the monitor's are the JACK client's first outputs
    streams, opened, moves = io._carriers(io.DeviceChoice(mic, hdmi, speakers, 1, 2, 2))
    assert moves == [("outputs", 0, 1, "Speaker + Headphones", "system", 2)] and streams.output_channels == 2
    # no JACK device with an output port: refused, naming it
    monkeypatch.setattr(devices, "list_devices", lambda: [speakers, mic, hdmi])
    with pytest.raises(DeviceError, match="no other JACK device has 1 output port"):
        io._carriers(choice)
    # a device another client's name ends with (come since the list was read): moved to as well
    monkeypatch.setattr(devices, "list_devices", lambda: [voice, system, mic])
    monkeypatch.setattr(jack_links, "clients", lambda: ["system", "rtvc voice", "mic", "USB mic"])
    _, opened, moves = io._carriers(io.DeviceChoice(mic, voice, None, 1, 1, 0))
    assert opened["input"] == system and moves == [("inputs", 0, 1, "mic", "system", 1)]
    # nor one another client's name ends with now, nor one closed since the list was read: PortAudio would find
    # another client's ports for it too, or fail
    phones = dev(5, "Phones", outputs=2)
    monkeypatch.setattr(devices, "list_devices", lambda: [phones, dev(6, "rtvc-gone", outputs=2), voice, speakers])
    monkeypatch.setattr(jack_links, "clients", lambda: ["Phones", "USB Phones", "rtvc voice", "Speaker + Headphones"])
    _, opened, moves = io._carriers(io.DeviceChoice(mic, voice, speakers, 1, 1, 2))
    assert opened["monitor"] == voice and moves == [("outputs", 1, 1, "Speaker + Headphones", "rtvc voice", 2)]


def test_a_jack_watch_that_ended_leaves_no_pipe_open(monkeypatch):
    """Each device rescan starts a new JACK watch (a child process); the one before closed none of its pipes, left
    to the garbage collector: a soak test saw 16 more fds open after a few minutes of rescans, back only at a full
    collection. Here four watches whose child ends at once (no JACK server to watch), the collector off."""
    import gc

    from rtvc.audio.jack_watch import JackWatch

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "rtvc-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    gc.disable()
    try:
        watches = [JackWatch("rtvc", lambda _line: None) for _ in range(4)]
        # (the watches' own pipes: a count of the process's fds moved with other tests' watches ending meanwhile)
        pipes = [f for w in watches for f in (w._proc.stdin, w._proc.stdout, w._proc.stderr)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(f.closed for f in pipes):
            time.sleep(0.05)
        assert all(w._proc.returncode is not None for w in watches)
        assert all(f.closed for f in pipes), [f.closed for f in pipes]
    finally:
        gc.enable()


def test_a_stream_start_that_does_not_return_is_given_up_and_portaudio_left_alone(monkeypatch):
    """rtvc.audio.io's own start: PortAudio's call runs on a helper thread, given up after START_TIMEOUT_S (the
    streams kept alive, their callbacks may still come) and PortAudio is not restarted again in this process (its
    locks may be held by the thread that hung)."""
    from rtvc.audio import io

    monkeypatch.setattr(io, "START_TIMEOUT_S", 0.3)
    monkeypatch.setattr(io, "_UNCLOSED", [])
    monkeypatch.setattr(devices, "_stuck", "")
    release = threading.Event()

    class Hanging:
        def start(self) -> None:
            release.wait(10)

    class Refusing:
        def start(self) -> None:
            raise OSError("refused")

    streams = io.DeviceStreams.__new__(io.DeviceStreams)  # (no device: only the start's own code runs)
    streams.choice = Choice(Dev("pipewire"), Dev("pipewire"))  # (ALSA: PipeWire's plugin)
    streams._streams = [Refusing()]
    with pytest.raises(OSError, match="refused"):  # (an error is the caller's, as before)
        streams._start_streams()
    assert devices._stuck == ""
    hanging = Hanging()
    streams._streams = [hanging]
    t0 = time.monotonic()
    try:
        with pytest.raises(io.StartHung, match=r"did not start within 0\.3 s: PortAudio hung in this process"):
            streams._start_streams()
        assert time.monotonic() - t0 < 2.0
        assert streams._streams == []
        assert len(io._UNCLOSED) == 1 and io._UNCLOSED[0] is hanging  # (kept alive)
        with pytest.raises(DeviceError, match=r"did not start within 0\.3 s"):
            devices.rescan()
    finally:
        release.set()


def test_on_jack_a_slow_start_is_waited_for(monkeypatch, caplog):
    """A JACK server on a loaded machine may take long to run its first cycle, which PortAudio's start waits for:
    there the start is not given up (a server that does not answer is found before: _check_jack_answers)."""
    import logging

    from rtvc.audio import io

    monkeypatch.setattr(io, "START_TIMEOUT_S", 0.1)
    monkeypatch.setattr(io, "SLOW_START_S", 0.2)
    monkeypatch.setattr(io, "_UNCLOSED", [])
    monkeypatch.setattr(devices, "_stuck", "")

    class Slow:
        def start(self) -> None:
            time.sleep(0.3)

    caplog.set_level(logging.INFO, logger="rtvc")
    streams = io.DeviceStreams.__new__(io.DeviceStreams)
    streams.choice = Choice(Dev("system", "JACK Audio Connection Kit"), Dev("system", "JACK Audio Connection Kit"))
    streams._streams = [Slow()]
    streams._start_streams()
    assert devices._stuck == "" and io._UNCLOSED == []
    assert "the audio streams took 0.3 s to start" in caplog.text


def test_a_stalled_streams_thread_that_spins_makes_serve_start_anew_at_once(switcher, monkeypatch):
    """PortAudio 19.6's ALSA thread looping in its xrun handling: no callback (the engine stalled), a whole core,
    and a stop that never returns. Told by the callback thread's CPU time across two looks of serve's loop: the
    recovery gives PortAudio up at once (no stop tried) and serve starts anew. A stalled stream whose thread
    sleeps (a device that went quiet) is recovered as before; JACK's threads are the server's and not looked at."""
    import dataclasses

    from rtvc.engine import Engine

    # (a busy Python thread on a loaded machine is not a whole core: it failed once at 0.3 beside two test runs; a
    # sleeping one takes next to nothing)
    monkeypatch.setattr(switch, "SPIN_SHARE", 0.1)
    status = switcher.engine.status
    monkeypatch.setattr(switcher.engine, "status", lambda: dataclasses.replace(status(), state="stalled"))
    monkeypatch.setattr(Engine, "devices_failed", property(lambda self: True))
    switcher.restart_refused = lambda: ""
    done = threading.Event()
    tids: list[int] = []

    def spins() -> None:
        tids.append(threading.get_native_id())
        while not done.is_set():
            pass

    def sleeps() -> None:
        tids.append(threading.get_native_id())
        done.wait(10)

    counters = switcher.engine.device.counters[0]
    for body, spinning in ((sleeps, False), (spins, True)):
        done.clear()
        tids.clear()
        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        try:
            while not tids:
                time.sleep(0.01)
            counters._f.tid = tids[0]
            switcher._cpu = None
            assert switcher._spinning() == ""  # (the first look: nothing to compare with)
            time.sleep(0.5)
            said = switcher._spinning()
        finally:
            done.set()
            thread.join()
        assert bool(said) is spinning, said
    switcher._cpu = None
    thread = threading.Thread(target=spins, daemon=True)
    done.clear()
    tids.clear()
    thread.start()
    try:
        while not tids:
            time.sleep(0.01)
        counters._f.tid = tids[0]
        assert switcher.recover_due(100.0) is False  # (the first look)
        time.sleep(0.5)
        assert switcher.recover_due(100.1) is True  # (at once, not RECOVER_S after the failure)
    finally:
        done.set()
        thread.join()
    assert switcher.recover() is False
    assert switcher.restart_wanted.startswith("PortAudio's audio thread spins without calling back")
    assert Streams.stopped == [] and PortAudio.rescans == 0  # (no stop tried: it would hang)
    assert switcher.stuck()


def test_a_spinning_thread_on_jack_is_left_to_the_jack_checks(switcher, monkeypatch):
    import dataclasses

    status = switcher.engine.status
    monkeypatch.setattr(switcher.engine, "status", lambda: dataclasses.replace(status(), state="stalled"))
    switcher.choice = Choice(Dev("system", "JACK Audio Connection Kit"), Dev("system", "JACK Audio Connection Kit"))
    switcher.engine.device.counters[0]._f.tid = threading.get_native_id()
    switcher._cpu = (0.0, {})
    assert switcher._spinning() == "" and switcher._cpu == (0.0, {})  # (not even looked at)


def test_a_spin_seen_just_before_the_callbacks_came_back_is_forgotten(switcher):
    """A spin told (recover_due) whose callbacks came back before the recovery ran: left set, a later unplug hours
    on made serve start anew at once instead of reopening the device."""
    switcher._spins = "PortAudio's audio thread spins without calling back (100% of a core): it cannot be stopped"
    assert switcher.engine.devices_failed is False
    assert switcher.recover_due(100.0) is False and switcher._spins == ""
    switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
    PortAudio.unlisted = {"usb mic"}
    switcher.recover_due(200.0)
    assert switcher.recover() is False and switcher.restart_wanted == "" and not switcher.stuck()


def test_pipewires_alsa_device_is_refused_as_the_input_while_rtvc_voice_is_the_default_microphone(monkeypatch):
    """ALSA's "pipewire" (and "default" on a PipeWire desktop) records PipeWire's default microphone: made "rtvc
    voice" in the sound settings, `devices.select {"input": "0"}` was accepted and WirePlumber linked rtvc's output to
    its input (the call heard silence, a sound went round into the limiter). Refused as "rtvc voice" named is; taken
    while the default is a microphone."""
    from rtvc.audio import io, voice_mic
    from rtvc.config import AudioConfig

    def alsa(i: int, name: str) -> devices.Device:
        return devices.Device(i, name, "ALSA", 64, 64, 48000.0, 0.01, 0.01)

    monkeypatch.setattr(io, "check_rate", lambda *a: None)
    default = ["rtvc-voice"]
    monkeypatch.setattr(voice_mic, "default_node", lambda kind: default[0] if kind == "input" else "speakers")
    speakers = alsa(2, "hw:0")
    for name in ("pipewire", "default"):
        with pytest.raises(DeviceError, match="rtvc's own virtual microphone 'rtvc voice': rtvc would hear itself"):
            io.choose_devices(AudioConfig(), {"input": alsa(0, name), "output": speakers})
    default[0] = "alsa_input.usb"
    assert io.choose_devices(AudioConfig(), {"input": alsa(0, "pipewire"), "output": speakers}).input.name == "pipewire"
    default[0] = "rtvc-voice"
    assert io.choose_devices(AudioConfig(), {"input": alsa(1, "hw:1"), "output": speakers}).input.name == "hw:1"


def test_hear_myself_on_a_virtual_microphone_is_refused(monkeypatch, caplog):
    """devices.select {"monitor": "mic"} (a virtual source, which has input ports on PipeWire's JACK) with the voice
    taken from that very mic was accepted: feedback, the input's peak from -14 to -0.3 dBFS; {"monitor": "rtvc voice"}
    gave the call the voice twice (a review on PipeWire). Refused, saying why; headphones, and jackd's "system" (a
    sound card's capture and playback under one client), are taken."""
    from rtvc.audio import io, voice_mic
    from rtvc.config import AudioConfig

    def jack(i: int, name: str, outputs: int = 4) -> devices.Device:
        return devices.Device(i, name, "JACK Audio Connection Kit", 2, outputs, 48000.0, 0.01, 0.01)

    monkeypatch.setattr(io, "check_rate", lambda *a: None)
    monkeypatch.setattr(
        voice_mic,
        "nodes",
        lambda: [
            {"node.name": "mic-node", "node.description": "mic", "media.class": "Audio/Source/Virtual"},
            {"node.name": "rtvc-voice", "node.description": "rtvc voice", "media.class": "Audio/Source/Virtual"},
            {"node.name": "phones", "node.description": "Headphones", "media.class": "Audio/Sink"},
            {"node.name": "usb-src", "node.description": "USB mic", "media.class": "Audio/Source"},
        ],
    )
    mic, out = jack(0, "mic"), jack(1, "Headphones")

    def choose(monitor: devices.Device, inp: devices.Device = mic) -> io.DeviceChoice:
        return io.choose_devices(AudioConfig(), {"input": inp, "output": out, "monitor": monitor})

    with pytest.raises(DeviceError, match=r"device \[0\] mic .* is a virtual microphone: .* rtvc records again"):
        choose(jack(0, "mic"))
    with pytest.raises(DeviceError, match="recorded as a microphone, not heard") as e:
        choose(jack(0, "mic"), inp=jack(3, "USB mic"))
    assert "name your headphones or speakers for hear-myself" in e.value.fix
    with pytest.raises(DeviceError, match="rtvc's own virtual microphone: the call would hear the voice twice"):
        choose(jack(2, "rtvc voice"))
    # the output itself: the voice twice into it (a review: a tone of 0.6 came out at 1.2). Under JACK said (the
    # user may route the monitor's ports to the card's other outputs); elsewhere refused
    with caplog.at_level(logging.INFO, logger="rtvc"):
        assert choose(jack(1, "Headphones")).monitor.name == "Headphones"
    assert "is the output device: connect rtvc's monitor ports to other outputs of it" in caplog.text
    # ... where it has other outputs: a card of two (JACK's dummy "system"), both streams on the same two, the voice
    # twice as loud with the warning in a log nobody read (a review)
    two = jack(1, "Headphones", outputs=2)
    with pytest.raises(DeviceError, match=r"is the output device: .* past full scale\); it has no outputs but the 2 "):
        io.choose_devices(AudioConfig(), {"input": mic, "output": two, "monitor": two})
    alsa = devices.Device(6, "USB Audio", "ALSA", 2, 2, 48000.0, 0.01, 0.01)
    with pytest.raises(DeviceError, match=r"is the output device: the voice plays there already") as e:
        io.choose_devices(AudioConfig(), {"input": mic, "output": alsa, "monitor": alsa})
    assert "leave audio.monitor_device empty" in e.value.fix
    assert choose(jack(5, "Phones")).monitor.name == "Phones"
    assert choose(jack(4, "system"), inp=jack(4, "system")).monitor.name == "system"
