"""config.toml: parsed once into typed dataclasses; CLI flags override it; printed resolved at start."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtvc.errors import ConfigError
from rtvc.settings import from_table, in_range, one_of, read_toml, setting


def user_config_dir() -> Path:
    """$XDG_CONFIG_HOME; ~/.config where it is unset, empty or relative (the XDG spec says to ignore a relative one:
    it would be read from whatever folder rtvc runs in). The token, the systemd unit and PipeWire's drop-in go here."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(base) if base and os.path.isabs(base) else Path.home() / ".config"


DEVICE_HELP = "a device index, or a substring of its name (see `rtvc devices`); '' for the system default"


def device_name_ok(value: Any) -> str | None:
    """A device name with a control character (a NUL, a newline: pasted in, or sent by a client) names no device. A
    NUL reached a JACK query's command line and failed there as an internal error; in a message it was invisible
    ("no input device matches 'micA'")."""
    bad = [c for c in value if unicodedata.category(c) == "Cc"] if isinstance(value, str) else []
    return f"a name without control characters ({bad[0]!r} is one: retype the name)" if bad else None


@dataclass(frozen=True)
class AudioConfig:
    host_api: str = setting(
        "", "substring of the host API name (e.g. 'JACK', 'WASAPI'); '' for the default", device_name_ok
    )
    input_device: int | str = setting("", "microphone: " + DEVICE_HELP, device_name_ok)
    output_device: int | str = setting("", "where the converted voice goes: " + DEVICE_HELP, device_name_ok)
    monitor_device: int | str = setting(
        "",
        "'hear myself' device (e.g. headphones): " + DEVICE_HELP.replace("the system default", "none"),
        device_name_ok,
    )
    monitor: bool = setting(False, "start with the monitor ('hear myself') on")
    virtual_mic: bool = setting(
        False,
        "play the voice into the virtual microphone 'rtvc voice' (a PipeWire node rtvc makes when it is missing) "
        "for a call or OBS to record; needs PipeWire and pipewire-jack; hear-myself (when turned on) then goes to "
        "PipeWire's default speakers unless monitor_device names others",
    )
    samplerate: int = setting(
        48000, "device sample rate in Hz", one_of(16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
    )
    input_channel: int = setting(1, "which input channel carries the microphone (1-based)", in_range(1, 64))
    output_channels: int = setting(0, "output channels the voice is copied to; 0 for up to 2", in_range(0, 64))
    period: int = setting(0, "frames per device callback; 0 lets the host choose (lowest latency)", in_range(0, 8192))


@dataclass(frozen=True)
class StreamConfig:
    block_ms: float = setting(20.0, "processing block in milliseconds", in_range(1.0, 500.0))
    crossfade_ms: float = setting(
        3.0, "crossfade between consecutive blocks (ms), at most one block", in_range(0.0, 100.0)
    )
    search_ms: float = setting(
        16.0,
        "SOLA search window (ms): where each block may join the last; it should span one period of the output "
        "voice (16 ms: down to 62.5 Hz); half of it adds latency",
        in_range(0.0, 50.0),
    )
    context_ms: float = setting(
        0.0,
        "left context the voice sees (ms); 0 for what the voice needs, more for neural voices",
        in_range(0.0, 5000.0),
    )
    prefill_ms: float = setting(
        8.0, "time guaranteed to the worker for each block, against jitter (ms)", in_range(0.0, 500.0)
    )
    realtime: bool = setting(
        True,
        "run the worker thread with real-time scheduling (SCHED_FIFO 1, below the audio callbacks) where the "
        "system allows it; status says what it got and why (README 'Latency')",
    )


@dataclass(frozen=True)
class VoiceConfig:
    profile: str = setting(
        "default", "voice profile: a name in profiles/ or a path to a .toml file (relative: from config.toml's folder)"
    )


@dataclass(frozen=True)
class GateConfig:
    enabled: bool = setting(
        True, "the noise gate: the output is silent while the microphone is quieter than threshold_db"
    )
    threshold_db: float = setting(
        -60.0, "input level (dBFS RMS over 10 ms) that opens the gate; it closes 6 dB below", in_range(-100.0, 0.0)
    )
    hold_ms: float = setting(
        200.0, "how long the input stays below the closing level before the gate closes (ms)", in_range(0.0, 5000.0)
    )


def _origins_ok(v: Any) -> str | None:
    ok = all(isinstance(o, str) and o.startswith(("http://", "https://")) and o.count("/") == 2 for o in v)
    return None if ok else 'a list of origins like "http://192.168.1.20:8000" (scheme://host[:port], no path)'


@dataclass(frozen=True)
class ControlConfig:
    port: int = setting(
        47800, "TCP port of the control API (websocket /rpc) and the browser dock (/dock)", in_range(1, 65535)
    )
    bind: str = setting("127.0.0.1", "address to listen on: a loopback address unless allow_remote is true")
    allow_remote: bool = setting(
        False, "accept other machines (a non-loopback bind); anyone with the token can control rtvc"
    )
    origins: tuple | list = setting(  # noqa: RUF009  (a tuple default; TOML gives a list)
        (), "extra browser origins allowed to connect (the dock's own is always allowed)", _origins_ok
    )
    max_clients: int = setting(32, "most connected clients; more are refused", in_range(1, 1024))
    max_frame_kb: int = setting(64, "largest message a client may send, in KiB", in_range(1, 1024))
    max_requests_per_s: int = setting(
        100,
        "requests a client may send per second; past it they wait their turn, as each holds the CPU time the voice "
        "needs (all clients together: 3 times it); one with over 5 s of them waiting is closed (4029)",
        in_range(1, 100000),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "origins", tuple(self.origins))  # TOML gives a list; keep the config hashable


def _check_monitor(audio: AudioConfig, where: str) -> None:
    """'Hear myself' at start with nowhere to hear it would be a switch that silently does nothing. With the virtual
    microphone too: PipeWire's default speakers may be a laptop's, beside its microphone (a howl at start)."""
    if audio.monitor and audio.monitor_device == "":
        raise ConfigError(
            f"{where}: 'audio.monitor' = true (hear myself) needs a monitor device; audio.monitor_device is not set",
            "set audio.monitor_device (or --monitor-device) to your headphones, an index or part of a name from "
            "`rtvc devices`; or leave the monitor off",
        )


def _check_virtual_mic(audio: AudioConfig, sources: dict[str, str]) -> None:
    """The virtual microphone is where the voice goes, on PipeWire's JACK: an output device or another host API
    beside it would be two answers to one question."""
    if not audio.virtual_mic:
        return
    where = sources["audio.virtual_mic"]
    if audio.output_device not in ("", "rtvc voice"):  # (the README's recipe before rtvc made it: the same node)
        raise ConfigError(
            f"audio.virtual_mic ({where}) and audio.output_device = {audio.output_device!r} "
            f"({sources['audio.output_device']}) both say where the voice goes",
            "leave audio.output_device unset (the voice goes to the virtual microphone); to hear yourself, set "
            "audio.monitor_device",
        )
    if not "jack audio connection kit".startswith(audio.host_api.lower()):
        raise ConfigError(
            f"audio.virtual_mic ({where}) runs on PipeWire's JACK, but audio.host_api = {audio.host_api!r} "
            f"({sources['audio.host_api']})",
            "leave audio.host_api unset (or 'JACK') with the virtual microphone",
        )


def _check_bind(control: ControlConfig, where: str) -> None:
    """A non-loopback bind opens the daemon to the network: only when the user said so."""
    try:
        loopback = control.bind == "localhost" or ipaddress.ip_address(control.bind).is_loopback
    except ValueError:
        raise ConfigError(
            f"{where}: 'control.bind' = {control.bind!r} is not an IP address",
            "use 127.0.0.1 (this machine only), or an address of this machine with allow_remote = true",
        ) from None
    if not loopback and not control.allow_remote:
        raise ConfigError(
            f"{where}: 'control.bind' = {control.bind!r} would accept other machines",
            "set control.allow_remote = true to allow that (keep the token secret), or bind 127.0.0.1",
        )


def _scenes_ok(v: Any) -> str | None:
    ok = all(isinstance(k, str) and isinstance(x, str) and x for k, x in v.items())
    return None if ok else 'a table of "OBS scene name" = "profile name" under [obs.scenes]'


def host_ok(v: Any) -> str | None:
    """A host name or address alone: 'ws://127.0.0.1' or '127.0.0.1:4455' (copied from a URL) is not one."""
    bad = not isinstance(v, str) or not v.strip() or any(c.isspace() or c in "/?#@[]" for c in v)
    if not bad and ":" in v:  # only an IPv6 address has a colon; a name or IPv4 address with one holds a port
        try:
            ipaddress.IPv6Address(v)
        except ValueError:
            bad = True
    if bad:
        return "a host name or address alone, e.g. 127.0.0.1: no ws://, no path, no port (it goes in obs.port)"
    return None


@dataclass(frozen=True)
class ObsConfig:
    enabled: bool = setting(False, "connect to OBS Studio (obs-websocket 5, OBS 28+) and switch voices by scene")
    host: str = setting("127.0.0.1", "the machine OBS runs on", host_ok)
    port: int = setting(4455, "OBS's Tools > WebSocket Server Settings > Server Port", in_range(1, 65535))
    password: str = dataclasses.field(  # not in repr: a config printed or logged never shows it
        default="",
        repr=False,
        metadata={"help": "OBS's websocket server password (never printed or logged)", "secret": True},
    )
    scenes: dict = dataclasses.field(
        default_factory=dict,
        metadata={"help": 'OBS scene -> profile, as [obs.scenes] "Just Chatting" = "default"', "check": _scenes_ok},
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenes", dict(self.scenes))


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = dataclasses.field(default_factory=AudioConfig)
    stream: StreamConfig = dataclasses.field(default_factory=StreamConfig)
    voice: VoiceConfig = dataclasses.field(default_factory=VoiceConfig)
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)
    control: ControlConfig = dataclasses.field(default_factory=ControlConfig)
    obs: ObsConfig = dataclasses.field(default_factory=ObsConfig)
    # dotted key -> where its value came from ("default", the file, or "--flag")
    sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)
    path: Path | None = None
    # the file's tables as read (rtvc.restart keeps them: a serve that starts anew after config.toml was edited
    # into an error starts with these)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


SECTIONS: dict[str, type] = {
    "audio": AudioConfig,
    "stream": StreamConfig,
    "voice": VoiceConfig,
    "gate": GateConfig,
    "control": ControlConfig,
    "obs": ObsConfig,
}


def load_config(
    path: Path | None, overrides: dict[str, tuple[Any, str]] | None = None, raw: dict[str, Any] | None = None
) -> Config:
    """Read `path` (None: defaults only), then apply `overrides` {"audio.samplerate": (48000, "--flag")}. `raw`:
    the file's tables as read before (Config.raw), taken instead of reading it again."""
    tables: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    sources: dict[str, str] = {}
    where: dict[str, str] = {}
    if raw is None:
        raw = read_toml(path) if path is not None else {}
    if path is not None:
        for name, table in raw.items():
            if name not in SECTIONS:
                if not isinstance(table, dict):  # a key above every [section] header (a common TOML slip)
                    home = [s for s, cls in SECTIONS.items() if name in {f.name for f in dataclasses.fields(cls)}]
                    put = f"put it under [{home[0]}]" if home else f"keys belong in a section: {', '.join(SECTIONS)}"
                    raise ConfigError(f"{path}: '{name}' is outside any [section]", put)
                raise ConfigError(f"{path}: unknown section [{name}]", f"allowed sections: {', '.join(SECTIONS)}")
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: '{name}' must be a [{name}] table", "see config.toml's comments")
            tables[name].update(table)
            where.update({f"{name}.{k}": str(path) for k in table})
    for dotted, (value, flag) in (overrides or {}).items():
        name, key = dotted.split(".", 1)
        tables[name][key] = value
        where[dotted] = flag
    sections = {}
    for name, cls in SECTIONS.items():
        keys_where = {k: where[f"{name}.{k}"] for k in tables[name]}
        sections[name] = from_table(cls, tables[name], keys_where, name)
        for f in dataclasses.fields(cls):
            sources[f"{name}.{f.name}"] = where.get(f"{name}.{f.name}", "default")
    if path is not None:  # a profile named by a relative path in the file is found beside the file, as profiles/ is
        base = path.parent
        if sources["voice.profile"] == str(path):
            sections["voice"] = VoiceConfig(_beside(sections["voice"].profile, base))
        obs = sections["obs"]
        sections["obs"] = dataclasses.replace(obs, scenes={k: _beside(v, base) for k, v in obs.scenes.items()})
    _check_bind(sections["control"], sources["control.bind"])
    _check_monitor(sections["audio"], sources["audio.monitor"])
    _check_virtual_mic(sections["audio"], sources)
    return Config(**sections, sources=sources, path=path, raw=raw)


def load_control(path: Path | None, overrides: dict[str, tuple[Any, str]], say: Callable[[str], None]) -> Config:
    """For the daemon's clients (rtvc ctl, tui, token): [control] alone from the file, the rest as defaults. A mistake
    elsewhere in the file (an edit meant for the next start) stopped them reaching the daemon that runs on the file as
    it was: a mute shortcut did nothing. A file that does not read at all: with --port, the defaults and that port
    (`say` tells why); without, its error and that --port gets past it."""
    if path is None:
        return load_config(None, overrides)
    try:
        raw = read_toml(path)
    except ConfigError as e:
        control = _control_alone(path)  # (a syntax error elsewhere, half-way through an edit: a review)
        if control is not None:
            say(f"note: {e.what}: rtvc read its [control] table alone")
            return load_config(path, overrides, raw={"control": control} if control else {})
        if "control.port" not in overrides:
            raise ConfigError(e.what, f"{e.fix}; or give the daemon's port with --port") from None
        say(f"note: {e.what}: rtvc takes the default control settings, with {overrides['control.port'][1]}")
        return load_config(None, overrides)
    return load_config(path, overrides, raw={"control": raw["control"]} if "control" in raw else {})


_TABLE = re.compile(r"^\s*\[")
_CONTROL = re.compile(r"^\s*\[\s*control\s*\]\s*(#.*)?$")


def _control_alone(path: Path) -> dict[str, Any] | None:
    """The [control] table of a file that does not read as TOML, read alone: its lines from its header to the next
    table's ({} where it has none and no 'control' appears elsewhere); None where that does not read either, or the
    file cannot be read at all."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    start = next((i for i, line in enumerate(lines) if _CONTROL.match(line)), None)
    if start is None:
        return None if any("control" in line for line in lines) else {}  # (control.port = ... at the top: not known)
    end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])), len(lines))
    try:
        got = tomllib.loads("\n".join(lines[start:end]))
    except tomllib.TOMLDecodeError:
        return None
    return got.get("control", {})


def read_obs(path: Path) -> ObsConfig:
    """[obs] as the file at `path` has it now, that table alone (the rest of the file, and flags, are not its), its
    scenes' profile paths from the file's folder as load_config reads them. RtvcError, or AttributeError for an "obs"
    that is no table."""
    obs = from_table(ObsConfig, read_toml(path).get("obs", {}), str(path), "obs")
    return dataclasses.replace(obs, scenes={k: _beside(v, path.parent) for k, v in obs.scenes.items()})


def _beside(profile: str, base: Path) -> str:
    """A profile given as a relative path (it ends in .toml or holds a '/', as profile_path reads it) in config.toml:
    that path from the file's folder (~ is the user's home, as in [model] paths); a profile name as it is."""
    if profile.endswith(".toml") or "/" in profile:
        try:
            path = Path(profile).expanduser()
        except RuntimeError:  # (~name of no user: kept as written, and said not found)
            path = Path(profile)
        return str(path if path.is_absolute() else base / profile)
    return profile


def format_config(cfg: Config) -> str:
    """The resolved settings, one per line, with where each value came from."""
    lines = [f"settings ({cfg.path or 'no config file'}):"]
    rows = []
    for name in SECTIONS:
        section = getattr(cfg, name)
        for f in dataclasses.fields(section):
            key = f"{name}.{f.name}"
            value = getattr(section, f.name)
            rows.append((key, ("'***'" if value else "''") if f.name == "password" else repr(value)))
    width = max(len(key) for key, _ in rows)  # (control.max_requests_per_s pushed its value out of the column)
    lines += [f"  {key:<{width}} = {shown:<12} [{cfg.sources.get(key, 'default')}]" for key, shown in rows]
    return "\n".join(lines)
