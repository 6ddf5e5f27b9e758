"""`rtvc latency`: the round trip measured through the user's own devices, against what rtvc declares.

rtvc declares its latency from what the audio server says of the devices (README 'Latency'); its own part is
exact (bench/latency.py measures it equal to the frame), the devices' part is only as true as the driver's figures:
a USB interface's converters and safety buffers are often not in them. Here rtvc plays short sweeps on the output
instead of a voice and listens for them on the input: with the output looped back to the input (a cable; under
JACK, a connection; or the microphone near the speaker) each sweep comes back after the real latency, microphone
to speaker, as a voice would go through rtvc at these settings.

The sweeps come from a voice (`LoopProbe`) that plays them on the stream's own time and keeps what the input
brings: the same engine, rings, prefill and device streams as `rtvc run`, with the passthrough voice's delay (none
of its own). A sweep played at stream time p is what the voice would play for the input that arrived at p, so it
comes back at p + the real latency; a matched filter (the sweep's correlation) finds it to the frame.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from rtvc.errors import RtvcError
from rtvc.latency import LatencyBreakdown

SWEEP_S = 0.04  # each test sound: a 40 ms sweep (its matched filter gains ~30 dB over noise at 48 kHz)
SWEEP_HZ = (300.0, 8000.0)  # (up to 0.45 of the rate): what a laptop speaker and microphone carry
EVERY_S = 1.0  # one sweep a second: a round trip up to this long is told apart from the next sweep's
LEAD_S = 0.5  # silence first: the streams settle (a device's first callbacks, the worker's first block)
HEARD_DB = 20.0  # a sweep counts as heard at this much over the correlation's level elsewhere (noise: ~13 dB)
SPREAD_MS = 1.0  # sweeps that disagree by more: echoes, or input and output on two clocks


def sweep(samplerate: int, level_db: float) -> np.ndarray:
    """One test sound: an exponential sweep, tapered (no click at either end), its peak at `level_db` dBFS."""
    n = round(SWEEP_S * samplerate)
    f0, f1 = SWEEP_HZ[0], min(SWEEP_HZ[1], 0.45 * samplerate)
    t = np.arange(n) / samplerate
    k = math.log(f1 / f0)
    phase = 2 * math.pi * f0 * SWEEP_S / k * (np.exp(t / SWEEP_S * k) - 1.0)
    taper = np.ones(n)
    edge = n // 10
    taper[:edge] = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
    taper[n - edge :] = taper[:edge][::-1]
    return (10.0 ** (level_db / 20.0) * taper * np.sin(phase)).astype(np.float32)


@dataclass(frozen=True)
class ProbeParams:
    """The probe voice has no settings: what it plays is fixed when it is made."""


class LoopProbe:
    """A voice that plays the test sweeps at fixed stream times and keeps its input. Not a profile's voice."""

    kind: ClassVar[str] = "loop-probe"
    Params: ClassVar[type] = ProbeParams
    seamless: ClassVar[bool] = True  # consecutive tails continue each other: no SOLA, no delay of its own

    def __init__(self, samplerate: int, count: int, level_db: float):
        self.label = f"latency probe ({count} sweeps at {level_db:g} dBFS)"
        self.level_db = level_db
        self.samplerate = samplerate
        self.latency = 0
        self.sweep = sweep(samplerate, level_db)
        every, lead = round(EVERY_S * samplerate), round(LEAD_S * samplerate)
        self.starts = [lead + i * every for i in range(count)]  # stream time of each sweep's first frame
        self.length = lead + count * every  # the last sweep's second is over here
        self.signal = np.zeros(self.length, np.float32)
        for s in self.starts:
            self.signal[s : s + len(self.sweep)] = self.sweep
        self.heard = np.zeros(self.length, np.float32)  # the input, by stream time
        self._t = 0  # stream time of the window's end

    @property
    def done(self) -> bool:
        return self._t >= self.length

    @property
    def played_s(self) -> float:
        return self._t / self.samplerate

    def context_for(self, tail: int) -> int:
        return tail

    def advance(self, window: np.ndarray, new: int, params: ProbeParams) -> None:
        a, b = self._t, min(self._t + new, self.length)
        if b > a:
            self.heard[a:b] = window[len(window) - new : len(window) - new + b - a]
        self._t += new

    def convert(self, window: np.ndarray, tail: int, params: ProbeParams) -> np.ndarray:
        """What plays for the input [t - tail, t): the sweeps' signal over that stretch of the stream's time."""
        out = np.zeros(tail, np.float32)
        a, b = self._t - tail, min(self._t, self.length)
        if b > a:
            out[: b - a] = self.signal[a:b]
        return out

    def reset(self) -> None:
        self._t = 0
        self.heard[:] = 0.0


@dataclass(frozen=True)
class Arrival:
    delay: int  # frames from the sweep's start on the output's time to its start on the input's
    over_db: float  # the correlation's peak over its level elsewhere in that second


def find_arrivals(heard: np.ndarray, probe: np.ndarray, starts: list[int], every: int) -> list[Arrival | None]:
    """Each sweep's round trip: where, within `every` frames after it was played, the input correlates with it
    best; None where that peak is not HEARD_DB over the rest (nothing came back, or noise)."""
    from scipy.signal import correlate

    found: list[Arrival | None] = []
    n = len(probe)
    for s in starts:
        seg = heard[s : s + every + n - 1]
        if len(seg) < n:
            found.append(None)
            continue
        c = np.abs(correlate(seg.astype(np.float64), probe.astype(np.float64), mode="valid"))  # (every,)
        i = int(np.argmax(c))
        rest = np.concatenate([c[: max(i - n, 0)], c[i + n :]])
        floor = math.sqrt(float(np.mean(rest**2))) if len(rest) else 0.0
        found.append(Arrival(i, over) if (over := _over_db(c[i], floor)) >= HEARD_DB else None)
    return found


@dataclass
class LoopResult:
    samplerate: int
    declared: LatencyBreakdown  # what rtvc declared for this run (the engine's own figure)
    arrivals: list[Arrival | None]
    level_db: float
    devices: str = ""
    best_miss_db: float = 0.0  # where too few were heard: the clearest peak, dB over its noise
    silent: bool = False  # the input was digital zero throughout
    xruns: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def delays(self) -> list[int]:
        return [a.delay for a in self.arrivals if a is not None]

    @property
    def measured(self) -> int | None:
        """The median round trip, frames (None: too few sweeps came back)."""
        d = self.delays
        return int(np.median(d)) if len(d) * 2 > len(self.arrivals) else None

    @property
    def own(self) -> int:
        """rtvc's own part of the declared figure (block, converter, prefill): exact, whatever the devices."""
        return self.declared.total - self.declared.device_in - self.declared.device_out

    def ms(self, frames: float) -> float:
        return 1e3 * frames / self.samplerate

    def to_dict(self) -> dict:
        m = self.measured
        spread = max(self.delays) - min(self.delays) if self.delays else None
        return {
            "samplerate": self.samplerate,
            "devices": self.devices,
            "level_db": self.level_db,
            "sweeps": len(self.arrivals),
            "heard": len(self.delays),
            "delays_frames": [None if a is None else a.delay for a in self.arrivals],
            "over_noise_db": [None if a is None else a.over_db for a in self.arrivals],
            "measured_frames": m,
            "measured_ms": None if m is None else round(self.ms(m), 3),
            "spread_ms": None if spread is None else round(self.ms(spread), 3),
            "declared": self.declared.to_dict(),
            "devices_measured_ms": None if m is None else round(self.ms(m - self.own), 3),
            "devices_declared_ms": round(self.ms(self.declared.device_in + self.declared.device_out), 3),
            "unreported_ms": None if m is None else round(self.ms(m - self.declared.total), 3),
            "xruns": self.xruns,
            "notes": self.notes,
        }

    def report(self) -> str:
        d, m = self.declared, self.measured
        heard = len(self.delays)
        lines = ["round trip (microphone to speaker through rtvc, no voice's own delay):"]
        spread = self.ms(max(self.delays) - min(self.delays)) if self.delays else 0.0
        lines.append(
            f"  measured   {self.ms(m):.2f} ms ({m} frames; median of {heard} of {len(self.arrivals)} sweeps heard, "
            f"spread {spread:.2f} ms)"
        )
        lines.append(f"  declared   {d.describe()}")
        dev_m, dev_d = self.ms(m - self.own), self.ms(d.device_in + d.device_out)
        own = self.ms(self.own)
        lines.append(f"  devices    measured {dev_m:.2f} ms, declared {dev_d:.2f} ms; rtvc's own part {own:.2f} ms")
        gap = m - d.total
        if abs(self.ms(gap)) < 0.5:
            lines.append("  rtvc's declared latency is right on these devices (within 0.5 ms)")
        elif gap > 0:
            lines.append(
                f"  the devices take {self.ms(gap):.2f} ms more than they declare (converters, buffers the driver does "
                "not count; through the air, ~3 ms a metre too): add it to the latency rtvc shows"
            )
        else:
            lines.append(
                f"  the devices take {self.ms(-gap):.2f} ms less than they declare: rtvc's figure is that much high"
            )
        if spread > SPREAD_MS:
            lines.append(
                f"  note: the sweeps came back up to {spread:.2f} ms apart: an echo taken for the sound (through the "
                "air), or input and output on two clocks drifting apart (two devices); a cable on one device is exact"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def check_heard(result: LoopResult) -> None:
    """Raise where too few sweeps came back to measure, with what to do."""
    if result.measured is not None:
        return
    heard = len(result.delays)
    if result.silent:
        raise RtvcError(
            "the input stayed silent (digital zero) the whole run: nothing came back",
            "loop the output back to the input: a cable from the output to the input, under JACK a connection "
            "(jack_connect), or the microphone close to the speaker; check that the input device is the one looped",
        )
    raise RtvcError(
        f"heard {heard} of the {len(result.arrivals)} test sweeps back on the input (the clearest was "
        f"{result.best_miss_db:.0f} dB over the noise; {HEARD_DB:g} needed)"
        + (f"; {result.xruns} xruns during the run" if result.xruns else ""),
        "loop the output back to the input: a cable from the output to the input, under JACK a connection "
        "(jack_connect), or the microphone close to the speaker with the volume up; --level-db plays them louder",
    )


def best_peak(heard: np.ndarray, probe: np.ndarray, starts: list[int], every: int) -> float:
    """The clearest peak of any sweep's correlation, dB over the rest (for the message when none was heard)."""
    from scipy.signal import correlate

    best = 0.0
    n = len(probe)
    for s in starts:
        seg = heard[s : s + every + n - 1]
        if len(seg) < n or not np.any(seg):
            continue
        c = np.abs(correlate(seg.astype(np.float64), probe.astype(np.float64), mode="valid"))
        i = int(np.argmax(c))
        rest = np.concatenate([c[: max(i - n, 0)], c[i + n :]])
        best = max(best, _over_db(c[i], math.sqrt(float(np.mean(rest**2))) if len(rest) else 0.0))
    return best


def _over_db(peak: float, floor: float) -> float:
    """A correlation's peak over its level elsewhere, dB (a digital loop's floor is rounding: held at 120 dB)."""
    if peak <= 0:
        return 0.0
    return round(min(20 * math.log10(peak / floor), 120.0) if floor > 0 else 120.0, 1)


def analyse(probe: LoopProbe, declared: LatencyBreakdown, **kw) -> LoopResult:
    every = round(EVERY_S * probe.samplerate)
    arrivals = find_arrivals(probe.heard, probe.sweep, probe.starts, every)
    result = LoopResult(probe.samplerate, declared, arrivals, probe.level_db, **kw)
    if result.measured is None:
        result.best_miss_db = best_peak(probe.heard, probe.sweep, probe.starts, every)
        result.silent = not np.any(probe.heard)
    return result


def run_probe(engine, probe: LoopProbe, device, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Start the engine and `device`, wait for the probe's last sweep to be over on its time, stop both."""
    engine.start()
    try:
        device.start()
        t0 = time.monotonic()
        while not probe.done:
            if engine.status().state == "failed":
                st = engine.status()
                raise RtvcError(f"the audio stopped during the measurement: {st.detail}", "check the devices and retry")
            if time.monotonic() - t0 > timeout:
                raise RtvcError(
                    f"the measurement did not finish in {timeout:.0f} s (the audio ran {probe.played_s:.1f} s of it)",
                    "check that the devices are running (`rtvc devices`)",
                )
            sleep(0.05)
    finally:
        try:
            device.stop()
        finally:
            engine.stop()


def write_json(path: Path, result: LoopResult) -> None:
    from rtvc.wavio import replace_whole

    text = json.dumps(result.to_dict(), indent=2)
    replace_whole(path, lambda tmp: tmp.write_text(text), str(path))


@dataclass
class LatencyOptions:
    count: int = 8  # sweeps
    level_db: float = -20.0  # their peak, dBFS
    json: Path | None = None  # where the result goes as JSON


def measure(cfg, opts: LatencyOptions, out=None) -> LoopResult:
    """The round trip on the devices `cfg` chooses, at its rate, period, block and prefill (rtvc run's)."""
    import sys

    from rtvc.audio.io import DeviceStreams, choose_devices
    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.engine import Engine
    from rtvc.gate import GateSettings
    from rtvc.run import frames
    from rtvc.wavio import check_output

    out = out or sys.stdout
    if opts.json is not None:
        check_output(opts.json, audio=False)  # (before the sweeps are played, not after)
    sr = cfg.audio.samplerate
    probe = LoopProbe(sr, opts.count, opts.level_db)
    shape = StreamShape(samplerate=sr, block=frames(cfg.stream.block_ms, sr), crossfade=0, search=0)
    conv = StreamingConverter(probe, ProbeParams(), shape)
    # no gate (the input is silent until the first sweep comes back), no monitor (the sweeps stay off the headphones)
    engine = Engine(
        conv, sr, frames(cfg.stream.prefill_ms, sr), False, probe.label, cfg.stream.realtime, GateSettings(on=False)
    )
    choice = choose_devices(cfg.audio)
    print("devices:\n" + choice.describe(), file=out)
    device = DeviceStreams(choice, engine, sr, cfg.audio.period)
    if device.period:
        engine.prepare(device.period)
    print(
        f"playing {opts.count} sweeps of {SWEEP_S * 1e3:.0f} ms, one a second, at {opts.level_db:g} dBFS on the "
        f"output (lower the volume if headphones are on your ears) and listening for them on the input",
        file=out,
        flush=True,
    )
    run_probe(engine, probe, device, timeout=probe.length / sr + 10.0)
    st = engine.status()
    result = analyse(probe, st.latency, devices=choice.describe(), xruns=st.xruns.total)
    if st.xruns.total:
        result.notes.append(f"{st.xruns.total} xruns during the run: a sweep that met one may be off")
    check_heard(result)
    print(result.report(), file=out)
    if opts.json is not None:
        write_json(opts.json, result)
        print(f"wrote {opts.json}", file=out)
    return result
