"""`devices.select` when the devices fail under it: the error names what failed and status says so.

The PortAudio streams are stood in for here (a device that vanishes between being found and being opened
cannot be timed on a JACK server); the switch itself runs over real callbacks in test_device_switch.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

import rtvc.audio.switch as switch
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
        self.stopped.append(self.choice.input.name)
        return True


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
        return Choice(Dev(a.input_device), Dev(a.output_device), Dev(a.monitor_device) if a.monitor_device else None)

    monkeypatch.setattr(switch, "choose_devices", choose)
    monkeypatch.setattr(Streams, "gone", set())
    monkeypatch.setattr(Streams, "busy", set())
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
