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
# ... and this much over its level around the peak: a sweep's own correlation is a sharp peak (28-38 dB over its
# surroundings, echoes or not), the other direction's a broad hump (10-11 dB). Sweeps alternate up and down, so a
# round trip longer than their spacing, which would meet the sweep played before, is not taken for one.
SHARP_DB = 18.0
PEAK_S = 0.001  # the peak itself: this much either side of it
STUCK_S = 2.0  # no block converted for this long, the device running: the measurement is stopped and said why
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
        up = sweep(samplerate, level_db)
        self.sweeps = [up if i % 2 == 0 else up[::-1].copy() for i in range(count)]  # up, down, up...
        every, lead = round(EVERY_S * samplerate), round(LEAD_S * samplerate)
        self.starts = [lead + i * every for i in range(count)]  # stream time of each sweep's first frame
        self.length = lead + count * every + len(up)  # the last sweep's second is over here (and one more sweep)
        self.signal = np.zeros(self.length, np.float32)
        for s, w in zip(self.starts, self.sweeps, strict=True):
            self.signal[s : s + len(w)] = w
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


def _peak(heard: np.ndarray, probe: np.ndarray, start: int, every: int, rate: int) -> tuple[int, float, float]:
    """Where within `every` frames after `start` the input correlates best with `probe`: (lag, dB over the
    correlation's level elsewhere in that second, dB over its level around the peak)."""
    from scipy.signal import correlate

    n = len(probe)
    seg = heard[start : start + every + n - 1]
    if len(seg) < n or not np.any(seg):
        return 0, 0.0, 0.0
    c = np.abs(correlate(seg.astype(np.float64), probe.astype(np.float64), mode="valid"))  # (every,)
    # lags whose stretch ends within the second: past them it reaches the next sweep's return, whose first frames
    # (a sweep that never came back, the loop made later) stood alone against a silent floor and were taken for it
    c = c[: max(every - n + 1, 1)]
    i, k = int(np.argmax(c)), round(PEAK_S * rate)
    rest = np.concatenate([c[: max(i - n, 0)], c[i + n :]])
    near = np.concatenate([c[max(i - n, 0) : max(i - k, 0)], c[i + k : i + n]])
    rms = [math.sqrt(float(np.mean(x**2))) if len(x) else 0.0 for x in (rest, near)]
    return i, _over_db(c[i], rms[0]), _over_db(c[i], rms[1])


def _over_db(peak: float, floor: float) -> float:
    """A correlation's peak over a level, dB (a digital loop's floor is rounding: held at 120 dB)."""
    if peak <= 0:
        return 0.0
    return round(min(20 * math.log10(peak / floor), 120.0) if floor > 0 else 120.0, 1)


def find_arrivals(
    heard: np.ndarray, sweeps: list[np.ndarray], starts: list[int], every: int, rate: int
) -> list[Arrival | None]:
    """Each sweep's round trip: where, within `every` frames after it was played, the input correlates with it
    best; None where that peak is not HEARD_DB over the rest and SHARP_DB over its surroundings (nothing came back,
    noise, or the sweep before it)."""
    found: list[Arrival | None] = []
    for w, s in zip(sweeps, starts, strict=True):
        lag, over, sharp = _peak(heard, w, s, every, rate)
        found.append(Arrival(lag, over) if over >= HEARD_DB and sharp >= SHARP_DB else None)
    return found


def clearest(heard: np.ndarray, sweeps: list[np.ndarray], starts: list[int], every: int, rate: int) -> float:
    """The clearest peak of any sweep's correlation, dB over the rest (for the message when too few were heard)."""
    return max((min(_peak(heard, w, s, every, rate)[1:]) for w, s in zip(sweeps, starts, strict=True)), default=0.0)


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
    voice: tuple[str, int] | None = None  # the profile's voice and its converter delay (frames), where known
    # JACK said no latency for the ports rtvc's feed and are fed by: the loop runs through JACK alone, no sound card
    # (rtvc's own buffering with audio.period set is in the declared devices' part even so)
    jack_loop: bool = False

    @property
    def delays(self) -> list[int]:
        return [a.delay for a in self.arrivals if a is not None]

    @property
    def measured(self) -> int | None:
        """The median round trip, frames (None: too few sweeps came back)."""
        d = sorted(self.delays)
        # (the lower of two middle ones: a round trip one sweep took, not the mean of two that disagree)
        return d[(len(d) - 1) // 2] if len(d) * 2 > len(self.arrivals) else None

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
            "jack_loop": self.jack_loop,
            "with_voice": None
            if self.voice is None or m is None
            else {
                "voice": self.voice[0],
                "converter_ms": round(self.ms(self.voice[1]), 3),
                # (a loop through JACK alone: the declared figure, its measure being a period late)
                "total_ms": round(self.ms((self.declared.total if self.jack_loop else m) + self.voice[1]), 3),
            },
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
        elif gap > 0 and (self.jack_loop or d.device_in + d.device_out == 0):  # (rtvc's ports looped, no card)
            lines.append(
                f"  {self.ms(gap):.2f} ms more than declared, and no device declares any latency here (rtvc's output "
                "looped to its input through JACK, not a sound card): JACK runs such a loop a period late, which is "
                "this gap, not a device's; measure through the sound card's ports for the figure to add"
            )
        elif gap > 0:
            lines.append(
                f"  the devices take {self.ms(gap):.2f} ms more than they declare (converters, buffers the driver does "
                "not count; through the air, ~3 ms a metre too): add it to the latency rtvc shows"
            )
        else:
            lines.append(
                f"  the devices take {self.ms(-gap):.2f} ms less than they declare: rtvc's figure is that much high"
            )
        if self.voice is not None and self.jack_loop:
            name, delay = self.voice
            lines.append(
                f"  with {name}: {self.ms(d.total + delay):.2f} ms declared, its converter adding "
                f"{self.ms(delay):.2f} ms (a loop through JACK alone measures no sound card's part)"
            )
        elif self.voice is not None:
            name, delay = self.voice
            lines.append(
                f"  with {name}: {self.ms(m + delay):.2f} ms microphone to speaker (its converter adds "
                f"{self.ms(delay):.2f} ms, exactly as declared)"
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
        f"heard {heard} of the {len(result.arrivals)} test sweeps back on the input, too few for a measure (of those "
        f"missed the clearest was {result.best_miss_db:.0f} dB over the noise; {HEARD_DB:g} needed)"
        + (f"; {result.xruns} xruns during the run" if result.xruns else ""),
        "loop the output back to the input: a cable from the output to the input, under JACK a connection "
        "(jack_connect), or the microphone close to the speaker with the volume up; --level-db plays them louder. "
        "A round trip over 0.95 s (a Bluetooth device) cannot be measured",
    )


def analyse(probe: LoopProbe, declared: LatencyBreakdown, **kw) -> LoopResult:
    every = round(EVERY_S * probe.samplerate)
    sr = probe.samplerate
    arrivals = find_arrivals(probe.heard, probe.sweeps, probe.starts, every, sr)
    result = LoopResult(sr, declared, arrivals, probe.level_db, **kw)
    if result.measured is None:
        missed = [(w, s) for a, w, s in zip(arrivals, probe.sweeps, probe.starts, strict=True) if a is None]
        result.best_miss_db = clearest(probe.heard, [w for w, _ in missed], [s for _, s in missed], every, sr)
        result.silent = not np.any(probe.heard)
    return result


def run_probe(
    engine, probe: LoopProbe, device, timeout: float, period: int = 0, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Start the engine and `device`, wait for the probe's last sweep to be over on its time, stop both. `period`:
    audio.period (for the message where the blocks stop coming)."""
    engine.start()
    try:
        device.start()
        t0 = time.monotonic()
        moved, played = t0, probe.played_s
        while not probe.done:
            st = engine.status()
            if st.state in ("failed", "stalled"):  # (a dead server, an unplugged device: said at once)
                raise RtvcError(f"the audio stopped during the measurement: {st.detail}", "check the devices and retry")
            now = time.monotonic()
            if probe.played_s != played:
                moved, played = now, probe.played_s
            if now - moved > STUCK_S or now - t0 - played > STUCK_S + 1.0 or now - t0 > timeout:
                # the callbacks run but no block reaches the worker's voice: dropped, the worker behind its slots
                raise RtvcError(
                    f"the measurement stopped after {played:.1f} of {probe.length / probe.samplerate:.1f} s of "
                    f"audio in {now - t0:.1f} s: "
                    + (f"no block converted for {now - moved:.1f} s" if now - moved > STUCK_S else "it fell behind")
                    + f" (blocks skipped {st.skipped_blocks}, "
                    f"output underruns {st.xruns.output_underrun_events}; callbacks of {st.period} frames"
                    + (f" against audio.period = {period}" if period and st.period != period else "")
                    + ")",
                    "leave audio.period at 0 (the server's period), or try a longer --block-ms; `rtvc run` with the "
                    "same settings underruns too",
                )
            sleep(0.05)
        # the devices' part as JACK says it now, of the loop the sweeps went through: it was asked when the streams
        # started, before a loop made by hand (rtvc's ports exist only once it runs), and described the ports then
        if hasattr(device, "jack_latency"):
            device.jack_latency()
    finally:
        from rtvc.run import closing_in_order

        with closing_in_order():
            try:
                device.stop()
            finally:
                engine.stop()


def write_json(path: Path, result: LoopResult) -> None:
    from rtvc.wavio import replace_whole

    text = json.dumps(result.to_dict(), indent=2)
    replace_whole(path, lambda tmp: tmp.write_text(text), str(path))


def voice_delay(cfg, shape) -> tuple[tuple[str, int] | None, str]:
    """The converter delay of config.toml's voice at these settings (frames) for the report, where it costs nothing
    to know: a built-in voice (an RVC voice would load its models for it); else None and why."""
    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.profiles import load_profile, make_voice
    from rtvc.run import profiles_dir
    from rtvc.stream_config import frames

    try:
        profile = load_profile(cfg.voice.profile, profiles_dir(cfg))
    except RtvcError as e:
        return None, f"the voice config.toml names does not load ({e}): its converter delay is not in the figures"
    if profile.model is not None:
        return None, f"voice '{profile.name}' adds its converter delay on top (`rtvc run` shows the total)"
    sr = cfg.audio.samplerate
    full = StreamShape(sr, shape.block, frames(cfg.stream.crossfade_ms, sr), frames(cfg.stream.search_ms, sr))
    conv = StreamingConverter(make_voice(profile, sr), profile.params, full)
    return (f"voice '{profile.name}' ({profile.label})", conv.latency), ""


@dataclass
class LatencyOptions:
    count: int = 8  # sweeps
    level_db: float = -20.0  # their peak, dBFS
    json: Path | None = None  # where the result goes as JSON


def jack_ports(choice, out) -> None:
    """Under JACK, the names of this measurement's ports, for a loop made by hand: where rtvc serve runs on the same
    server it holds the name "rtvc", and this one gets another ("rtvc-01"); the README's `jack_connect rtvc:out_0
    rtvc:in_0` then rewired the live voice (the microphone cut off, the output fed back into it: a review)."""
    from rtvc.audio import jack_links
    from rtvc.audio.devices import JACK_CLIENT

    if not any("JACK" in d.host_api for d in (choice.input, choice.output)):
        return
    name = jack_links.own_name()
    if name is None:
        return
    print(
        f"this measurement's JACK ports: {name}:in_0 and {name}:out_0 (once the sweeps start); to loop them by hand: "
        f"jack_connect {name}:out_0 {name}:in_0",
        file=out,
    )
    if name != JACK_CLIENT:
        print(
            f"(another program holds the JACK name '{JACK_CLIENT}', rtvc serve most likely: its ports carry the live "
            f"voice; leave {JACK_CLIENT}:* as they are)",
            file=out,
        )


def measure(cfg, opts: LatencyOptions, out=None) -> LoopResult:
    """The round trip on the devices `cfg` chooses, at its rate, period, block and prefill (rtvc run's)."""
    import sys

    from rtvc.audio.io import DeviceStreams, choose_devices
    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.engine import Engine
    from rtvc.gate import GateSettings
    from rtvc.run import sigterm_to_interrupt
    from rtvc.stream_config import check_block, frames
    from rtvc.wavio import check_output, same_file

    out = out or sys.stdout
    if opts.json is not None:  # (before the sweeps are played, not after)
        check_output(opts.json, audio=False)
        if cfg.path is not None and same_file(opts.json, cfg.path):
            raise RtvcError(
                f"--json {opts.json} is the config file: writing it would destroy that", "name another file"
            )
    sr = cfg.audio.samplerate
    probe = LoopProbe(sr, opts.count, opts.level_db)
    shape = StreamShape(samplerate=sr, block=check_block(cfg), crossfade=0, search=0)  # (as rtvc run refuses it)
    conv = StreamingConverter(probe, ProbeParams(), shape)
    # no gate (the input is silent until the first sweep comes back), no monitor (the sweeps stay off the headphones)
    engine = Engine(
        conv, sr, frames(cfg.stream.prefill_ms, sr), False, probe.label, cfg.stream.realtime, GateSettings(on=False)
    )
    choice = choose_devices(cfg.audio)
    print("devices:\n" + choice.describe(), file=out)
    jack_ports(choice, out)
    device = DeviceStreams(choice, engine, sr, cfg.audio.period)
    if device.period:
        engine.prepare(device.period)
    print(
        f"playing {opts.count} sweeps of {SWEEP_S * 1e3:.0f} ms, one a second, at {opts.level_db:g} dBFS on the "
        f"output (lower the volume if headphones are on your ears) and listening for them on the input",
        file=out,
        flush=True,
    )
    sigterm_to_interrupt()  # (SIGTERM and SIGHUP stop it as Ctrl-C does: the devices closed in order)
    run_probe(engine, probe, device, timeout=probe.length / sr + 10.0, period=cfg.audio.period)
    st = engine.status()
    result = analyse(probe, st.latency, devices=choice.describe(), xruns=st.xruns.total, jack_loop=device.jack_no_card)
    if st.xruns.total:
        result.notes.append(f"{st.xruns.total} xruns during the run: a sweep that met one may be off")
    if st.skipped_blocks:  # (the probe's time is the blocks it converted: one dropped between a sweep and its return
        # moves that sweep's figure by a block; the spread shows it)
        result.notes.append(f"{st.skipped_blocks} blocks dropped (the worker fell behind): a sweep across one is off")
    result.voice, why = voice_delay(cfg, shape)
    if why:
        result.notes.append(why)
    check_heard(result)
    print(result.report(), file=out)
    if opts.json is not None:
        write_json(opts.json, result)
        print(f"wrote {opts.json}", file=out)
    return result
