"""PipeWire's quantum floor as rtvc reads it from `pw-metadata -n settings` (rtvc.audio.pipewire), without PipeWire:
the lines are those PipeWire 0.3.65 printed. Through PipeWire's ALSA plugin, a quantum held above 256 frames let no
sound through rtvc's low-latency ALSA buffer (1024) or underran it (512); tests/test_pipewire_live.py measures it."""

from __future__ import annotations

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
