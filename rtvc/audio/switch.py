"""Switching sound devices while the daemon runs (`devices.select`).

The new devices are resolved before anything stops, so a name that matches nothing, or a device that
cannot run at the stream's rate, changes nothing. Then the old streams stop, the engine's rings go idle
at a block edge (the voice keeps its state), the new streams open and the engine re-plans its prefill for
their period and latencies. If the new streams cannot open, the old devices are opened again: the daemon
keeps its last good devices and the error names what failed (`AudioLost` when even that failed: then no
device runs, status says so, and the reply does not claim the current ones stay). The switch is heard as a
short gap.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

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

    def in_use(self) -> dict[str, Any]:
        return describe_choice(self.choice)

    def switch(self, input: str | None, output: str | None, monitor: str | None = None) -> dict[str, Any]:
        """None keeps a device as it is; monitor "" runs without one (hear-myself then has nowhere to go).
        A monitor that was lost (unplugged) is not kept: PortAudio's device list does not change while rtvc
        runs, so reopening it would fail, and take the switch and the fallback to the old devices with it."""
        with self._lock:
            lost = not self.engine.has_monitor_device and bool(self.engine.monitor_error)
            if monitor is None and lost:
                monitor = ""
            cfg = dataclasses.replace(
                self.audio,
                input_device=self.audio.input_device if input is None else input,
                output_device=self.audio.output_device if output is None else output,
                monitor_device=self.audio.monitor_device if monitor is None else monitor,
            )
            choice = choose_devices(cfg)  # DeviceError: nothing has been touched
            old = self.choice if not lost else dataclasses.replace(self.choice, monitor=None, monitor_channels=0)
            old_cfg = self.audio if not lost else dataclasses.replace(self.audio, monitor_device="")
            if not self.streams.stop():
                raise AudioLost("the current audio device did not stop: it is gone or hung", "restart rtvc serve")
            try:
                # a voice's first block can be slow (a cold model): the worker gets time to reach the edge
                self.engine.suspend(timeout=SUSPEND_S)
            except RuntimeError:
                what = f"the audio worker did not finish its block within {SUSPEND_S:g} s, so no device was opened"
                self.engine.report_device_error(what)
                raise AudioLost(
                    what, "restart rtvc serve (and report it: a block should never take this long)"
                ) from None
            try:
                self._open(choice, cfg)  # opened and started, or nothing kept
            except DeviceError as e:
                log.info("devices: the new ones did not run (%s); reopening the previous ones", e)
                try:
                    self._open(old, old_cfg)
                except DeviceError as again:  # both gone (unplugged meanwhile): say so, in status too
                    what = f"the new devices did not run ({e.what}) and the previous ones did not reopen ({again.what})"
                    self.engine.report_device_error(what)
                    raise AudioLost(what, "select devices that are there with devices.select") from e
                self.audio, self.choice = old_cfg, old  # (without a lost monitor)
                raise
            self.audio, self.choice = cfg, choice
            log.info("devices switched:\n%s", choice.describe())
            return {"in_use": self.in_use(), "latency_ms": self._latency_ms()}

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

    def _latency_ms(self) -> float | None:
        lat = self.engine.latency()
        return None if lat is None else round(lat.ms(lat.total), 2)

    def start(self) -> None:
        self.streams.start()

    def stop(self) -> bool:
        with self._lock:
            return self.streams.stop()
