"""The `rtvc` command line. Errors a user can fix end as one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from rtvc import __version__
from rtvc.errors import ConfigError, DeviceError, RtvcError

EXIT_USER_ERROR = 2
NEARLY_FULL = 64 << 20  # free bytes under which a disk is named as the full one

# flag -> (dotted config key, type)
FLAGS: dict[str, tuple[str, Any]] = {
    "--host-api": ("audio.host_api", str),
    "--input-device": ("audio.input_device", str),
    "--output-device": ("audio.output_device", str),
    "--monitor-device": ("audio.monitor_device", str),
    "--samplerate": ("audio.samplerate", int),
    "--input-channel": ("audio.input_channel", int),
    "--output-channels": ("audio.output_channels", int),
    "--period": ("audio.period", int),
    "--block-ms": ("stream.block_ms", float),
    "--prefill-ms": ("stream.prefill_ms", float),
    "--profile": ("voice.profile", str),
    "--gate-db": ("gate.threshold_db", float),
    "--port": ("control.port", int),
}
RUN_FLAGS = tuple(f for f, (key, _t) in FLAGS.items() if not key.startswith("control."))


VIRTUAL_MIC_HELP = (
    "play the voice into the virtual microphone 'rtvc voice' (made in PipeWire when missing) for a call or OBS; "
    "overrides audio.virtual_mic"
)


def _add_config_flags(p: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    p.add_argument("--config", type=Path, help="config file (default: ./config.toml when present)")
    for flag, (key, typ) in FLAGS.items():
        if only is None or flag in only:
            p.add_argument(flag, type=typ, dest=key, metavar=typ.__name__.upper(), help=f"overrides {key}")


def _seconds(text: str) -> float:
    """--duration: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} s: give a number of seconds above 0")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtvc", description="Real-time voice changer with measured latency.")
    p.add_argument("--version", action="version", version=f"rtvc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("devices", help="list sound devices, and those config.toml chooses")
    d.add_argument("--config", type=Path, help="config file (default: ./config.toml when present)")
    d.add_argument("--virtual-mic", action="store_true", default=None, help=VIRTUAL_MIC_HELP)

    r = sub.add_parser("run", help="microphone -> voice -> speakers, live")
    _add_config_flags(r, RUN_FLAGS)
    r.add_argument("--monitor", action="store_true", default=None, help="start with 'hear myself' on")
    r.add_argument("--no-gate", action="store_true", default=None, help="start with the noise gate off")
    r.add_argument("--virtual", action="store_true", help="use the virtual device even if a sound card exists")
    r.add_argument("--virtual-mic", action="store_true", default=None, help=VIRTUAL_MIC_HELP)
    r.add_argument("--clip", type=Path, help="virtual device: audio file to play as the microphone")
    r.add_argument("--record", type=Path, help="virtual device: where to write the output (out/rtvc-run.wav)")
    r.add_argument("--duration", type=_seconds, help="stop after this many seconds")
    r.add_argument("--report-json", type=Path, help="write the final status snapshot as JSON")
    r.add_argument("--headless", action="store_true", help="no terminal UI: the engine in this process, a status line")

    s = sub.add_parser("serve", help="the daemon: live voice, controlled over the websocket API (docs/API.md)")
    _add_config_flags(s)
    s.add_argument("--virtual", action="store_true", help="use the virtual device (a clip in a loop)")
    s.add_argument("--virtual-mic", action="store_true", default=None, help=VIRTUAL_MIC_HELP)
    s.add_argument("--clip", type=Path, help="virtual device: audio file to play as the microphone, in a loop")
    s.add_argument("--monitor", action="store_true", default=None, help="start with 'hear myself' on")
    s.add_argument("--no-gate", action="store_true", default=None, help="start with the noise gate off")

    u = sub.add_parser("tui", help="the terminal UI, attached to a running daemon (rtvc serve)")
    _add_config_flags(u, ("--port",))
    u.add_argument("--host", help="the daemon's address (default: where control.bind makes it listen, 127.0.0.1)")
    u.add_argument("--token", help="the daemon's token (default: this machine's token file; `rtvc token` prints it)")

    k = sub.add_parser(
        "ctl",
        help="one request to the running daemon, for a desktop's keyboard shortcuts and scripts (e.g. rtvc ctl mute)",
        description="status | mute|voice|monitor|gate|ptt-mode [on|off|toggle] | select NAME|next|previous | "
        "pitch +N|-N|=N | call METHOD [JSON] (docs/API.md)",
    )
    _add_config_flags(k, ("--port",))
    k.add_argument("--token", help="the daemon's token (default: this machine's token file; `rtvc token` prints it)")
    k.add_argument("action", nargs="?", help="status, mute, voice, monitor, gate, ptt-mode, select, pitch or call")
    k.add_argument("args", nargs=argparse.REMAINDER, help="on|off|toggle; a profile, next or previous; +N; METHOD JSON")

    lat = sub.add_parser(
        "latency",
        help="measure the real round trip through your devices (output looped back to input) against rtvc's figure",
        description="Plays short sweeps on the output and listens for them on the input: loop the output back to "
        "the input first (a cable; under JACK a connection; or the microphone near the speaker).",
    )
    _add_config_flags(lat, tuple(f for f in RUN_FLAGS if f not in ("--profile", "--gate-db", "--monitor-device")))
    lat.add_argument("--count", type=_count, default=8, help="how many sweeps, one a second (3-60; default 8)")
    lat.add_argument("--level-db", type=_level, default=-20.0, help="their peak in dBFS (-60 to -6; default -20)")
    lat.add_argument("--json", type=Path, help="also write the result as JSON")

    t = sub.add_parser("token", help="print the control API token and the OBS dock URL")
    _add_config_flags(t, ("--port",))
    t.add_argument("--new", action="store_true", help="make a new token (clients must use the new one)")

    c = sub.add_parser("convert", help="run a file through the streaming path as fast as it can")
    _add_config_flags(c, ("--samplerate", "--block-ms", "--prefill-ms", "--profile", "--period"))  # (no gate: a file)
    c.add_argument(
        "--offline",
        action="store_true",
        help="model voices: the whole file at once, not streamed (past 45 s in passes of about 30 s)",
    )
    c.add_argument("input", type=Path)
    c.add_argument("output", type=Path)

    b = sub.add_parser("build", help="build a profile's TensorRT engines for this GPU and stream (engines/)")
    _add_config_flags(b, ("--samplerate", "--block-ms"))
    b.add_argument("profile", help="a profile name in profiles/ or a path to a .toml file")
    b.add_argument(
        "--precision",
        choices=("fp16", "fp32"),
        help="the profile's [model] precision (the default; another is refused: the voice would not use it)",
    )
    b.add_argument("--workspace-mb", type=int, default=2048, metavar="N", help="TensorRT workspace limit (MiB)")

    i = sub.add_parser(
        "import",
        help="check and copy model files under models/ and write a voice's profile (an RVC .pth, its .index, "
        "hubert_base.pt, rmvpe.pt, or a .zip of them)",
    )
    _add_config_flags(i, ())
    i.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a voice's .pth (with its .index), or a .zip or folder of them; hubert_base.pt (once); rmvpe.pt (once); "
        "an http(s) address of one is downloaded",
    )
    i.add_argument("--name", help="the profile's name (default: from the voice's file name)")
    i.add_argument("--label", help="what the voice list shows (default: the voice's file name)")
    i.add_argument("--f0", help="F0 estimator: fcpe (default), crepe, crepe-tiny, rmvpe or yin")
    i.add_argument("--force", action="store_true", help="replace a profile of that name, and the voice's files")

    m = sub.add_parser("models", help="list the imported model files, and the profiles that use them")
    _add_config_flags(m, ())

    d = sub.add_parser("doctor", help="check GPU, CUDA, TensorRT, engines and audio; say how to fix what is missing")
    _add_config_flags(d, ())
    d.add_argument("--virtual-mic", action="store_true", default=None, help=VIRTUAL_MIC_HELP)

    sv = sub.add_parser("service", help="rtvc serve from each login on, as a systemd user service (install), or not")
    _add_config_flags(sv, ())
    sv.add_argument(
        "action", choices=("install", "remove"),
        help="install: write ~/.config/systemd/user/rtvc.service for this config and start it; remove: stop it, gone",
    )  # fmt: skip

    v = sub.add_parser(
        "virtual-mic", help="keep the virtual microphone 'rtvc voice' in PipeWire for good (install), or remove it"
    )
    v.add_argument(
        "action", choices=("install", "remove"),
        help="install: PipeWire makes it at each start (a call program started before rtvc finds it); remove: gone",
    )  # fmt: skip
    v.add_argument(
        "--force", action="store_true",
        help="remove it even while a program records from it (PipeWire moves that program to your real microphone)",
    )  # fmt: skip
    return p


def _ranged(cast: type, what: str, lo: float, hi: float, unit: str):
    """An argparse type: `cast` of the text, within [lo, hi] (NaN is not), or a message naming both."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} {unit}: give {lo:g} to {hi:g}")
        return value

    return parse


# rtvc latency: a median needs a few sweeps (one a second); louder than -6 dBFS is no test sound for speakers
_count = _ranged(int, "a whole number", 3, 60, "sweeps")
_level = _ranged(float, "a number of dB", -60.0, -6.0, "dBFS")


def _load(args: argparse.Namespace):
    from rtvc.config import load_config, load_control

    path = args.config
    here = Path("config.toml")
    if path is None and (here.exists() or here.is_symlink()):  # (a folder, a link to nothing: said, not passed over)
        path = here
    overrides = {}
    for flag, (key, _typ) in FLAGS.items():
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = (value, flag)
    if getattr(args, "monitor", None):
        overrides["audio.monitor"] = (True, "--monitor")
    if getattr(args, "no_gate", None):
        overrides["gate.enabled"] = (False, "--no-gate")
    if getattr(args, "virtual_mic", None):
        overrides["audio.virtual_mic"] = (True, "--virtual-mic")
    if args.command == "latency":  # (the sweeps go out on the output device, to come back on the input)
        overrides["audio.virtual_mic"] = (False, "rtvc latency")
    if args.command in ("ctl", "tui", "token"):  # (the daemon's clients: [control] alone)
        return load_control(path, overrides, lambda line: print(line, file=sys.stderr))
    if args.command != "serve":
        return load_config(path, overrides)
    from rtvc import restart

    if path is None and restart.pending():  # (the file the serve before found: gone now, an error, not the defaults)
        path = restart.config_path()
    try:
        cfg = load_config(path, overrides)
        state = restart.pending_state()
        if state is not None:
            from rtvc.stream_config import check_stream

            # an edit load_config takes but no voice would run with, as the new serve will run it (the rate and the
            # period it had): as an error in the file
            check_stream(restart.config_for(cfg, state))
        return cfg
    except ConfigError as e:
        # a serve that starts anew (its sound server restarted) after config.toml was edited into an error: it runs on
        # with the file as the serve before read it (it exited, its voice and settings lost, a state file left)
        kept = restart.config_kept() if restart.pending() else None
        if kept is None:
            restart.discard()
            raise
        restart.config_error = (
            f"config.toml has an error now ({e}): rtvc started anew with the file as it was before the edit; mend "
            "it, it is read again at the next start"
        )
        return load_config(path, overrides, raw=kept)


# rtvc ctl's own options: also taken after the action (`rtvc ctl status --port 47801`), which the action's words
# (kept as written: `pitch -3`, `call METHOD JSON`) would otherwise swallow
CTL_OPTIONS = ("--port", "--config", "--token")


def ctl_options_first(argv: list[str]) -> list[str]:
    """`rtvc ctl ACTION ... --port N ...` as `rtvc ctl --port N ACTION ...`: the options rtvc ctl has, written
    after the action, moved before it (argparse took them as the action's words; `call --port N METHOD` too: no
    method's name starts with '-'); not an option with no value after it."""
    if not argv or argv[0] != "ctl":
        return argv
    head, rest, i = ["ctl"], argv[1:], 0
    while i < len(rest) and rest[i].startswith("-"):  # (the options before the action, each with its value)
        i += 1 if "=" in rest[i] or rest[i] in ("-h", "--help") else 2
    head += rest[:i]
    action, words, moved = rest[i : i + 1], [], []
    tail = rest[i + 1 :]
    j = 0
    while j < len(tail):
        word = tail[j]
        name = word.split("=", 1)[0]
        if name in CTL_OPTIONS and ("=" in word or j + 1 < len(tail)):
            if "=" in word:
                moved.append(word)
                j += 1
            else:
                moved += tail[j : j + 2]
                j += 2
            continue
        words.append(word)
        j += 1
    return [*head, *moved, *action, *words]


UTF8_AGAIN = "RTVC_UTF8_AGAIN"  # set when rtvc runs again for UTF-8 mode (_in_utf8_mode): only once


def _in_utf8_mode() -> None:
    """(A command line's start.) Under a locale whose encoding is not UTF-8 (de_DE.ISO-8859-1, say), rtvc runs again
    in Python's UTF-8 mode, the same command line: a review found it wrote profiles whose model paths were mangled
    ("MÃ¼ller", missing once back in a UTF-8 session or under the service), crashed after a select had worked on a
    label it could not print, and left the daemon loading on a path it could not encode. File names and text are
    UTF-8 everywhere else rtvc runs (and in its files). PYTHONUTF8=0 set by the user is left alone."""
    import codecs
    import locale

    if sys.flags.utf8_mode or os.environ.get("PYTHONUTF8") == "0" or os.environ.get(UTF8_AGAIN):
        return  # (UTF8_AGAIN: run again once; -E, -I or -X utf8=0 keep Python from taking PYTHONUTF8, a review)
    try:
        utf8 = codecs.lookup(locale.getpreferredencoding(False)).name == "utf-8"
    except LookupError:
        utf8 = False
    if not utf8 and sys.executable:
        env = {**os.environ, "PYTHONUTF8": "1", UTF8_AGAIN: "1"}
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # (a command line, not a call from Python: that process is not rtvc's to run again)
        _in_utf8_mode()
    args = _parser().parse_args(ctl_options_first(list(sys.argv[1:] if argv is None else argv)))
    try:
        return _dispatch(args)
    except RtvcError as e:
        if e.__cause__ is not None and os.environ.get("RTVC_TRACEBACK"):  # (what a bug report needs, on request)
            traceback.print_exception(e.__cause__, file=sys.stderr)
        with contextlib.suppress(OSError):  # (standard error on a pipe gone too: the guard below must still run)
            print(f"rtvc: error: {e}", file=sys.stderr)
        if "sounddevice" in sys.modules:
            from rtvc.audio.devices import must_not_terminate

            if must_not_terminate():  # (serve on a JACK server that was started again: PortAudio would abort)
                _exit_now(EXIT_USER_ERROR)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # Ctrl-C where no command handles it itself (convert, build): nothing half-written
        print(f"rtvc: {args.command} interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`rtvc doctor | head`): quiet, as a tool killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's exit flush would raise again)
        if "sounddevice" in sys.modules:
            from rtvc.audio.devices import must_not_terminate

            if must_not_terminate():  # (as above)
                _exit_now(141)
        return 141
    except OSError as e:  # (after BrokenPipeError, one of its kind)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        # a disk full under its output, a log, a temporary folder (a review: a traceback, or a report lost at the
        # stop of a run that had gone well); standard output may be on it: what Python flushes at its exit too
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        where = f" ({e.filename})" if e.filename else _full_where()
        with contextlib.suppress(OSError):
            print(f"rtvc: error: {e.strerror}{where}: free space on that disk, or write elsewhere", file=sys.stderr)
        if "sounddevice" in sys.modules:
            from rtvc.audio.devices import must_not_terminate

            if must_not_terminate():  # (as above)
                _exit_now(EXIT_USER_ERROR)
        return EXIT_USER_ERROR


def _exit_now(code: int) -> None:
    """Exit past PortAudio's exit handler, which would wait on (or, for JACK, abort in) a dead device: what can be
    flushed is (standard output or error on a pipe gone: not)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "devices":
        from rtvc.audio import voice_mic
        from rtvc.audio.devices import format_devices, list_devices, no_devices_error
        from rtvc.doctor import check_devices

        failed: RtvcError | None = None
        try:
            cfg, problem = _load(args), ""
        except ConfigError as e:  # (the list stands; the config's own error is the answer for it)
            cfg, problem = None, str(e)
        said = ""
        if cfg is not None and cfg.audio.virtual_mic:  # (before PortAudio: the list is then PipeWire's JACK's)
            try:
                cfg, said = voice_mic.apply(cfg)
            except DeviceError as e:
                cfg, problem, failed = None, str(e), e
        devices = list_devices()
        if not devices:  # (without PipeWire, --virtual-mic lists nothing: its error is the cause, not "no devices")
            api = cfg.audio.host_api if cfg is not None else ""
            raise failed if failed is not None else no_devices_error(True, api)
        print(format_devices(devices))
        # what `rtvc run` would open with this config (a config that does not load is said by its own error)
        if cfg is None:
            print(f"config: {problem}")
            return 0
        chosen = check_devices(cfg.audio)[0]
        if said:
            print(f"config: {said}")
        print(f"config: {chosen.found}" if chosen.ok else f"config: {chosen.found} ({chosen.fix})")
        return 0
    if args.command == "doctor":  # before the config: it reports a broken one instead of stopping at it
        return _doctor(args)
    if args.command == "service":
        from rtvc import service

        if args.action == "install":
            from rtvc.profiles import load_profile
            from rtvc.run import profiles_dir

            cfg = _load(args)  # (a config or a profile that does not load is refused before anything is written)
            load_profile(cfg.voice.profile, profiles_dir(cfg))
            print("\n".join(service.install(cfg.path)))
        else:
            print("\n".join(service.remove()))
        return 0
    if args.command == "virtual-mic":
        from rtvc.audio import voice_mic

        print("\n".join(voice_mic.install() if args.action == "install" else voice_mic.remove(args.force)))
        return 0
    cfg = _load(args)
    if args.command == "build":
        from rtvc.build import MAX_WORKSPACE_MB, MIN_WORKSPACE_MB, BuildOptions, build_profile

        if args.workspace_mb < MIN_WORKSPACE_MB:
            raise RtvcError(
                f"--workspace-mb {args.workspace_mb} is too small", f"give at least {MIN_WORKSPACE_MB} (MiB)"
            )
        if args.workspace_mb > MAX_WORKSPACE_MB:  # (it was taken, and handed to TensorRT as a byte count)
            raise RtvcError(
                f"--workspace-mb {args.workspace_mb} is more memory than any GPU has",
                f"give at most {MAX_WORKSPACE_MB} (MiB); the default 2048 is plenty for RVC voices",
            )
        return build_profile(cfg, BuildOptions(args.profile, args.precision, args.workspace_mb))
    if args.command == "import":
        from rtvc.models import ImportOptions, import_models
        from rtvc.run import sigterm_to_interrupt

        sigterm_to_interrupt()  # (killed by SIGTERM or SIGHUP, it left half a model file under models/ and its temp)

        import_models(cfg, ImportOptions(args.files, args.name, args.label, args.f0, args.force))
        return 0
    if args.command == "models":
        from rtvc.models import list_models

        print(list_models(cfg))
        return 0
    if args.command == "ctl":
        from rtvc.control import ctl

        if args.action is None:
            raise ConfigError("rtvc ctl: which action?", f"use {ctl.USAGE}")
        ctl.check_args(args.action, args.args)  # (before the token file is read: the words first)
        print(ctl.run(ctl.daemon_for(cfg, cfg.control.port, args.token), args.action, args.args))
        return 0
    if args.command == "tui":
        from rtvc.control.auth import connect_host
        from rtvc.tui.launch import attach

        host = args.host or connect_host(cfg.control, cfg.control.port).rpartition(":")[0].strip("[]")
        return attach(host, cfg.control.port, args.token)
    if args.command == "run" and _interactive(args):
        from rtvc.tui.launch import run_with_daemon

        return run_with_daemon(_serve_argv(args))
    if args.command == "run":
        from rtvc.audio.devices import must_not_terminate
        from rtvc.run import EXIT_DEVICE_HUNG, RunOptions, run_live, say_stop_signals

        opts = RunOptions(
            virtual=args.virtual,
            clip=args.clip,
            record=args.record,
            duration=args.duration,
            report_json=args.report_json,
        )
        code = run_live(cfg, opts)
        say_stop_signals()  # (to the exit: PortAudio closes its JACK client there)
        if code == EXIT_DEVICE_HUNG or must_not_terminate():
            _exit_now(code)
        return code
    if args.command == "latency":
        from rtvc.audio.devices import must_not_terminate
        from rtvc.loopback import LatencyOptions, measure
        from rtvc.run import say_stop_signals

        measure(cfg, LatencyOptions(args.count, args.level_db, args.json))
        say_stop_signals()  # (to the exit: PortAudio closes its JACK client there)
        if must_not_terminate():
            _exit_now(0)
        return 0
    if args.command == "serve":
        from rtvc.audio.devices import must_not_terminate
        from rtvc.run import EXIT_DEVICE_HUNG
        from rtvc.serve import ServeOptions, serve

        code = serve(cfg, ServeOptions(virtual=args.virtual, clip=args.clip))
        if code == EXIT_DEVICE_HUNG or must_not_terminate():
            _exit_now(code)
        return code
    if args.command == "token":
        from rtvc.control.auth import connect_host, load_or_create_token, token_path

        token = load_or_create_token(renew=args.new)
        where = connect_host(cfg.control, cfg.control.port)
        print(f"token:     {token}\n  (kept in {token_path()}; `rtvc token --new` replaces it)")
        if args.new:
            print(
                "  a running rtvc serve takes the new token within a second and disconnects the clients that used "
                "the old one: give them the new token (the OBS dock: its new URL below)"
            )
        print(f"OBS dock:  http://{where}/dock?token={token}\n  (OBS: Docks > Custom Browser Docks, paste as URL)")
        print(f"websocket: ws://{where}/rpc (send auth {{token}} first, or connect to ws://{where}/rpc?token=...)")
        if cfg.control.allow_remote and cfg.control.bind in ("0.0.0.0", "::"):
            import socket

            print(
                f"  from another machine (allow_remote): this machine's address in place of {where.split(':')[0]}, "
                f"e.g. http://{socket.gethostname()}:{cfg.control.port}/dock?token={token}"
            )
        return 0
    if args.command == "convert" and args.offline:
        from rtvc.run import convert_file_offline

        label, note = convert_file_offline(cfg, args.input, args.output, progress=True)
        print(f"wrote {args.output}: offline, voice {label}" + (f"; {note}" if note else ""))
        return 0
    if args.command == "convert":
        from rtvc.run import VIRTUAL_PERIOD, convert_file

        st, note = convert_file(cfg, args.input, args.output, cfg.audio.period or VIRTUAL_PERIOD, progress=True)
        print(
            f"wrote {args.output}: {st.blocks} block{'s' if st.blocks != 1 else ''}, voice {st.voice}, "
            f"block time p50 {st.timing.p50_ms:.3f} ms p99 {st.timing.p99_ms:.3f} ms" + (f"; {note}" if note else "")
        )
        return 0
    raise AssertionError(args.command)


def _doctor(args: argparse.Namespace) -> int:
    from rtvc.build import engines_dir
    from rtvc.doctor import doctor
    from rtvc.stream_config import check_stream

    stream_ok = True
    try:
        cfg = _load(args)
    except RtvcError as e:  # reported with the rest; the exit code says rtvc would not start with it
        print(f"missing  config         {e}")
        cfg = None
    if cfg is not None:
        try:
            check_stream(cfg)  # (what load_config takes but no voice runs with: the block against the period)
        except RtvcError as e:
            print(f"missing  config         {e}")
            stream_ok = False
    folder = engines_dir(cfg) if cfg is not None else Path.cwd() / "engines"
    code = doctor(folder, audio=cfg.audio if cfg is not None else None, cfg=cfg)
    return code if cfg is not None and stream_ok else EXIT_USER_ERROR


def _full_where() -> str:
    """Where a write that named no file most likely ran out of space: the folders rtvc writes into unnamed (its
    temporary folder, for an import's unpacked .zip, and the working folder) that are nearly full. (It said
    "writing its output or log" of a full TMPDIR: a review.)"""
    import shutil
    import tempfile

    said = []
    folders = {os.getcwd(): "this folder", tempfile.gettempdir(): "the temporary folder (TMPDIR)"}  # (the same: once)
    for folder, what in reversed(folders.items()):
        with contextlib.suppress(OSError):
            if (free := shutil.disk_usage(folder).free) < NEARLY_FULL:
                said.append(f"{what} {folder} has {free / 1e6:.1f} MB free")
    return f" ({' and '.join(said)})" if said else " (writing its output or log)"


def _interactive(args: argparse.Namespace) -> bool:
    """`rtvc run` shows the TUI (daemon + client) on a terminal; scripted runs keep the in-process engine."""
    if args.headless or args.duration is not None or args.record or args.report_json:
        return False
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    if os.environ.get("TERM", "") == "dumb":  # (the full-screen UI drew escapes as text there, keys unread)
        print(
            "rtvc: this terminal (TERM=dumb: an editor's shell, an IDE's console) cannot show the UI: status lines "
            "instead; for the UI run rtvc in a terminal program (or `rtvc serve` here and `rtvc tui` in one)",
            file=sys.stderr,
        )
        return False
    return True


def _serve_argv(args: argparse.Namespace) -> list[str]:
    """`rtvc run`'s flags for the `rtvc serve` it starts."""
    argv = ["--config", str(args.config)] if args.config else []
    for flag, (key, _typ) in FLAGS.items():
        value = getattr(args, key, None)
        if value is not None:
            argv += [flag, str(value)]
    if args.monitor:
        argv.append("--monitor")
    if args.no_gate:
        argv.append("--no-gate")
    if args.virtual:
        argv.append("--virtual")
    if args.virtual_mic:
        argv.append("--virtual-mic")
    if args.clip:
        argv += ["--clip", str(args.clip)]
    return argv
