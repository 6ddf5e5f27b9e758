"""Switching sound devices while the daemon runs (`devices.select`).

The new devices are resolved before anything stops, so a name that matches nothing, or a device that
cannot run at the stream's rate, changes nothing. Then the old streams stop, the engine's rings go idle
at a block edge (the voice keeps its state), the new streams open and the engine re-plans its prefill for
their period and latencies. If the new streams cannot open, the old devices are opened again: the daemon
keeps its last good devices and the error names what failed (`AudioLost` when even that failed: then no
device runs, status says so, and the reply does not claim the current ones stay). The switch is heard as a
short gap.

PortAudio reads its device list once, when it starts. A device asked for that is not in the list (a headset
plugged in after rtvc started) is looked for again once the streams have stopped: PortAudio is restarted
(`devices.rescan`), and the devices in use are found again by name. So is every device after the streams failed
(a USB microphone plugged out and back in keeps a stale entry), and `devices.list` with `rescan` does it on
request. A typo therefore costs a short gap too, and the reply names what the new list holds. A stop or restart
that hangs leaves PortAudio unusable: every later switch says to restart rtvc serve, in the same words.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, NoReturn

from rtvc.audio.devices import DeviceNotFound, RescanHung, find_device
from rtvc.audio.devices import rescan as rescan_devices
from rtvc.audio.io import DeviceChoice, DeviceStreams, choose_devices
from rtvc.config import AudioConfig
from rtvc.engine import Engine
from rtvc.errors import DeviceError

log = logging.getLogger("rtvc")
SUSPEND_S = 10.0  # how long a switch waits for the worker to finish its block


class AudioLost(DeviceError):
    """A switch that failed after the old devices had stopped, and left none running."""


def describe_choice(choice: DeviceChoice) -> dict[str, Any]:
    return {
        "virtual": False,
        "input": choice.input.title(),
        "output": choice.output.title(),
        "monitor": choice.monitor.title() if choice.monitor else None,
    }


class DeviceSwitcher:
    """Owns the running DeviceStreams of `rtvc serve`; `switch()` runs on a worker thread of the server."""

    def __init__(self, engine: Engine, audio: AudioConfig, choice: DeviceChoice, streams: DeviceStreams):
        self.engine = engine
        self.audio = audio
        self.choice = choice
        self.streams = streams
        self._lock = threading.Lock()  # one switch at a time (the API also refuses a second one: busy)
        self._wedged = ""  # why PortAudio cannot be used again in this process (a stop or restart that hung)

    def in_use(self) -> dict[str, Any]:
        return describe_choice(self.choice)

    def switch(
        self, input: str | None, output: str | None, monitor: str | None = None, rescan: bool = False
    ) -> dict[str, Any]:
        """None keeps a device as it is; monitor "" runs without one (hear-myself then has nowhere to go).
        A monitor that was lost (unplugged) is not kept: reopening it would fail, and take the switch and the
        fallback to the old devices with it.

        PortAudio's device list is read again (devices.rescan: the streams are stopped around it) when `rescan`
        asks, when a device asked for is not in it (plugged in since), and when the current streams failed (a
        device unplugged and plugged back keeps a stale entry)."""
        with self._lock:
            if self._wedged:
                raise AudioLost(self._wedged, "restart rtvc serve")
            lost = not self.engine.has_monitor_device and bool(self.engine.monitor_error)
            if monitor is None and lost:
                monitor = ""
            cfg = dataclasses.replace(
                self.audio,
                input_device=self.audio.input_device if input is None else input,
                output_device=self.audio.output_device if output is None else output,
                monitor_device=self.audio.monitor_device if monitor is None else monitor,
            )
            old: DeviceChoice | None = self.choice
            old_cfg = self.audio
            if lost:
                old = dataclasses.replace(self.choice, monitor=None, monitor_channels=0)
                old_cfg = dataclasses.replace(self.audio, monitor_device="")
            look_again = rescan or self.engine.devices_failed
            choice = None
            if not look_again:
                try:
                    choice = choose_devices(cfg)  # DeviceError: nothing has been touched
                except DeviceNotFound:
                    look_again = True  # plugged in since PortAudio read its list? It is read again below
            if look_again:  # indices change when the list is read again: the ones given name what they name now
                cfg, old_cfg = _pin(cfg), _pin(old_cfg)
            if not self.streams.stop():
                self._wedged = "the current audio device did not stop: it is gone or hung"
                raise AudioLost(self._wedged, "restart rtvc serve")
            try:
                # a voice's first block can be slow (a cold model): the worker gets time to reach the edge
                self.engine.suspend(timeout=SUSPEND_S)
            except RuntimeError:
                what = f"the audio worker did not finish its block within {SUSPEND_S:g} s, so no device was opened"
                self.engine.report_device_error(what)
                raise AudioLost(
                    what, "restart rtvc serve (and report it: a block should never take this long)"
                ) from None
            if look_again:
                try:
                    rescan_devices()
                except RescanHung as e:
                    self._wedged = e.what
                    self.engine.report_device_error(e.what)
                    raise AudioLost(e.what, "restart rtvc serve") from None
                except DeviceError as e:  # not read again (a JACK server that died): the old list stands
                    self._fall_back(old, old_cfg, e)
                else:
                    old = None  # its indices are stale: found again by name if it is needed
                    try:
                        choice = choose_devices(cfg)
                    except DeviceError as e:
                        self._fall_back(old, old_cfg, e)
            assert choice is not None
            try:
                self._open(choice, cfg)  # opened and started, or nothing kept
            except DeviceError as e:
                self._fall_back(old, old_cfg, e)
            self.audio, self.choice = cfg, choice
            log.info("devices switched:\n%s", choice.describe())
            return {"in_use": self.in_use(), "latency_ms": self._latency_ms()}

    def _fall_back(self, old: DeviceChoice | None, old_cfg: AudioConfig, e: DeviceError) -> NoReturn:
        """The new devices are not to be had (`e`): the previous ones run again (`old`, or found again from
        `old_cfg` after the list was read anew) and `e` is raised; AudioLost when they do not run either."""
        log.info("devices: the new ones did not run (%s); reopening the previous ones", e)
        try:
            if old is None:
                old = choose_devices(old_cfg)
            self._open(old, old_cfg)
        except DeviceError as again:  # both gone (unplugged meanwhile): say so, in status too
            what = f"the new devices did not run ({e.what}) and the previous ones did not reopen ({again.what})"
            self.engine.report_device_error(what)
            raise AudioLost(what, "select devices that are there with devices.select") from e
        self.audio, self.choice = old_cfg, old  # (without a lost monitor)
        raise e

    def _open(self, choice: DeviceChoice, cfg: AudioConfig) -> None:
        """Open and start `choice`'s streams; they become the running ones only once started (a device can
        open and then refuse to start: busy, or unplugged in between)."""
        streams = DeviceStreams(choice, self.engine, cfg.samplerate, cfg.period)
        self.engine.resume(cfg.period)
        try:
            streams.start()
        except DeviceError:
            streams.stop()
            raise
        self.streams = streams

    def rescan(self) -> dict[str, Any]:
        """Read PortAudio's device list again, the current devices kept (a short gap in the audio)."""
        return self.switch(None, None, None, rescan=True)

    def _latency_ms(self) -> float | None:
        lat = self.engine.latency()
        return None if lat is None else round(lat.ms(lat.total), 2)

    def start(self) -> None:
        self.streams.start()

    def stop(self) -> bool:
        """False when PortAudio is stuck (a stop or restart that hung): the process must then exit without
        terminating it."""
        with self._lock:
            return self.streams.stop() and not self._wedged


def _pin(cfg: AudioConfig) -> AudioConfig:
    """`cfg` with device indices replaced by the names of the devices they stand for now: reading PortAudio's
    list again renumbers the devices. An index that names nothing stays (its error comes later)."""
    named = {}
    for key, kind in (("input_device", "input"), ("output_device", "output"), ("monitor_device", "output")):
        spec = getattr(cfg, key)
        if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
            try:
                named[key] = find_device(spec, kind, cfg.host_api).name
            except DeviceError:
                pass
    return dataclasses.replace(cfg, **named)
