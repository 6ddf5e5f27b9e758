"""`rtvc run` and `rtvc convert`: wire config, profile, converter, engine and a device together."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rtvc.audio import devices, voice_mic
from rtvc.audio.io import DeviceStreams, choose_devices
from rtvc.audio.virtual import VirtualDevice
from rtvc.config import Config, format_config
from rtvc.converter import StreamingConverter
from rtvc.engine import Engine
from rtvc.errors import ConfigError, RtvcError, words
from rtvc.gate import GateSettings
from rtvc.latency import plan_prefill
from rtvc.logtext import LogFormatter, redraws
from rtvc.profiles import load_profile, make_voice, profile_name, profiles_dir
from rtvc.resample import resample_block
from rtvc.status import EngineStatus
from rtvc.stream_config import frames, stream_shape
from rtvc.wavio import (
    bundled_speech,
    check_not_same,
    check_output,
    check_output_name,
    load_mono,
    peak_note,
    replace_whole,
    same_file,
    save,
    silence_nonfinite,
)

VIRTUAL_PERIOD = 256  # frames per virtual-device callback when audio.period is 0
DEFAULT_RECORD = Path("out/rtvc-run.wav")  # where the virtual device's output goes without --record
EXIT_DEVICE_HUNG = 3  # the device never acknowledged the stop: exit without terminating PortAudio


def build_converter(cfg: Config, profile_name: str) -> tuple[StreamingConverter, str]:
    """Load a profile's voice and its converter; the voice label for status. Raises RtvcError on any bad
    file or value, having changed nothing. While an engine plays, the load gives way to its worker
    (rtvc.quiet_import.giving_way)."""
    from rtvc.quiet_import import giving_way

    with giving_way():
        return _build_converter(cfg, profile_name)


def _build_converter(cfg: Config, profile_name: str) -> tuple[StreamingConverter, str]:
    sr = cfg.audio.samplerate
    profile = load_profile(profile_name, profiles_dir(cfg))
    voice = make_voice(profile, sr)
    if getattr(getattr(voice, "model", None), "backend", "") == "tensorrt":
        from rtvc.backends.manifest import build_command
        from rtvc.build import engines_dir
        from rtvc.voices.rvc import EngineContext

        command = build_command(profile_name, cfg.stream.block_ms, voice.model.precision, sr, cfg.path)
        voice.engine_context = EngineContext(engines_dir(cfg), command)
    shape = stream_shape(cfg)
    conv = StreamingConverter(voice, profile.params, shape)
    rehearse(conv, profile.path)
    return conv, f"{profile.label}: {voice.label}"


def converter_key(cfg: Config, profile_name: str) -> tuple | None:
    """What `build_converter(cfg, profile_name)` would build from: the profile file's bytes, the identity of
    every file its [model] names, and the audio and stream settings. An equal key builds the same converter,
    so one built earlier can serve again (rtvc.control.controller keeps the voice played before). None where
    the profile cannot be read: a load then says why."""
    import hashlib

    from rtvc.profiles import model_paths
    from rtvc.rvc.model_files import path_identity

    try:
        profile = load_profile(profile_name, profiles_dir(cfg))
        text = profile.path.read_bytes()
        files = [(key, None if path is None else path_identity(path)) for key, path in model_paths(profile)]
    except (RtvcError, OSError):
        return None
    a, s = cfg.audio, cfg.stream
    audio = (a.samplerate, a.period, s.block_ms, s.crossfade_ms, s.search_ms, s.context_ms)
    return (str(profile.path.resolve()), hashlib.sha256(text).hexdigest(), tuple(files), audio)


def rehearse(conv: StreamingConverter, where: Path) -> None:
    """One block of silence through a new converter, then a clean start: what fails on a voice's first
    block (out of GPU memory, a shape the model refuses) fails here, in the loader, while the playing voice
    plays on, and not on the audio worker after the switch was announced. The block comes after a whole window of
    silence, as a switch primes it (StreamingConverter.prime): an eager model's first run at the window's full size
    (buffers, kernels chosen) is done here too (a tiny RVC voice's switch block took 84 ms against its 60)."""
    try:
        conv.prime(np.zeros(conv.history, dtype=np.float32))
        conv.process_block(np.zeros(conv.block, dtype=np.float32))
    except RtvcError:
        raise
    except Exception as e:
        raise RtvcError(
            f"{where}: the voice failed on its first block ({words(e)})",
            "check the profile's [model] settings (device, precision, block size); a GPU may be out of memory",
        ) from e
    finally:
        conv.reset()


def build_engine(cfg: Config) -> Engine:
    conv, label = build_converter(cfg, cfg.voice.profile)
    return _engine(cfg, conv, label)


def _engine(cfg: Config, conv: StreamingConverter, label: str) -> Engine:
    sr = cfg.audio.samplerate
    headroom = frames(cfg.stream.prefill_ms, sr)
    gate = GateSettings(cfg.gate.enabled, cfg.gate.threshold_db, cfg.gate.hold_ms)
    return Engine(conv, sr, headroom, cfg.audio.monitor, label, realtime=cfg.stream.realtime, gate=gate)


def no_voice_engine(cfg: Config) -> Engine:
    """An engine that plays silence (rtvc.voices.none) until a voice is selected: `rtvc serve` whose start profile
    did not load. ConfigError where the stream settings themselves are wrong (no voice would run)."""
    from rtvc.voices.none import NoParams, NoVoice

    sr = cfg.audio.samplerate
    label = f"no voice: '{profile_name(cfg.voice.profile, profiles_dir(cfg))}' did not load"
    conv = StreamingConverter(NoVoice(sr, label), NoParams(), stream_shape(cfg))
    return _engine(cfg, conv, label)


def switch_voice(engine: Engine, cfg: Config, profile_name: str) -> str:
    """Load another profile and hand it to the running engine. A profile that fails to load raises and
    the engine keeps its current voice, untouched."""
    conv, label = build_converter(cfg, profile_name)
    engine.swap_converter(conv, label)
    return label


@dataclass
class RunOptions:
    virtual: bool = False  # force the virtual device
    clip: Path | None = None  # what the virtual device plays (default: the bundled speech clip)
    record: Path | None = None  # where the virtual device's output goes
    duration: float | None = None  # seconds; None: until Ctrl-C (or the clip's end on the virtual device)
    report_json: Path | None = None
    status_every: float = 1.0


def sigterm_to_interrupt() -> None:
    """SIGTERM (`kill`, a service manager) and SIGHUP (the terminal closed) stop the run as Ctrl-C does: the
    report printed, the recording and --report-json written (SIGHUP ended it with none of them). SIGINT stays
    Python's (a KeyboardInterrupt, or ignored where whoever started rtvc ignores it: `rtvc run &` in a script)."""

    def handler(sig, _frame):
        if sig == getattr(signal, "SIGHUP", None):
            quiet_hung_terminal()
        raise KeyboardInterrupt

    for sig in stop_signals():
        if sig != signal.SIGINT:
            signal.signal(sig, handler)


_STOP_SAID: list[int] = []  # (say_stop_signals: a stop signal said already, in this process)


def say_stop_signals() -> dict[int, Any]:
    """From now on a stop signal (an impatient second Ctrl-C; `timeout`, which signals rtvc and then its whole group)
    is said once, not raised, and interrupts no system call (SA_RESTART): raised while the devices closed, or
    interrupting libjack's calls as PortAudio closed its JACK client at the exit, it aborted the process in pa_jack.c's
    assertions (a review; the report never printed, or exit 134 after it). The handlers it replaced."""

    def again(sig, _frame):
        if not _STOP_SAID:
            _STOP_SAID.append(sig)
            print("\nrtvc: stopping: the devices close in order (a moment)", file=sys.stderr, flush=True)

    old = {}
    for s in stop_signals():
        if signal.getsignal(s) is not signal.SIG_IGN:
            old[s] = signal.signal(s, again)
            signal.siginterrupt(s, False)
    return old


@contextlib.contextmanager
def closing_in_order() -> Iterator[None]:
    """While the devices close: stop signals said, not raised (say_stop_signals); the handlers before, after."""
    old = say_stop_signals()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)  # (and system calls interrupted again, as Python's own handlers have them)


def stop_signals() -> list[signal.Signals]:
    """The signals that stop rtvc run and rtvc serve cleanly: SIGTERM, SIGINT, and SIGHUP unless it is ignored
    (nohup; a SIGHUP handler would undo that)."""
    sigs = [signal.SIGTERM, signal.SIGINT]
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and signal.getsignal(hup) is not signal.SIG_IGN:
        sigs.append(hup)
    return sigs


def quiet_hung_terminal() -> None:
    """After SIGHUP: standard output and error on a terminal that hung up (closed: every write fails with EIO) go
    to /dev/null, so that the rest of the stop (the recording, the report file, the clients told) is not ended by
    an OSError from a print. A pipe or a file stays as it is."""
    try:
        import termios
    except ImportError:  # (not on POSIX: no hang-up either)
        return
    for fd in (1, 2):
        try:
            termios.tcgetattr(fd)
        except termios.error as e:
            if e.args and e.args[0] == errno.EIO:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)
        except (OSError, ValueError):
            continue


@contextlib.contextmanager
def _said_as_notes(out: TextIO) -> Iterator[None]:
    """rtvc's log lines of the block (INFO and up) printed to `out` as notes, as they come: the choice of a device
    (PipeWire's default microphone is "rtvc voice": the one of highest priority taken) is logged, for serve, and a
    run off a terminal logs nowhere."""
    log = logging.getLogger("rtvc")

    class Notes(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            print(f"note: {self.format(record)}", file=out)

    handler, level = Notes(logging.INFO), log.level
    handler.setFormatter(LogFormatter())
    log.addHandler(handler)
    log.setLevel(min(level or logging.WARNING, logging.INFO))
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def run_live(cfg: Config, opts: RunOptions) -> int:
    out = sys.stdout
    print(f"rtvc {__import__('rtvc').__version__}", file=out)
    print(format_config(cfg), file=out)
    # where the results go is checked before the run, not found unwritable after it
    record = opts.record or DEFAULT_RECORD
    check_not_same(opts.clip or bundled_speech(), record)  # (the default one too: --clip out/rtvc-run.wav)
    if opts.record is not None:
        check_output(opts.record, samplerate=cfg.audio.samplerate)
    if opts.report_json is not None:
        check_output(opts.report_json, audio=False)
        recorded = opts.record if opts.record is not None else (DEFAULT_RECORD if opts.virtual else None)
        named = "--record" if opts.record is not None else f"the recording ({DEFAULT_RECORD})"
        kept = {"--clip": opts.clip, named: recorded, "the config file": cfg.path}
        for what, other in kept.items():
            if other is not None and same_file(opts.report_json, other):
                raise RtvcError(
                    f"--report-json {opts.report_json} is also {what}: writing it would destroy that",
                    "name another file for the report (e.g. out/report.json)",
                )
    virtual = opts.virtual
    if virtual and cfg.audio.virtual_mic:
        print("virtual device: audio.virtual_mic is not used (the virtual device plays no sound out)", file=out)
    elif cfg.audio.virtual_mic:
        cfg, said = voice_mic.apply(cfg, play=True)  # (before PortAudio loads: it must take PipeWire's JACK)
        print(said, file=out)
    engine = build_engine(cfg)
    sr = cfg.audio.samplerate
    if not virtual and not devices.list_devices():
        if devices.names_a_device(cfg.audio):
            raise devices.no_devices_error(host_api=cfg.audio.host_api)  # the user named a device: say it is not there
        print("no sound card found: running the live engine on the virtual device instead", file=out)
        virtual = True

    device: VirtualDevice | DeviceStreams
    if not virtual and (opts.clip is not None or opts.record is not None):
        given = " and ".join(f for f, v in (("--clip", opts.clip), ("--record", opts.record)) if v is not None)
        raise RtvcError(
            f"{given}: for the virtual device, and rtvc runs on your sound devices",
            "add --virtual to run the clip through the voice (and record it), or leave them out",
        )
    if virtual:
        clip = opts.clip or bundled_speech()
        notes: list[str] = []
        x = load_mono(clip, sr, notes)
        for note in notes:  # (a NaN played as silence, channels that cancel: said as convert says them)
            print(f"note: {clip}: {note}", file=out)
        x = np.concatenate([x, np.zeros(sr, dtype=np.float32)])  # 1 s of silence lets the tail play out
        check_output(record, samplerate=sr)
        device = VirtualDevice(engine, x, cfg.audio.period or VIRTUAL_PERIOD, paced=True)
        print(
            f"virtual device: playing {clip} ({len(x) / sr - 1:.2f} s, then 1 s of silence) as the microphone, "
            f"recording to {record}"
        )
    else:
        with _said_as_notes(out):  # (why a device was taken: serve logs it, a run without the TUI prints it)
            choice = choose_devices(cfg.audio)
        print("devices:\n" + choice.describe(), file=out)
        device = DeviceStreams(choice, engine, sr, cfg.audio.period)
        if device.period:
            engine.prepare(device.period)
    print(f"voice: {engine.voice_label}", file=out)

    sigterm_to_interrupt()
    engine.start()
    device.start()
    t0 = time.monotonic()
    tty = redraws(out)
    last_print = 0.0
    # (from the stop on, a second stop signal is said, not raised: closing_in_order)
    with contextlib.ExitStack() as closing:
        try:
            while True:
                time.sleep(0.05)
                now = time.monotonic() - t0
                if opts.duration is not None and now >= opts.duration:
                    break
                if virtual and device.done:
                    break
                if now - last_print >= (opts.status_every if tty else 5 * opts.status_every):
                    last_print = now
                    line = engine.status().line(shutil.get_terminal_size().columns if tty else None)
                    print(("\r" + line + "\x1b[K") if tty else line, end="" if tty else "\n", file=out, flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            closing.enter_context(closing_in_order())
            stopped = device.stop() is not False
            engine.stop()
        if tty:
            print(file=out)
        status = engine.status()
        print(report(status), file=out)
        if virtual:
            played = device.recording[: device.frames_done]  # a --duration or Ctrl-C ends it before the clip does
            save(record, played, sr)
            print(f"wrote {record} ({len(played) / sr:.1f} s)", file=out)
        if opts.report_json:
            text = json.dumps(status.to_dict(), indent=2)
            target = Path(os.path.realpath(opts.report_json))
            replace_whole(target, lambda tmp: tmp.write_text(text), str(opts.report_json))
            print(f"wrote {opts.report_json} (the status as JSON)", file=out)
    if not stopped:
        return EXIT_DEVICE_HUNG
    return 1 if status.state == "failed" or status.voice_errors["blocks"] else 0


def report(st: EngineStatus) -> str:
    """The closing latency report."""
    t = st.timing
    lines = ["latency report:"]
    if st.latency:
        lines.append(f"  declared latency  {st.latency.describe()}")
    lines += [
        f"  block             {st.block} frames ({1e3 * st.block / st.samplerate:.1f} ms), device period {st.period}",
        f"  worker time       {st.worker_slack_ms:.1f} ms guaranteed per block; scheduling {st.worker_priority}",
        f"  block processing  last {t.last_ms:.3f}  p50 {t.p50_ms:.3f}  p99 {t.p99_ms:.3f} ms"
        + (f" (the last {t.window_blocks} blocks)" if t.window_blocks < t.count else "")
        + f"  max {t.max_ms:.3f} ms of all {t.count} blocks",
        f"  xruns             {st.xruns.total} (output underruns {st.xruns.output_underrun_events},"
        f" input overruns {st.xruns.input_overrun_events}, output skipped {st.xruns.output_skipped_events},"
        f" monitor underruns {st.xruns.monitor_underrun_events},"
        f" PortAudio xrun callbacks {st.xruns.portaudio_events}:"
        f" flags {st.xruns.portaudio})",
        f"  state             {st.state}" + (f": {st.detail}" if st.detail else ""),
    ]
    g = st.gate
    if g["on"] or g["closed_s"]:
        lines.insert(
            -1,
            f"  noise gate        {'on' if g['on'] else 'off'}, opens at {g['threshold_db']:g} dBFS; it silenced "
            f"{g['closed_s']:.1f} s of the output"
            + (" (the microphone carried only the room)" if g["closed_s"] >= 0.05 else ""),
        )
    if st.voice_errors["blocks"]:
        lines.insert(
            -1,
            f"  voice errors      {st.voice_errors['blocks']} blocks played silence because the voice raised "
            f"(the last: {st.voice_errors['last']})",
        )
    if st.overload["blocks"]:
        lines.insert(-1, f"  overloaded        for {st.overload['blocks']} blocks: {st.overload['last']}")
    if st.skipped_blocks:
        lines.insert(
            -1,
            f"  skipped blocks    {st.skipped_blocks} dropped unconverted: the worker fell behind and their slot had "
            "gone by (silence there; the latency did not move)",
        )
    if st.period_changes:
        lines.insert(
            -1,
            f"  period changes    the audio server changed its period {st.period_changes} time(s) under the "
            f"streams; the latency above is the one planned for the last ({st.period} frames)",
        )
    if st.limited_blocks:
        s = st.limited_blocks * st.block / st.samplerate
        often = st.limited_blocks > 0.01 * max(st.blocks, 1)  # (a peak now and then is what the limiter is for)
        lines.insert(
            -1,
            f"  limiter           {st.limited_blocks} blocks ({s:.1f} s) went beyond full scale and were lowered"
            + (": lower the voice's gain_db or the microphone's level" if often else ""),
        )
    bad_in, bad_out = st.nonfinite["input_blocks"], st.nonfinite["output_blocks"]
    if bad_in or bad_out:
        lines.insert(
            -1,
            f"  NaN/infinity      silenced in {bad_in} input blocks (the device's samples) and {bad_out} output "
            "blocks (the voice's)",
        )
    return "\n".join(lines)


class ConvertProgress:
    """How far a file's conversion is, on stderr, for one that takes a while (a 10-minute recording through an RVC
    voice on a CPU takes half an hour): after FIRST_S, on a terminal one line drawn again twice a second and cleared
    at the end, into a pipe or a log a line every PIPE_EVERY_S."""

    FIRST_S = 2.0
    PIPE_EVERY_S = 10.0

    def __init__(self, total_s: float, stream=None, clock=time.monotonic):
        self.total_s, self.stream, self.clock = total_s, stream or sys.stderr, clock
        self.tty = redraws(self.stream)
        self.t0 = clock()
        self.said_at: float | None = None
        self.drawn = False

    def __call__(self, done_s: float) -> None:
        now = self.clock() - self.t0
        every = 0.5 if self.tty else self.PIPE_EVERY_S
        if now < self.FIRST_S or (self.said_at is not None and now - self.said_at < every) or done_s <= 0:
            return
        self.said_at = now
        speed = done_s / now
        left = (self.total_s - done_s) / speed
        line = f"converting: {done_s:.1f} of {self.total_s:.1f} s ({speed:.2g}x real time, {_duration(left)} left)"
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}")
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _duration(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def convert_file(cfg: Config, src: Path, dst: Path, period: int, progress: bool = False) -> tuple[EngineStatus, str]:
    """Run a file through the streaming path (rings, worker, converter) as fast as it can: its status, and a
    note for the user ("" or what was wrong with the input). `progress`: say how far it is (ConvertProgress).

    The output is aligned to the input: the declared latency is trimmed from its start.
    """
    sr = cfg.audio.samplerate
    check_output_name(dst)
    check_not_same(src, dst)
    notes: list[str] = []
    x = load_mono(src, sr, notes)
    engine = build_engine(cfg)
    check_output(dst, samplerate=sr)  # before the work: an unwritable output would throw the conversion away
    engine.realtime = False  # as fast as it can, not against a clock: no reason to preempt the machine
    engine.watch_load = False  # (nor is a block slower than real time an overload)
    engine.gate.settings = GateSettings(on=False)  # the gate keeps a room's noise off the air; a file is as it is
    engine.limiter.on = False  # (a float file keeps what is beyond full scale, and the note below says so)
    pad = plan_prefill(engine.block, period, engine.headroom).prefill + engine.converter.latency
    dev = VirtualDevice(engine, np.concatenate([x, np.zeros(pad, dtype=np.float32)]), period, paced=False)
    shown = ConvertProgress(len(x) / sr) if progress else None
    engine.start()
    try:
        dev.start()
        while dev.running:
            dev.join(0.25)
            if shown is not None:
                shown(min(dev.frames_done, len(x)) / sr)
        dev.join()
    finally:  # Ctrl-C too: the worker stops, nothing is written
        try:
            if shown is not None:
                shown.close()
            dev.stop()
        finally:
            engine.stop()
    if engine.voice_errors:  # live, a failing block plays silence and the voice is retried; a file has no retry
        raise RtvcError(
            f"the voice raised on {engine.voice_errors} of {engine.blocks_done} blocks ({engine.voice_error}); "
            f"{dst} was not written",
            "check the profile's [model] settings (device, precision); a GPU may be out of memory",
        )
    if engine.latency().total != pad:  # the trim below relies on it
        raise RuntimeError(f"internal: declared latency {engine.latency()} differs from the planned {pad} frames")
    y = dev.recording[pad:]
    save(dst, y, sr)
    st = engine.status()
    if st.nonfinite["output_blocks"]:
        notes.append(
            f"the voice gave NaN/infinite samples in {st.nonfinite['output_blocks']} blocks, written as silence"
            f" ({_nonfinite_cause(x)})"
        )
    return st, "; ".join(filter(None, [*notes, peak_note(y, dst)]))


def _nonfinite_cause(x: np.ndarray) -> str:
    """Why a voice gave NaN or infinity for input `x`: damaged model files, or an input no recording holds (a float
    file's 1e30: the models overflow)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 10 ** (40 / 20):
        return f"the input peaks at +{20 * np.log10(peak):.0f} dBFS, which no recording does: check the file"
    return "its model files may be damaged"


def convert_file_offline(cfg: Config, src: Path, dst: Path, progress: bool = False) -> tuple[str, str]:
    """The whole file in one pass of the voice (no blocks, no SOLA): the reference a streamed conversion
    is compared with (a long one in passes: RvcVoice.convert_offline). Only model voices have it (the others are
    streaming by construction). Returns the voice's label and a note for the user ("" or what was wrong with the
    input). `progress`: say how far it is after each pass (ConvertProgress)."""
    sr = cfg.audio.samplerate
    check_output_name(dst)
    check_not_same(src, dst)
    profile = load_profile(cfg.voice.profile, profiles_dir(cfg))
    voice = make_voice(profile, sr)
    offline = getattr(voice, "convert_offline", None)
    if offline is None:
        raise ConfigError(
            f"--offline: the '{profile.voice}' voice has no whole-file mode", "drop --offline; it streams the same way"
        )
    notes: list[str] = []
    x = load_mono(src, sr, notes)
    check_output(dst, samplerate=sr)
    x_v = x if voice.samplerate == sr else resample_block(x, sr, voice.samplerate, len(x) * voice.samplerate // sr)
    shown = ConvertProgress(len(x) / sr) if progress else None
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # (an input beyond what floats hold: said below, once)
            y_v = offline(x_v, profile.params, progress=shown)
    finally:
        if shown is not None:
            shown.close()
    y = y_v if voice.out_samplerate == sr else resample_block(y_v, voice.out_samplerate, sr, len(x))
    if len(y) < len(x):  # (a file of a few samples: less than one sample at the voice's rate)
        y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    said = silence_nonfinite(y, sr, "output")
    if said:
        notes.append(f"{said}: the voice gave them ({_nonfinite_cause(x)})")
    save(dst, y, sr)
    note = "; ".join(filter(None, [*notes, peak_note(y, dst)]))
    # the whole-file pass is the reference: eager torch on the CPU, in fp32, whatever backend streams the voice
    ref = " (offline: eager cpu fp32)" if getattr(voice, "fixed", False) else ""
    return f"{profile.label}: {voice.label}{ref}", note
