"""PipeWire's quantum floor as rtvc reads it from `pw-metadata -n settings` (rtvc.audio.pipewire), without PipeWire:
the lines are those PipeWire 0.3.65 printed. Through PipeWire's ALSA plugin, a quantum held above 256 frames let no
sound through rtvc's low-latency ALSA buffer (1024) or underran it (512); tests/test_pipewire_live.py measures it."""

from __future__ import annotations

import dataclasses
import time

import pytest

from rtvc.audio import pipewire
from rtvc.audio.devices import Device

PRINTED = """Found "settings" metadata 22
update: id:0 key:'log.level' value:'2' type:''
update: id:0 key:'clock.rate' value:'48000' type:''
update: id:0 key:'clock.allowed-rates' value:'[ 48000 ]' type:''
update: id:0 key:'clock.quantum' value:'1024' type:''
update: id:0 key:'clock.min-quantum' value:'{min}' type:''
update: id:0 key:'clock.max-quantum' value:'2048' type:''
update: id:0 key:'clock.force-quantum' value:'{force}' type:''
update: id:0 key:'clock.force-rate' value:'0' type:''
"""


def test_the_floor_is_the_forced_quantum_else_the_minimum():
    assert pipewire.floor(pipewire.parse(PRINTED.format(min=32, force=0))) == (32, "clock.min-quantum")
    assert pipewire.floor(pipewire.parse(PRINTED.format(min=1024, force=0))) == (1024, "clock.min-quantum")
    assert pipewire.floor(pipewire.parse(PRINTED.format(min=32, force=512))) == (512, "clock.force-quantum")
    assert pipewire.floor(pipewire.parse("update: id:0 key:'clock.min-quantum' value:'x' type:''")) == (0, "")
    assert pipewire.floor({}) == (0, "")
    # a watch's line at a time: a later line updates what came before
    seen = pipewire.parse(PRINTED.format(min=32, force=0))
    pipewire.parse("update: id:0 key:'clock.force-quantum' value:'2048' type:''", seen)
    assert pipewire.floor(seen) == (2048, "clock.force-quantum")
    # (another object's metadata is not the settings)
    assert pipewire.parse("update: id:31 key:'clock.min-quantum' value:'4096' type:''") == {}


def test_a_removed_setting_falls_back_to_pipewires_own():
    """`pw-metadata -n settings -d 0 clock.force-quantum` (or -d 0: all keys) lets go of a setting: the watch kept
    the forced value, and so the quantum it was sized for, and no later change of clock.min-quantum was seen."""
    core = pipewire.core_defaults(
        '*\t\tdefault.clock.rate = "48000"\n*\t\tdefault.clock.quantum = "1024"\n'
        '*\t\tdefault.clock.min-quantum = "512"\n*\t\tdefault.clock.max-quantum = "2048"\n'
    )  # (as `pw-cli info 0` prints PipeWire's own, its config file's)
    assert core == {"clock.min-quantum": "512"}
    seen = pipewire.parse(PRINTED.format(min=32, force=1024), dict(core), core)
    assert pipewire.floor(seen) == (1024, "clock.force-quantum")
    pipewire.parse("remove: id:0 key:'clock.force-quantum'", seen, core)
    assert pipewire.floor(seen) == (32, "clock.min-quantum")
    pipewire.parse("remove: id:0 key:'clock.min-quantum'", seen, core)
    assert pipewire.floor(seen) == (512, "clock.min-quantum")  # (the config file's)
    pipewire.parse("update: id:0 key:'clock.force-quantum' value:'2048' type:''\nremove: id:0 all keys", seen, core)
    assert pipewire.floor(seen) == (512, "clock.min-quantum")
    alone = pipewire.parse("remove: id:0 key:'clock.min-quantum'", {"clock.min-quantum": "1024"})
    assert pipewire.floor(alone) == (0, "")  # (nothing to fall back to: PipeWire's own was not read)


def test_the_watch_says_each_new_floor_once_its_settings_have_come(tmp_path, monkeypatch):
    """QuantumWatch runs `pw-metadata -m -n settings` (here a script that prints as PipeWire 0.3.65 did: the
    settings a key a line, then changes) and says each new floor once, not the floors of half-read settings."""
    import os
    import stat
    import threading
    import time

    script = tmp_path / "pw-metadata"
    lines = PRINTED.format(min=32, force=1024).splitlines()  # (at first: forced to 1024, the floor it opened at)
    lines += ["SLEEP", "update: id:0 key:'clock.min-quantum' value:'2048' type:''"]  # (force wins: no change)
    lines += ["SLEEP", "remove: id:0 key:'clock.force-quantum'"]  # min-quantum 2048 now
    lines += ["SLEEP", "update: id:0 key:'clock.force-quantum' value:'256' type:''"]
    lines += ["SLEEP", "remove: id:0 all keys"]  # PipeWire's own: 512
    body = "\n".join("sleep 0.5" if ln == "SLEEP" else f'echo "{ln}"' for ln in lines)
    script.write_text(f"#!/bin/sh\n{body}\nsleep 30\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    said, done = [], threading.Event()

    def on_change(quantum: int, key: str) -> None:
        said.append((quantum, key))
        if len(said) == 3:
            done.set()

    watch = pipewire.QuantumWatch(on_change, 1024, {"clock.min-quantum": "512"})
    try:
        assert done.wait(10), said
        time.sleep(0.5)
    finally:
        watch.stop()
    assert said == [(2048, "clock.min-quantum"), (256, "clock.force-quantum"), (512, "clock.min-quantum")]
    proc = watch._watch._proc
    assert proc is not None and proc.poll() is not None  # (the child ends with the watch)


def test_only_a_quantum_above_what_the_low_latency_buffer_keeps_up_with_sizes_the_streams():
    assert [pipewire.sizing(q) for q in (0, 32, 128, 256, 512, 1024, 8192)] == [0, 0, 0, 0, 512, 1024, 8192]


def test_only_alsa_devices_that_reach_pipewire_are_sized():
    def dev(name: str, api: str) -> Device:
        return Device(index=0, name=name, host_api=api, max_input=2, max_output=2, default_samplerate=48000.0,
                      low_input_latency=0.01, low_output_latency=0.01)  # fmt: skip

    assert pipewire.served((dev("pipewire", "ALSA"), None))
    assert pipewire.served((dev("default", "ALSA"), dev("HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA")))
    assert not pipewire.served((dev("HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA"), None))
    assert not pipewire.served((dev("system", "JACK Audio Connection Kit"), dev("default", "JACK")))


def test_which_devices_follow_pipewires_default(monkeypatch):
    """The roles the config leaves to the default (the output not under audio.virtual_mic: rtvc's own node; the
    monitor only as hear-myself's default speakers) follow PipeWire's default where they are on PipeWire's JACK; not on
    plain JACK (its 'system' ports, or jackd's library loaded)."""
    from rtvc.audio import switch, voice_mic
    from rtvc.audio.io import DeviceChoice
    from rtvc.config import AudioConfig

    def dev(name: str, api: str = "JACK Audio Connection Kit") -> Device:
        return Device(index=0, name=name, host_api=api, max_input=2, max_output=2, default_samplerate=48000.0,
                      low_input_latency=0.01, low_output_latency=0.01)  # fmt: skip

    assert switch.left_to_default(AudioConfig()) == {"input", "output"}
    assert switch.left_to_default(AudioConfig(input_device="USB", output_device=3)) == set()
    mic = AudioConfig(virtual_mic=True, output_device="rtvc voice")
    assert switch.left_to_default(mic, monitor_default=True) == {"input", "monitor"}

    def choice(i: Device, o: Device, m: Device | None) -> DeviceChoice:
        return DeviceChoice(i, o, m, input_channel=1, output_channels=1, monitor_channels=1)

    on_pw = choice(dev("Built-in Mic"), dev("rtvc voice"), dev("Speakers"))
    monkeypatch.setattr(voice_mic, "on_pipewire_jack", lambda: True)
    assert switch.following(on_pw, {"input", "monitor"}) == {"input", "monitor"}
    assert switch.following(choice(dev("Built-in Mic"), dev("rtvc voice"), None), {"monitor"}) == set()
    assert switch.following(choice(dev("system"), dev("system"), None), {"input", "output"}) == set()
    alsa = choice(dev("default", "ALSA"), dev("default", "ALSA"), None)
    assert switch.following(alsa, {"input", "output"}) == set()  # (PipeWire's ALSA streams move by themselves)
    monkeypatch.setattr(voice_mic, "on_pipewire_jack", lambda: False)
    assert switch.following(on_pw, {"input", "monitor"}) == set()


def test_the_default_devices_node_names_are_read_from_wireplumbers_metadata():
    assert pipewire.node_named('{"name":"alsa_input.usb-Headset-00.mono-fallback"}') == (
        "alsa_input.usb-Headset-00.mono-fallback"
    )
    assert pipewire.node_named("") == pipewire.node_named("{") == pipewire.node_named('{"name":3}') == ""
    assert pipewire.node_named("[1]") == ""
    line = """update: id:0 key:'default.audio.source' value:'{"name":"mic"}' type:'Spa:String:JSON'"""
    assert pipewire.node_named(pipewire.parse(line)["default.audio.source"]) == "mic"


def test_a_default_device_is_gone_for_once_and_not_again_and_again(monkeypatch):
    """A followed role goes for each new default node once (by its index in the list as read, or its JACK name where
    the list does not have it yet): one that does not open, or that the list names otherwise, was tried again at each
    watch the fallback started (a gap in the voice every second), and rtvc's own node is never gone for."""
    from rtvc.audio import devices, jack_links, switch, voice_mic
    from rtvc.audio.io import DeviceChoice
    from rtvc.config import AudioConfig

    def dev(i: int, name: str, ins: int, outs: int) -> Device:
        return Device(index=i, name=name, host_api="JACK Audio Connection Kit", max_input=ins, max_output=outs,
                      default_samplerate=48000.0, low_input_latency=0.01, low_output_latency=0.01)  # fmt: skip

    mic, usb = dev(0, "Built-in Mic", 1, 0), dev(1, "USB Headset Mic", 1, 0)
    speakers, voice = dev(2, "Speakers", 0, 2), dev(3, "rtvc voice", 1, 1)
    nodes = [
        {"node.name": "alsa_input.pci", "node.description": "Built-in Mic"},
        {"node.name": "alsa_input.usb", "node.description": "USB Headset Mic"},
        {"node.name": "rtvc-voice", "node.description": "rtvc voice"},
    ]
    monkeypatch.setattr(devices, "list_devices", lambda: [mic, usb, speakers, voice])
    monkeypatch.setattr(voice_mic, "nodes", lambda: nodes)
    monkeypatch.setattr(jack_links, "clients", lambda: ["Built-in Mic", "USB Headset Mic", "rtvc voice", "Speakers"])
    choice = DeviceChoice(mic, voice, speakers, input_channel=1, output_channels=1, monitor_channels=2)
    sw = switch.DeviceSwitcher(None, AudioConfig(virtual_mic=True), choice, None)  # type: ignore[arg-type]
    sw.follow = {"input"}
    assert sw._defaults_wanted({"input": "alsa_input.pci", "output": "x"}) == {}  # (the one in use)
    assert sw._defaults_wanted({"input": "alsa_input.usb"}) == {"input": "1"}  # (its index in the list as read)
    assert sw._defaults_wanted({"input": "alsa_input.usb"}) == {}  # (gone for once: it did not open, say)
    assert sw._defaults_wanted({"input": "rtvc-voice"}) == {}  # (rtvc's own: the microphone in use stays)
    assert sw._defaults_wanted({"input": "alsa_input.gone"}) == {}  # (PipeWire does not list it: nothing to go for)
    nodes.append({"node.name": "alsa_input.bt", "node.description": "BT Mic"})  # (not in PortAudio's list yet)
    assert sw._defaults_wanted({"input": "alsa_input.bt"}) == {"input": "BT Mic"}
    assert sw._defaults_wanted({"input": "alsa_input.usb"}) == {"input": "1"}  # (another default since: again)


def test_a_followed_microphone_gone_while_the_default_falls_to_rtvc_voice_gives_way_to_the_highest(monkeypatch):
    """WirePlumber remembers "rtvc voice" as a default the user chose once: a headset rtvc followed, unplugged, made
    rtvc's own node the default microphone again. rtvc stayed on the gone headset (rtvc's own node is never gone
    for), and the call heard silence for good. Now, as at start, it takes PipeWire's microphone of highest priority,
    once; while the microphone in use is there it stays."""
    from rtvc.audio import devices, jack_links, switch, voice_mic
    from rtvc.audio.io import DeviceChoice
    from rtvc.config import AudioConfig

    def dev(i: int, name: str, ins: int, outs: int) -> Device:
        return Device(index=i, name=name, host_api="JACK Audio Connection Kit", max_input=ins, max_output=outs,
                      default_samplerate=48000.0, low_input_latency=0.01, low_output_latency=0.01)  # fmt: skip

    mic, low, headset = dev(0, "mic", 1, 0), dev(1, "Webcam Mic", 1, 0), dev(2, "headset", 1, 0)
    speakers, voice = dev(3, "speakers", 0, 1), dev(4, "rtvc voice", 1, 1)
    source = "Audio/Source/Virtual"
    nodes = [
        {"node.name": "webcam", "node.description": "Webcam Mic", "media.class": "Audio/Source"},
        {"node.name": "mic", "media.class": source, "priority.session": 2000},
        {"node.name": "rtvc-voice", "node.description": "rtvc voice", "media.class": source},
        {"node.name": "headset", "media.class": source, "priority.session": 2000},
        {"node.name": "speakers", "media.class": "Audio/Sink", "priority.session": 3000},
    ]
    clients = ["mic", "Webcam Mic", "rtvc voice", "headset", "speakers"]
    monkeypatch.setattr(devices, "list_devices", lambda: [mic, low, headset, speakers, voice])
    monkeypatch.setattr(voice_mic, "nodes", lambda: nodes)
    monkeypatch.setattr(jack_links, "clients", lambda: clients)
    choice = DeviceChoice(headset, voice, None, input_channel=1, output_channels=1, monitor_channels=0)
    sw = switch.DeviceSwitcher(None, AudioConfig(virtual_mic=True), choice, None)  # type: ignore[arg-type]
    sw.follow, sw._tried = {"input"}, {"input": "headset"}
    assert sw._defaults_wanted({"input": "rtvc-voice"}) == {}  # (the headset is there: it stays)
    del nodes[3], clients[3]  # (pw-cli destroy headset)
    assert sw._defaults_wanted({"input": "rtvc-voice"}) == {"input": "0"}  # ("mic": priority 2000, the webcam's 0)
    sw.choice = dataclasses.replace(choice, input=mic)  # (the switch made)
    assert sw._defaults_wanted({"input": "rtvc-voice"}) == {}


def test_pipewires_default_devices_are_waited_for_while_wireplumber_names_none_yet(monkeypatch):
    """rtvc started with the desktop's session (or just after PipeWire restarted) asked before WirePlumber had named
    the default devices: "no default input device ... PipeWire names none", and serve did not start (CI once). Where
    none is named yet, rtvc waits up to DEFAULTS_WAIT_S for one."""
    from rtvc.audio import devices, voice_mic

    answers = iter(["", "", "alsa_input.usb"])
    monkeypatch.setattr(voice_mic, "default_node", lambda kind: next(answers, "alsa_input.usb"))
    monkeypatch.setattr(voice_mic, "node_jack_name", lambda node: {"alsa_input.usb": "USB Mic"}[node])
    assert voice_mic.default_device("input", wait_s=5.0) == ("USB Mic", "alsa_input.usb")
    usable = [devices.Device(3, "USB Mic", "JACK Audio Connection Kit", 1, 0, 48000.0, 0.0, 0.0)]
    answers = iter(["", "alsa_input.usb"])
    assert devices._pipewire_default("input", usable, "--input-device").name == "USB Mic"
    # none within the wait: the words say so, and what to choose
    monkeypatch.setattr(voice_mic, "default_node", lambda kind: "")
    monkeypatch.setattr(voice_mic, "DEFAULTS_WAIT_S", 0.5)
    t0 = time.monotonic()
    with pytest.raises(devices.DeviceNotFound, match=r"PipeWire named none within 0\.5 s: does WirePlumber run") as e:
        devices._pipewire_default("input", usable, "--input-device")
    assert time.monotonic() - t0 >= 0.5 and "'USB Mic'" in e.value.fix
    assert voice_mic.default_device("input") == ("", "")  # (no wait asked: at once)


def test_a_dump_written_while_the_graph_changed_is_read_whole():
    """pw-dump writes more lists after its first where objects change as it writes (an "info" of null: removed):
    read as one JSON document it failed ("Extra data"; the test's own reader in CI), and rtvc's retried it."""
    from rtvc.audio.voice_mic import parse_dump

    printed = (
        '[\n  {\n    "id": 42,\n    "type": "PipeWire:Interface:Node",\n    "info": {"props": {"node.name": "a"}}\n'
        '  },\n  {\n    "id": 43,\n    "type": "PipeWire:Interface:Node",\n    "info": {"props": {"node.name": "b"}}\n'
        '  }\n]\n[\n  {\n    "id": 42,\n    "info": null\n  }\n]\n'
        '[\n  {\n    "id": 44,\n    "type": "PipeWire:Interface:Node",\n    "info": {"props": {"node.name": "c"}}\n'
        "  }\n]\n"
    )
    assert [o["info"]["props"]["node.name"] for o in parse_dump(printed)] == ["b", "c"]
    assert parse_dump("") is None and parse_dump("[1] {") is None and parse_dump('{"id": 1}') is None
