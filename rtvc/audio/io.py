"""PortAudio streams (through sounddevice) that drive the engine's callbacks.

One duplex stream when input and output are the same device (same host API), two streams otherwise,
plus an optional monitor stream. Each calls the engine's C callback (rtvc/_rt.c) with its own userData: which
stream it is and which of its input channels the microphone is on.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass

from rtvc.audio import pipewire, voice_mic
from rtvc.audio.devices import Device, Kind, check_rate, find_device, mark_stuck, portaudio
from rtvc.callbacks import DUPLEX, INPUT, MONITOR_STREAM, OUTPUT_STREAM
from rtvc.config import AudioConfig
from rtvc.engine import Engine
from rtvc.errors import DeviceError
from rtvc.native import PA_CALLBACK

log = logging.getLogger("rtvc")


def same_device(a: Device | None, b: Device | None) -> bool:
    """The same device of the list as read (by index), or the same JACK client PortAudio has not listed yet."""
    return a is b or (a is not None and b is not None and (a.index, a.name) == (b.index, b.name))


@dataclass(frozen=True)
class DeviceChoice:
    input: Device
    output: Device
    monitor: Device | None
    input_channel: int  # 1-based
    output_channels: int
    monitor_channels: int

    @property
    def duplex(self) -> bool:
        return same_device(self.input, self.output)

    def describe(self) -> str:
        lines = [
            f"  input   {self.input.title()}, channel {self.input_channel}",
            f"  output  {self.output.title()}, {self.output_channels} channel(s)"
            + (" (one duplex stream)" if self.duplex else " (separate stream)"),
        ]
        if self.monitor:
            lines.append(f"  monitor {self.monitor.title()}, {self.monitor_channels} channel(s)")
        return "\n".join(lines)


def choose_devices(cfg: AudioConfig, fixed: dict[str, Device] | None = None) -> DeviceChoice:
    """The devices `cfg` names; `fixed` ("input", "output", "monitor"): devices already found, kept as they are
    (a switch keeps the devices it is not given)."""
    fixed = fixed or {}
    inp = fixed.get("input") or find_device(cfg.input_device, "input", cfg.host_api)
    out = fixed.get("output") or find_device(cfg.output_device, "output", cfg.host_api)
    mon = fixed.get("monitor")
    if mon is None and cfg.monitor_device != "":
        mon = find_device(cfg.monitor_device, "output", cfg.host_api, "--monitor-device")
    if inp.name == voice_mic.LABEL and "JACK" in inp.host_api:
        raise DeviceError(
            f"the input device {inp.title()} is rtvc's own virtual microphone: rtvc would hear itself",
            "choose your microphone with audio.input_device (or --input-device); see `rtvc devices`",
        )
    if pipewire.served((inp,)) and voice_mic.default_node("input") == voice_mic.NODE:
        # PipeWire's ALSA device ("pipewire", "default" on a PipeWire desktop) records PipeWire's default microphone:
        # made "rtvc voice" in the sound settings, WirePlumber linked rtvc's own output to its input, a loop (the call
        # heard silence; a sound went round for a second and more, into the limiter)
        raise DeviceError(
            f"the input device {inp.title()} records PipeWire's default microphone, which is rtvc's own virtual "
            f"microphone '{voice_mic.LABEL}': rtvc would hear itself",
            "make your microphone the default in the desktop's sound settings, or name it on PipeWire's JACK "
            "(pw-jack rtvc ... --host-api JACK --input-device NAME; `pw-jack rtvc devices` lists them)",
        )
    out_ch = cfg.output_channels or min(2, out.max_output)
    if mon is not None and same_device(mon, out):
        # (both streams mixed into one device's outputs: the voice twice as loud, a tone of 0.6 peaking at 1.2, a
        # review). Under JACK a device is all of a sound card's outputs, and the user may route the monitor's ports
        # to others (an interface's headphone outputs 3-4): said, not refused, where it has others (a card of two
        # outputs: PortAudio connects both streams to the same two, and the warning was in a log nobody read)
        twice = "the voice plays there already, and hear-myself would play it a second time (twice as loud, past "
        twice += "full scale)"
        if "JACK" in mon.host_api and mon.max_output <= out_ch:
            twice += f"; it has no outputs but the {out_ch} rtvc plays the voice on"
        if "JACK" not in mon.host_api or mon.max_output <= out_ch:
            raise DeviceError(
                f"the monitor device {mon.title()} is the output device: {twice}",
                "leave audio.monitor_device empty where the output is what you hear; hear-myself is for headphones "
                "apart from an output that goes to OBS or a call (--monitor-device, or devices.select's monitor)",
            )
        log.info(
            "the monitor device %s is the output device: connect rtvc's monitor ports to other outputs of it (your "
            "headphones' in a patchbay), else %s",
            mon.title(),
            twice,
        )
    if mon is not None and "JACK" in mon.host_api and mon.name != "system":
        check_monitor(mon, inp)
    if cfg.input_channel > inp.max_input:
        raise DeviceError(
            f"audio.input_channel = {cfg.input_channel}, but {inp.title()} has {inp.max_input} input(s)",
            f"set audio.input_channel to 1..{inp.max_input}",
        )
    if out_ch > out.max_output:
        raise DeviceError(
            f"audio.output_channels = {out_ch}, but {out.title()} has {out.max_output} output channel(s)",
            f"set audio.output_channels to 1..{out.max_output}, or 0 for up to 2",
        )
    mon_ch = min(2, mon.max_output) if mon else 0
    channel = microphone_channel(inp, cfg.input_channel)
    check_rate(inp, "input", cfg.samplerate, channel)
    check_rate(out, "output", cfg.samplerate, out_ch)
    if mon:
        check_rate(mon, "output", cfg.samplerate, mon_ch)
    return DeviceChoice(inp, out, mon, channel, out_ch, mon_ch)


MONITOR_PORT = "monitor_"  # (how PipeWire's JACK names a sink's monitor ports: what the speakers play)


def microphone_channel(inp: Device, channel: int) -> int:
    """The input channel that is the `channel`-th microphone port of `inp`: under PipeWire's JACK a sink and a source
    of one name (a headset, a laptop's "Built-in Audio Analog Stereo") are one JACK client, the sink's monitor ports
    first, and channel 1 was the speakers' monitor_FL: rtvc converted what the call said, and sent it back (a review).
    The monitor ports are skipped where the client has others; `channel` as it is elsewhere."""
    if "JACK" not in inp.host_api or inp.name == "system":
        return channel
    from rtvc.audio import jack_links

    names = jack_links.capture_names(inp.name) or []
    ports = [n.split(":", 1)[-1] for n in names]
    mics = [i for i, port in enumerate(ports, 1) if not port.startswith(MONITOR_PORT)]
    if not mics or len(mics) == len(ports):
        return channel
    if channel > len(mics):
        raise DeviceError(
            f"audio.input_channel = {channel}, but {inp.title()} has {len(mics)} microphone port(s) "
            f"({', '.join(ports[i - 1] for i in mics)}) beside its speakers' monitor ports",
            f"set audio.input_channel to 1..{len(mics)}",
        )
    log.info(
        "input device %s is a microphone and speakers of one name: channel %d is its port %s (not the speakers' %s)",
        inp.title(), channel, ports[mics[channel - 1] - 1], ", ".join(p for p in ports if p.startswith(MONITOR_PORT)),
    )  # fmt: skip
    return mics[channel - 1]


def check_monitor(mon: Device, inp: Device) -> None:
    """Hear-myself must play on headphones or speakers: refused on a virtual microphone of PipeWire's (its JACK
    client takes what is played into it as a microphone's sound). "rtvc voice" gave the call the voice twice; a
    virtual source rtvc records from (the input) fed its own output back into it, a howl (a review: the input's peak
    from -14 to -0.3 dBFS, the limiter at work)."""
    own = mon.name == voice_mic.LABEL
    if not own and not any(
        voice_mic.jack_name(p) == mon.name and p.get("media.class") == "Audio/Source/Virtual" for p in voice_mic.nodes()
    ):
        return
    why = (
        "rtvc's own virtual microphone: the call would hear the voice twice"
        if own
        else "a virtual microphone: what hear-myself plays into it, rtvc records again (a howl)"
        if same_device(mon, inp)
        else "a virtual microphone: what hear-myself plays into it is recorded as a microphone, not heard"
    )
    raise DeviceError(
        f"the monitor device {mon.title()} is {why}",
        "name your headphones or speakers for hear-myself: audio.monitor_device, --monitor-device or devices.select's"
        " monitor; see `rtvc devices`",
    )


# Streams PortAudio would not close: kept for the life of the process, since their C callback may still run
# and reads its userData (rtvc.callbacks.StreamFields) on every call.
_UNCLOSED: list = []
# how long a stream's start may take: PortAudio's waits for the stream's own thread to say it started, and under
# PipeWire's ALSA plugin (PortAudio 19.6, Debian 12's) a start that failed in that thread left it waiting for ever
START_TIMEOUT_S = 10.0
SLOW_START_S = 2.0  # a start that takes longer is said in the log


class StartHung(DeviceError):
    """A stream's start did not return within START_TIMEOUT_S: PortAudio cannot be used again in this process."""


MAX_DEVICE_LATENCY_S = 1.0  # more than this from PortAudio is not a latency but a missing one


def _plausible(latency: float, device: Device, kind: str, period: int, samplerate: int) -> float:
    """A stream's latency as PortAudio reports it, unless that is no latency at all: a JACK port of another
    client (not a sound card) that declares none reads as about 2^32 frames. Then one period is assumed, and the
    log says so (the latency shown is then an estimate)."""
    if math.isfinite(latency) and 0.0 <= latency <= MAX_DEVICE_LATENCY_S:
        return latency
    guess = (period or 256) / samplerate
    if "JACK" in device.host_api:  # (JACK's own figures are asked once the streams start: jack_latency)
        return guess
    log.info(
        "the %s device %s reports a latency of %.3g s, which cannot be: %.1f ms (one period) is assumed",
        kind, device.title(), latency, guess * 1e3,
    )  # fmt: skip
    return guess


def _carriers(
    choice: DeviceChoice, clients: list[str] | None = None
) -> tuple[DeviceChoice, dict[str, Device | None], list[tuple]]:
    """For the devices PortAudio cannot open a stream on (Device.opened_by_move: a JACK client named with a pattern's
    characters, one another client's name ends with, or one it has not listed yet), the device each role's stream
    opens on instead, and the moves of rtvc's ports that then take them to the devices meant (jack_links.route's
    groups): another JACK device with as many ports, the server's own ("system") first, rtvc's virtual microphone
    last; the voice is held silent until the move is made (DeviceStreams.start). An output (or a monitor) opens with
    fewer channels where no device has as many ports (the voice is the same on each: its ports are spread over the
    device's); so the choice returned holds the streams' channels. DeviceError where none has the ports. `clients`:
    JACK's clients, where the caller asked already (None: asked here)."""
    from rtvc.audio import jack_links, voice_mic
    from rtvc.audio.devices import list_devices

    roles = {"input": choice.input, "output": choice.output, "monitor": choice.monitor}
    jack = {role: d for role, d in roles.items() if d is not None and "JACK" in d.host_api}
    if not jack:
        return choice, dict(roles), []
    listed = [d for d in list_devices() if "JACK" in d.host_api]
    clients = jack_links.clients() if clients is None else clients  # (None: JACK did not answer)
    # (the devices meant and those to open on: PortAudio would find another client's ports for either)
    lookalikes = _lookalikes([*listed, *jack.values()], clients or [])
    counts = {"input": choice.input_channel, "output": choice.output_channels, "monitor": choice.monitor_channels}
    opened: dict[str, Device | None] = dict(roles)
    moves = []
    for role, device in jack.items():
        if not (device.opened_by_move or device.name in lookalikes):
            continue
        kind: Kind = "input" if role == "input" else "output"
        need = counts[role]
        others = [
            d for d in listed
            if d.host_api == device.host_api and not d.opened_by_move and d.name not in lookalikes
            and (clients is None or d.name in clients)  # (not one closed since the list was read)
            and d.channels(kind) >= (need if kind == "input" else 1)
        ]  # fmt: skip
        others.sort(key=lambda d: (d.channels(kind) < need, d.name == voice_mic.LABEL, d.name != "system"))
        if not others:
            raise DeviceError(
                f"PortAudio cannot open a stream on the {role} device {device.title()} itself (its name holds "
                "characters PortAudio's JACK host API reads as a pattern, another client's name ends with it, or it "
                f"came after the list was read), and no other JACK device has {need if kind == 'input' else 1} "
                f"{kind} port(s) to open it on first",
                "choose another device (`rtvc devices`), or rename this one (PipeWire: its node.description)",
            )
        carrier = opened[role] = others[0]
        counts[role] = min(need, carrier.channels(kind))  # (the stream's; `need` of the device's ports, spread)
        # (a monitor's ports come after the output's, where the output is on JACK)
        first = counts["output"] if role == "monitor" and "output" in jack else 0
        moves.append(("inputs" if role == "input" else "outputs", first, counts[role], device.name, carrier.name, need))
        spread = f" with {counts[role]} channel(s), spread over its {need}" if counts[role] < need else ""
        log.info(
            "the %s device %s opens on %s first%s, and rtvc's ports are moved to it (PortAudio cannot open it itself)",
            role, device.title(), carrier.title(), spread,
        )  # fmt: skip
    streams = dataclasses.replace(choice, output_channels=counts["output"], monitor_channels=counts["monitor"])
    return streams, opened, moves


def _jack_period() -> int:
    """The JACK server's period (frames), asked from a child process (rtvc.audio.jack_links); 0 where it cannot be."""
    from rtvc.audio import jack_links

    got = jack_links.port_latency()
    return got[2] if got is not None else 0


def _lookalikes(devices: list[Device], clients: list[str]) -> set[str]:
    """The names of `devices` that another JACK client's name ends with now ("Headset" beside "USB Headset": one may
    have come since the list was read), whose ports PortAudio's unanchored pattern would find too."""
    return {d.name for d in devices if any(c != d.name and c.endswith(d.name) for c in clients)}


class DeviceStreams:
    """Opened, not started. `start()`/`stop()`/`close()`; device failures reach engine status."""

    def __init__(
        self, choice: DeviceChoice, engine: Engine, samplerate: int, period: int, jack_clients: list[str] | None = None
    ):
        """`jack_clients`: JACK's clients, asked by the caller already (rtvc.audio.switch: while the audio ran)."""
        sd = portaudio()
        # the devices PortAudio cannot open a stream on: opened on another JACK device, rtvc's ports moved after
        choice, opened, self._moves = _carriers(choice, jack_clients)
        self.choice = choice  # (the streams' channels: where a stream opened on another device had to take fewer)
        self.engine = engine
        self._streams: list[sd._StreamBase] = []
        self._stopping = False
        self._started = False
        side = engine.device

        def stream(kind: str, native_kind: int, layout: dict, **kw) -> sd._StreamBase:
            """A stream that calls rtvc's C callback (rtvc/_rt.c) directly: it never takes Python's GIL. Its
            userData lives on the stream object (a stream left running by a hung stop keeps it)."""
            fields = side.stream_fields(native_kind, **layout)
            s = sd._StreamBase(
                kind,
                callback=sd._ffi.cast("PaStreamCallback *", PA_CALLBACK),
                userdata=sd._ffi.cast("void *", ctypes.addressof(fields)),
                wrap_callback=None,
                **kw,
            )
            s._rtvc_fields = fields
            return s

        # PipeWire's ALSA plugin takes a whole quantum a cycle: for a quantum the user's settings hold above what
        # PortAudio's low-latency buffer keeps up with, a period of one quantum (rtvc.audio.pipewire)
        got = pipewire.quantum_for((choice.input, choice.output, choice.monitor))
        self.quantum, key, defaults = got or (0, "", {})
        # PipeWire's own settings, for a watch of its quantum; None: no device here reaches a PipeWire that answers
        self.pipewire_defaults = None if got is None else defaults
        self.sized_for = pipewire.sizing(self.quantum)
        self.period = period  # what the engine plans for (0: the first callback's size)
        # JACK's figures, last asked, said no latency on either side: rtvc's ports reach programs only, or each
        # other (a loop made for `rtvc latency` without a sound card; apply_jack)
        self.jack_no_card = False
        blocksize, latency = period, "low"
        if self.sized_for:
            if period <= self.sized_for:
                # (measured: callbacks shorter than the quantum underran PortAudio's ALSA buffer 44 to 94 times a
                # second at 1024 and 2048, and PortAudio's figures overstated the latency by up to 3072 frames)
                if period and period < self.sized_for:
                    log.warning(
                        "audio.period = %d is shorter than PipeWire's quantum (%d frames, %s): the callbacks take"
                        " the quantum (shorter ones underran)",
                        period, self.sized_for, key,
                    )  # fmt: skip
                blocksize, self.period = self.sized_for, 0
            latency = 2 * blocksize / samplerate  # (PortAudio then keeps three periods: measured)
            log.info(
                "PipeWire runs at a quantum of at least %d frames (%s): its ALSA streams are opened with periods of"
                " %d frames (%.1f ms); under pw-jack (--host-api JACK) the devices' part is shorter",
                self.sized_for, key, blocksize, blocksize / samplerate * 1e3,
            )  # fmt: skip
        on_jack = any(d is not None and "JACK" in d.host_api for d in (choice.input, choice.output, choice.monitor))
        server = _jack_period() if period and on_jack and not self.sized_for else 0
        if server > period:
            # PortAudio's JACK streams call back `server / period` times at once each server period (its buffer
            # adapter): the worker's plan for callbacks `period` apart underran all the time (a 5 s run at 256 under
            # a server at 1024: 349 underruns), and the latency PortAudio adds was not declared
            log.warning(
                "audio.period = %d is shorter than the JACK server's period (%d frames): the callbacks take the "
                "server's (shorter ones came %d at once and underran); for less latency set the server's period "
                "(jack_bufsize, qjackctl), or leave audio.period at 0",
                period, server, server // period,
            )  # fmt: skip
            blocksize, self.period = 0, 0
        common = dict(samplerate=samplerate, blocksize=blocksize, dtype="float32", latency=latency)
        mic = dict(in_channels=choice.input_channel, in_channel=choice.input_channel - 1)
        try:
            if choice.duplex:
                main = stream(
                    "duplex",
                    DUPLEX,
                    dict(**mic, out_channels=choice.output_channels),
                    device=(opened["input"].index, opened["output"].index),
                    channels=(choice.input_channel, choice.output_channels),
                    finished_callback=self._finished("audio stream"),
                    **common,
                )
                self._streams.append(main)
                lat_in, lat_out = main.latency
            else:
                si = stream(
                    "input",
                    INPUT,
                    mic,
                    device=opened["input"].index,
                    channels=choice.input_channel,
                    finished_callback=self._finished("input stream"),
                    **common,
                )
                so = stream(
                    "output",
                    OUTPUT_STREAM,
                    dict(out_channels=choice.output_channels),
                    device=opened["output"].index,
                    channels=choice.output_channels,
                    finished_callback=self._finished("output stream"),
                    **common,
                )
                self._streams += [si, so]
                lat_in, lat_out = si.latency, so.latency
            if choice.monitor:
                self._streams.append(
                    stream(
                        "output",
                        MONITOR_STREAM,
                        dict(out_channels=choice.monitor_channels),
                        device=opened["monitor"].index,
                        channels=choice.monitor_channels,
                        finished_callback=self._monitor_finished,
                        **common,
                    )
                )
            engine.monitor_opened(choice.monitor is not None)
        except sd.PortAudioError as e:
            self.close()
            raise DeviceError(
                f"could not open the audio device: {e}", "check `rtvc devices` and the settings"
            ) from None
        # JACK runs its clients' callbacks on threads it schedules; other host APIs' threads are ours to raise
        ours = tuple(d is None or "JACK" not in d.host_api for d in (choice.input, choice.output, choice.monitor))
        lat_in = _plausible(lat_in, choice.input, "input", period, samplerate)
        lat_out = _plausible(lat_out, choice.output, "output", period, samplerate)
        # ALSA: PortAudio gives each side its buffer less one period. That is the playback's latency (what is
        # queued ahead of a period written), but a capture is read as soon as a period is in: it is one period old
        # (JACK's ALSA backend counts the same). Measured through PipeWire's ALSA plugin at periods 128, 256 and
        # 512 (bench/latency_pipewire.py), PortAudio's figure overstated the input by up to two periods. With
        # audio.period set, PortAudio's ALSA period is a multiple of it, not known here: its figure stands then.
        one_period = choice.input is not None and choice.input.host_api == "ALSA" and not self.period
        # (PortAudio starts a duplex stream's output a user buffer late where the period is fixed: jack_latency; the
        # monitor's stream, output-only, has no such delay)
        phase = self.period if choice.duplex and self.period else 0
        engine.set_device(
            round(lat_in * samplerate), round(lat_out * samplerate), not choice.duplex, ours, one_period, phase
        )

    def _finished(self, what: str):
        def cb():
            if not self._stopping:
                self.engine.report_device_error(f"{what} stopped: the device failed or disappeared")

        return cb

    def _monitor_finished(self) -> None:
        if not self._stopping:  # headphones unplugged: the main output plays on
            self.engine.monitor_lost(f"the monitor stream stopped: {self.choice.monitor.title()} failed or disappeared")

    def start(self, jack_latency: bool = True) -> None:
        """Start the streams; then, under JACK, take the devices' latency from JACK (`jack_latency`; a caller that
        reconnects the ports first, rtvc.audio.switch, asks for it after)."""
        sd = portaudio()
        held = bool(self._moves)  # (no voice to a device not meant, until the ports are moved)
        if held:
            self.engine.hold(True)
        try:
            self._start_streams()
            self._move()
        except sd.PortAudioError as e:
            raise DeviceError(f"could not start the audio stream: {e}", "is the device in use or unplugged?") from None
        finally:
            if held:
                self.engine.hold(False)
        self._started = True
        if jack_latency:
            self.jack_latency()

    def _start_streams(self) -> None:
        """Each stream started, on a helper thread left behind if PortAudio does not return (StartHung: the streams
        are then left as they are, for the life of the process, since a stop would hang the same way). Not on JACK:
        there a start waits for the server's first cycle, which a loaded machine's server may take long to run, and
        a server that does not answer is found before anything is started (rtvc.audio.switch)."""
        c = self.choice
        t0 = time.monotonic()
        done, failed = threading.Event(), []

        def start_all() -> None:
            try:
                for s in self._streams:
                    s.start()
            except BaseException as e:  # (handed to the caller)
                failed.append(e)
            done.set()

        if any(d is not None and "JACK" in d.host_api for d in (c.input, c.output, c.monitor)):
            start_all()
        else:
            threading.Thread(target=start_all, name="rtvc-stream-start", daemon=True).start()
        if not done.wait(START_TIMEOUT_S):
            _UNCLOSED.extend(self._streams)  # (their callbacks may still come: their userData stays alive)
            self._streams = []
            what = f"the audio stream did not start within {START_TIMEOUT_S:g} s: PortAudio hung in this process"
            mark_stuck(what)
            raise StartHung(what, "restart rtvc (a sound device or its driver is hung)")
        if failed:
            raise failed[0]
        self._say_slow(t0)

    @staticmethod
    def _say_slow(t0: float) -> None:
        took = time.monotonic() - t0
        if took > SLOW_START_S:  # (what a start takes, where a start given up is what follows)
            log.info("the audio streams took %.1f s to start", took)

    def _move(self) -> None:
        """rtvc's ports, on the devices their streams opened on (_carriers), moved to the devices meant."""
        if not self._moves:
            return
        from rtvc.audio import jack_links

        moved, _before, _after = jack_links.route(self._moves)
        if moved is None:
            names = ", ".join(f"'{g[3]}'" for g in self._moves)
            raise DeviceError(
                f"rtvc's JACK ports could not be connected to {names} (PortAudio opened them on "
                f"{', '.join(sorted({repr(g[4]) for g in self._moves}))} first, as it cannot open that device itself)",
                "check that the device is still there (`rtvc devices`), or choose another",
            )
        log.info("rtvc's JACK ports moved to %s (PortAudio cannot open a stream on it itself)",
                 ", ".join(f"'{g[3]}'" for g in self._moves))  # fmt: skip

    @property
    def running(self) -> bool:
        """Started, and not stopped since."""
        return self._started and not self._stopping

    def jack_latency(self) -> None:
        """Under JACK, the devices' latency is what JACK says of the ports rtvc's are connected to: the capture
        latency of the ports feeding its input (system:capture_1: the sound card's, one period on the dummy
        backend) and the playback latency of the ports its output feeds (system:playback_1: two periods there; a
        program that records it, such as OBS, usually none). PortAudio reports each less one period ("one buffer
        is not counted", pa_jack.c), so the declared latency was two periods short of the sound card's, which a
        test harness that both fed and recorded rtvc (a feedback loop, which JACK runs one period late) hid.
        Asked from a child process (rtvc.audio.jack_links) after the streams start and after their ports are
        reconnected; when JACK cannot be asked, PortAudio's figures stay (logged)."""
        self.apply_jack(self.ask_jack())

    def _on_jack(self) -> tuple[bool, bool]:
        c = self.choice
        return c.input is not None and "JACK" in c.input.host_api, "JACK" in c.output.host_api

    def ask_jack(self) -> tuple[list[int | None], list[int | None], int] | None:
        """JACK's answer for jack_latency (rtvc.audio.jack_links.port_latency), or None (not on JACK, or no answer)."""
        if not any(self._on_jack()):
            return None
        from rtvc.audio import jack_links

        return jack_links.port_latency()

    def apply_jack(self, got: tuple[list[int | None], list[int | None], int] | None, watched: bool = False) -> None:
        """The devices' latency from JACK's answer (ask_jack); without one, PortAudio's figures stay (logged).
        `watched`: an answer of rtvc.audio.jack_watch (the routing changed), logged only when the figures did."""
        c = self.choice
        jin, jout = self._on_jack()
        if not (jin or jout):
            return
        lat_in, lat_out = self.engine.device_latency
        if got is None:
            log.info("JACK ports' latency: not known; PortAudio's figures are used (%d in, %d out)", lat_in, lat_out)
            return
        inputs, outputs, at_period = got
        # a side whose ports reach nothing (None: every peer gone, as when the JACK server shuts down and its clients
        # close first) keeps its figure: it said 0 frames each side, and the report after the server died showed it
        # (the port of the channel read alone: a headset's mic and speakers of one name under PipeWire's JACK open
        # its speakers' monitor ports too, whose figure counts the playback's, 512 frames more here)
        read = inputs[c.input_channel - 1 : c.input_channel] if len(inputs) >= c.input_channel else inputs
        known_in = [f for f in read if f is not None]
        known_out = [f for f in outputs[: c.output_channels] if f is not None]
        self.jack_no_card = jin and jout and max(known_in, default=1) == 0 and max(known_out, default=1) == 0
        if jin and known_in:  # (only the main stream has inputs)
            lat_in = max(known_in)
        if jout and known_out:  # the main stream's output ports are the first (a monitor stream opens after it)
            lat_out = max(known_out)
            if c.duplex and self.period:
                # PortAudio's own buffering: a duplex stream with a fixed callback size on JACK (whose buffer size
                # it takes as unknown) starts its output a user buffer late (pa_process.c); measured, 256 frames
                lat_out += self.period
        # (with audio.period set, PortAudio keeps the callbacks at that size: the engine's period is not JACK's, and
        # the figures are not rescaled)
        # (and not when only one side is JACK's: the engine's period is then the other host API's)
        scaled = at_period if (jin and jout and not self.period) else 0
        was = self.engine.device_latency
        self.engine.set_device_latency(lat_in, lat_out, scaled)
        if watched and self.engine.device_latency == was:
            return
        log.info(
            "JACK ports' latency%s: %d frames before rtvc's input, %d after its output",
            " (JACK's graph around rtvc changed)" if watched else "",
            lat_in,
            lat_out,
        )

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and close the streams. False if PortAudio did not return within `timeout` seconds.

        PortAudio's stop waits for the device to acknowledge; a device that vanished (a JACK server
        that died, an unplugged USB card) never does, and the call would hang forever. It runs on a
        helper thread instead, left behind if it does not return: the caller must then exit without
        terminating PortAudio (which would block or abort the same way).
        """
        sd = portaudio()
        self._stopping = True
        streams, self._streams = self._streams, []

        def stop_all():
            # the outputs first: with the input stopped first, the worker had nothing to convert while the monitor
            # (its stop a JACK cycle later) still played, and every run with a monitor ended on an underrun that
            # the final report counted as an xrun (640 frames at quantum 1024)
            for s in reversed(streams):
                try:
                    s.stop()
                except sd.PortAudioError:
                    pass  # a stream whose device already vanished; the engine's status says so
                try:
                    s.close()
                except sd.PortAudioError:
                    _UNCLOSED.append(s)  # (it may still call back: its userData must stay alive)

        t = threading.Thread(target=stop_all, name="rtvc-stream-stop", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            self.engine.report_device_error("the audio device did not stop: it is gone or hung")
            return False
        return True

    def close(self) -> None:
        """Release streams that were opened but never started."""
        self.stop()
