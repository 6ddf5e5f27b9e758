"""`devices.select` when the devices fail under it: the error names what failed and status says so.

The PortAudio streams are stood in for here (a device that vanishes between being found and being opened
cannot be timed on a JACK server); the switch itself runs over real callbacks in test_device_switch.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pytest

import rtvc.audio.switch as switch
from rtvc.audio.devices import DeviceNotFound, RescanHung
from rtvc.config import load_config
from rtvc.errors import DeviceError
from rtvc.run import build_engine


@dataclass(frozen=True)
class Dev:
    name: str

    def title(self) -> str:
        return self.name


@dataclass(frozen=True)
class Choice:
    input: Dev
    output: Dev
    monitor: Dev | None = None
    monitor_channels: int = 0

    def describe(self) -> str:
        return f"{self.input.name} -> {self.output.name}"


class Streams:
    gone: ClassVar[set[str]] = set()  # device names that fail to open
    busy: ClassVar[set[str]] = set()  # device names that open but refuse to start
    hung: ClassVar[set[str]] = set()  # device names whose streams do not stop (a JACK server that died)
    started: ClassVar[list[str]] = []
    stopped: ClassVar[list[str]] = []

    def __init__(self, choice, engine, samplerate, period):
        if choice.input.name in self.gone or (choice.monitor and choice.monitor.name in self.gone):
            name = choice.input.name if choice.input.name in self.gone else choice.monitor.name
            raise DeviceError(f"{name} could not be opened", "plug it back in")
        self.choice = choice
        engine.monitor_opened(choice.monitor is not None)  # (as DeviceStreams does)

    def start(self) -> None:
        if self.choice.input.name in self.busy:
            raise DeviceError(f"could not start {self.choice.input.name}", "is the device in use or unplugged?")
        self.started.append(self.choice.input.name)

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

    @classmethod
    def rescan(cls) -> None:
        if cls.refuse is not None:
            raise cls.refuse
        cls.rescans += 1
        cls.unlisted = cls.unlisted - cls.plugged


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

    def choose(a):
        for name in (a.input_device, a.output_device, a.monitor_device):
            if name in PortAudio.unlisted:
                raise DeviceNotFound(f"no device matches '{name}'", "see `rtvc devices`")
        return Choice(Dev(a.input_device), Dev(a.output_device), Dev(a.monitor_device) if a.monitor_device else None)

    monkeypatch.setattr(switch, "choose_devices", choose)
    monkeypatch.setattr(switch, "rescan_devices", PortAudio.rescan)
    for name, value in (("unlisted", set()), ("plugged", set()), ("refuse", None), ("rescans", 0)):
        monkeypatch.setattr(PortAudio, name, value)
    monkeypatch.setattr(Streams, "gone", set())
    monkeypatch.setattr(Streams, "busy", set())
    monkeypatch.setattr(Streams, "hung", set())
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
    assert Streams.stopped == ["usb mic", "webcam mic"] and Streams.started == ["usb mic"]  # the old ones again
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
    PortAudio.unlisted = {"no-such-card"}
    with pytest.raises(DeviceNotFound, match="no device matches 'no-such-card'") as e:
        switcher.switch("no-such-card", None)
    assert not isinstance(e.value, switch.AudioLost)
    assert PortAudio.rescans == 1
    assert Streams.started == ["usb mic"] and switcher.in_use()["input"] == "usb mic"
    assert switcher.engine.status().state == "running"


def test_after_the_streams_failed_the_list_is_read_again(switcher):
    """A USB mic plugged out and back in keeps its stale entry in PortAudio's list: reopening it by that entry
    fails until the list is read again."""
    switcher.engine.report_device_error("input stream stopped: the device failed or disappeared")
    assert switcher.switch("usb mic", None)["in_use"]["input"] == "usb mic"
    assert PortAudio.rescans == 1
    assert switcher.engine.status().state == "starting"  # until the new streams' first callback


def test_rescan_on_request_reopens_the_current_devices(switcher):
    got = switcher.rescan()
    assert got["in_use"] == {"virtual": False, "input": "usb mic", "output": "headphones", "monitor": None}
    assert PortAudio.rescans == 1 and Streams.started == ["usb mic"]


def test_a_list_that_cannot_be_read_again_leaves_the_old_devices(switcher):
    PortAudio.unlisted = PortAudio.plugged = {"new headset"}
    PortAudio.refuse = DeviceError("the JACK server rtvc started on no longer answers", "start it and restart rtvc")
    with pytest.raises(DeviceError, match="JACK server rtvc started on no longer answers"):
        switcher.switch(None, "new headset")
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


def test_a_rescan_that_hangs_gives_the_same_answer_until_rtvc_restarts(switcher, monkeypatch):
    def hangs():
        raise RescanHung("PortAudio did not restart within 10 s while reading the device list again", "restart rtvc")

    monkeypatch.setattr(switch, "rescan_devices", hangs)
    for _ in range(2):
        with pytest.raises(switch.AudioLost, match="PortAudio did not restart within 10 s"):
            switcher.rescan()
    assert switcher.engine.status().state == "failed"


def test_device_indices_are_pinned_to_names_before_the_list_is_read_again(switcher, monkeypatch):
    """Reading the list again renumbers the devices: an index given (the TUI picks by index) or kept in the
    settings is turned into the name it stood for before the list changed."""
    names = {"3": "webcam mic", "7": "usb mic"}
    monkeypatch.setattr(switch, "find_device", lambda spec, kind, host_api: Dev(names[str(spec)]))
    switcher.audio = dataclasses.replace(switcher.audio, input_device="7")
    PortAudio.unlisted = PortAudio.plugged = {"new headset"}
    got = switcher.switch(None, "new headset")
    assert got["in_use"]["input"] == "usb mic" and switcher.audio.input_device == "usb mic"
    assert switcher.switch("3", None, rescan=True)["in_use"]["input"] == "webcam mic"
