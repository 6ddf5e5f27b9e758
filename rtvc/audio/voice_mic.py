"""The virtual microphone (`audio.virtual_mic`, `--virtual-mic`): a PipeWire node, "rtvc voice", that a call (Discord,
a browser, Zoom) or OBS records from as from a microphone, and that rtvc plays its voice into.

rtvc makes the node when it is missing (`pw-cli create-node`, a null-audio-sink of class Audio/Source/Virtual) and
leaves it when it stops: a call program keeps the microphone it was given, and hears silence while rtvc is off. A
node made so is gone when PipeWire restarts (a log-out): a call program started before rtvc then finds no "rtvc
voice" and takes the real microphone, the user's own voice. `rtvc virtual-mic install` keeps it for good (a
drop-in in PipeWire's user config, read at each PipeWire start); `rtvc virtual-mic remove` takes it away.

rtvc reaches the node through PipeWire's JACK (what `pw-jack` gives a program): through it, what rtvc declares is
what the recording program gets, to the frame (tests/test_pipewire_live.py). `pw-jack` points the dynamic loader at
PipeWire's libjack before a program starts; rtvc loads that library itself before PortAudio, which then takes it
(a library already loaded answers for its soname), and puts its folder in LD_LIBRARY_PATH for rtvc's own JACK
children (rtvc.audio.jack_probe, jack_watch, jack_links).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import fcntl
import glob
import json
import logging
import os
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any

from rtvc.audio import pipewire
from rtvc.config import AudioConfig, Config, user_config_dir
from rtvc.errors import DeviceError

log = logging.getLogger("rtvc")
NODE = "rtvc-voice"  # the node's name (pw-cli destroy rtvc-voice)
LABEL = "rtvc voice"  # its description: what call programs, mixers and PipeWire's JACK show
PROPS = (
    f'{{ factory.name = support.null-audio-sink node.name = {NODE} node.description = "{LABEL}" '
    "media.class = Audio/Source/Virtual audio.position = [ MONO ] object.linger = true }"
)
DROP_IN = f"""# rtvc's virtual microphone, "{LABEL}": made at each PipeWire start, so that a call program finds it
# before rtvc runs (written by `rtvc virtual-mic install`; `rtvc virtual-mic remove` deletes this file)
context.objects = [
    {{ factory = adapter args = {PROPS} }}
]
"""
# status's detail when the node is removed while rtvc plays into it (`rtvc virtual-mic remove`, pw-cli destroy): rtvc
# does not make it again, as the removal was the user's own; the JACK watch connects rtvc to it once it is back
# (a review: not silence, as it said: WirePlumber moves a program that recorded from it to the default microphone,
# the user's own voice, unconverted, and leaves it there when the node is back)
GONE = (
    f"the virtual microphone '{LABEL}' is gone from PipeWire (removed): a call that recorded from it is moved by "
    "PipeWire to the default microphone, your own voice; `rtvc virtual-mic install` makes it again (rtvc plays "
    f"into it within seconds), then choose '{LABEL}' in the call again"
)
ASK_S = 5.0
DEFAULTS_WAIT_S = 5.0  # how long PipeWire's default devices are waited for where it names none (yet)
APPEAR_S = 5.0  # how long a node just made may take to show its ports
# where distributions put PipeWire's libjack beside the real one (Debian, Ubuntu: pw-jack's folder); Fedora and
# Arch install it as the system's libjack
PW_JACK_DIRS = (
    f"/usr/lib/{sysconfig.get_config_var('MULTIARCH') or '*'}/pipewire-0.3/jack",
    "/usr/lib64/pipewire-0.3/jack",
    "/usr/lib/pipewire-0.3/jack",
)
FIX_PIPEWIRE = (
    "the virtual microphone is a PipeWire node: start PipeWire (systemctl --user start pipewire wireplumber); "
    "without PipeWire, leave audio.virtual_mic off and choose an output device"
)


def _ask(args: list[str]) -> str | None:
    return pipewire.ask(args, ASK_S)


def pipewire_runs() -> str:
    """'' when PipeWire answers; otherwise what is wrong."""
    missing = [tool for tool in ("pw-cli", "pw-dump", "pw-metadata") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (Debian/Ubuntu: sudo apt-get install pipewire-bin)"
    if _ask(["pw-cli", "info", "0"]) is None:
        return "PipeWire does not answer (pw-cli info 0 failed): it does not run for this user"
    return ""


def _dump() -> list[dict]:
    """PipeWire's objects (pw-dump); [] when it cannot be asked."""
    return _dump_asked() or []


def _dump_asked(tries: int = 3) -> list[dict] | None:
    """PipeWire's objects (pw-dump); None when it cannot be asked (it failed, or printed no JSON list, `tries` times
    0.2 s apart: pw-dump fails now and then while the graph changes, as another program's JACK client comes or goes,
    and a failed look read as "no such node" took the default microphone for missing, or made a second "rtvc
    voice")."""
    for attempt in range(tries):
        if attempt:
            time.sleep(0.2)
        objects = parse_dump(_ask(["pw-dump"]) or "")
        if objects is not None:
            return objects
    return None


def parse_dump(text: str) -> list[dict] | None:
    """pw-dump's objects, from its output: a JSON list of them, and, where the graph changed while it wrote, more
    lists after it, each object again as it is now (an "info" of null: removed). Read as one document, that failed
    ("Extra data"), seen in CI. None where it holds no list."""
    decoder, at, objects, found = json.JSONDecoder(), 0, {}, False
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        try:
            doc, at = decoder.raw_decode(text, at)
        except ValueError:
            return None
        if not isinstance(doc, list):
            return None
        found = True
        for o in doc:
            if not isinstance(o, dict) or "id" not in o:
                continue
            if isinstance(o.get("info"), dict):
                objects[o["id"]] = o if o["id"] not in objects else {**objects[o["id"]], **o}
            else:
                objects.pop(o["id"], None)
    return list(objects.values()) if found else None


def _props(objects: list[dict], kind: str) -> list[dict]:
    """The properties of PipeWire's objects of a kind ("Node", "Port"), each with its "object.id"."""
    found = [o for o in objects if o.get("type", "").endswith(f":{kind}")]
    return [{**o["info"].get("props", {}), "object.id": o["id"]} for o in found]


def nodes() -> list[dict]:
    """The properties of every node PipeWire has, with its "object.id"."""
    return _props(_dump(), "Node")


def _priority(props: dict) -> int:
    try:
        return int(props.get("priority.session") or 0)
    except (TypeError, ValueError):
        return 0


def default_node(kind: str) -> str:
    """The node name of PipeWire's default microphone ("input") or speakers ("output"), as the desktop's sound
    settings choose them (WirePlumber keeps them in the "default" metadata); '' when there is none."""
    key = pipewire.DEFAULT_KEYS["input" if kind == "input" else "output"]
    text = _ask(["pw-metadata", "-n", "default", "0", key]) or ""
    for line in text.splitlines():
        if f"key:'{key}'" in line and "value:'" in line:
            return pipewire.node_named(line.split("value:'", 1)[1].rsplit("' type:", 1)[0])
    return ""


def jack_name(props: dict) -> str:
    """The name PipeWire's JACK gives a node's ports (its client name): the description, else the nick, else the
    node's name."""
    for key in ("node.description", "node.nick", "node.name"):
        if isinstance(props.get(key), str) and props[key]:
            return props[key]
    return ""


def default_device(kind: str, wait_s: float = 0.0) -> tuple[str, str]:
    """(the JACK name of PipeWire's default device of this kind, its node name); ('', '') when PipeWire has none or
    cannot be asked. `wait_s`: how long to wait for one where it names none yet (WirePlumber names the defaults a
    moment after PipeWire runs: rtvc started with the desktop's session, or PipeWire just restarted)."""
    name, deadline = default_node(kind), time.monotonic() + wait_s
    while not name and time.monotonic() < deadline:
        time.sleep(0.25)
        name = default_node(kind)
        if name:
            log.info("PipeWire named its default %s after %.1f s", kind, wait_s - (deadline - time.monotonic()))
    return (node_jack_name(name), name) if name else ("", "")


def node_jack_name(node: str) -> str:
    """The JACK name of the node of this name; '' when PipeWire has no such node (or cannot be asked)."""
    for props in nodes():
        if props.get("node.name") == node:
            return jack_name(props)
    return ""


def on_pipewire_jack() -> bool:
    """Whether the JACK library this process has loaded is PipeWire's (pw-jack, or audio.virtual_mic)."""
    loaded = _loaded_libjack()
    return bool(loaded) and _is_pipewires(loaded)


def microphones(props: list[dict] | None = None) -> list[tuple[str, str]]:
    """PipeWire's microphones but rtvc's own (sources, and virtual ones: a noise suppressor's), highest session
    priority first (WirePlumber makes the highest the default): [(JACK name, node name)]. `props`: the nodes as
    read already (nodes()); None reads them now."""
    kinds = ("Audio/Source", "Audio/Source/Virtual")
    props = nodes() if props is None else props
    found = [p for p in props if p.get("media.class") in kinds and p.get("node.name") not in (NODE, None)]
    found.sort(key=lambda p: -_priority(p))
    return [(jack_name(p), p["node.name"]) for p in found]


def _loaded_libjack() -> str:
    """The path of the libjack this process has loaded; '' when none is."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return ""
    for line in maps.splitlines():
        path = line.split(None, 5)[-1] if line.count(" ") >= 5 else ""
        if "/libjack.so" in path:
            return path.strip()
    return ""


def _is_pipewires(path: str) -> bool:
    """Whether a libjack is PipeWire's (it needs libpipewire; jackd's does not)."""
    try:
        return "pipewire" in os.path.realpath(path) or b"libpipewire-0.3" in Path(path).read_bytes()
    except OSError:
        return False


def pipewire_jack_installed() -> bool:
    """Whether PipeWire's libjack is there (pw-jack's folder, or the system's libjack is PipeWire's)."""
    if any(glob.glob(f"{pattern}/libjack.so.0") for pattern in PW_JACK_DIRS):
        return True
    system = ctypes.util.find_library("jack")
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    folders = (f"/usr/lib/{arch}", "/usr/lib64", "/usr/lib")
    return bool(system) and any(os.path.exists(f"{d}/{system}") and _is_pipewires(f"{d}/{system}") for d in folders)


def use_pipewire_jack() -> str:
    """Load PipeWire's libjack into this process (before PortAudio) and give its folder to rtvc's children; the
    path loaded. DeviceError when it is not installed, or when another libjack is loaded already."""
    loaded = _loaded_libjack()
    if loaded:
        if _is_pipewires(loaded):
            return loaded
        raise DeviceError(
            f"audio.virtual_mic: this process already uses the JACK library {loaded}, not PipeWire's",
            "run rtvc with pw-jack (pw-jack rtvc run ...), or report it: rtvc loads PipeWire's own before PortAudio",
        )
    found = [p for pattern in PW_JACK_DIRS for p in sorted(glob.glob(f"{pattern}/libjack.so.0"))]
    failed = []
    for path in [*found, "libjack.so.0"]:  # (the last: Fedora, Arch, where PipeWire's is the system's)
        try:
            ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
        except OSError as e:
            failed.append(str(e))
            continue
        break
    loaded = _loaded_libjack()
    if not loaded or not _is_pipewires(loaded):
        why = f" ({loaded} is jackd's)" if loaded else (f" ({failed[-1]})" if failed else "")
        raise DeviceError(
            f"audio.virtual_mic: PipeWire's JACK library is not installed{why}",
            "sudo apt-get install pipewire-jack (Debian/Ubuntu; Fedora: pipewire-jack-audio-connection-kit)",
        )
    if "pipewire-0.3/jack" in loaded:
        folder = os.path.dirname(loaded)
        paths = os.environ.get("LD_LIBRARY_PATH", "")
        if folder not in paths.split(":"):
            os.environ["LD_LIBRARY_PATH"] = folder + (f":{paths}" if paths else "")
    return loaded


def ensure_node() -> bool:
    """Make the virtual microphone unless PipeWire has it; True when it was made now. DeviceError when PipeWire
    refuses it, or it does not show its ports within APPEAR_S; also when PipeWire cannot be asked what it has (a
    failed pw-dump read as "none" made a second node of the name, seen with two rtvc starting under load)."""
    objects = _dump_asked()
    if objects is None:
        raise DeviceError(
            f"audio.virtual_mic: PipeWire did not say whether it has the node {NODE} (pw-dump failed three times)",
            "start rtvc again; if it fails again, check PipeWire's log (journalctl --user -u pipewire)",
        )
    have = [p for p in _props(objects, "Node") if p.get("node.name") == NODE]
    if have:
        if have[0].get("media.class") != "Audio/Source/Virtual":
            raise DeviceError(
                f"audio.virtual_mic: PipeWire has a node named {NODE} that is a {have[0].get('media.class')}, "
                "not rtvc's virtual microphone",
                f"remove it (pw-cli destroy {NODE}), then start rtvc again",
            )
        return False
    try:
        done = subprocess.run(
            ["pw-cli", "create-node", "adapter", PROPS],
            capture_output=True, text=True, timeout=ASK_S, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        said = (done.stdout + done.stderr).strip()
        failed = done.returncode != 0 or "error" in said.lower()
    except (OSError, subprocess.TimeoutExpired) as e:
        said, failed = str(e), True
    if failed:
        raise DeviceError(f"audio.virtual_mic: PipeWire did not make the node {NODE}: {said[-300:]}", FIX_PIPEWIRE)
    deadline = time.monotonic() + APPEAR_S
    while time.monotonic() < deadline:
        objects = _dump()  # (one look for both: the node, and ports of it)
        made = {p["object.id"] for p in _props(objects, "Node") if p.get("node.name") == NODE}
        if any(p.get("node.id") in made for p in _props(objects, "Port")):
            return True
        time.sleep(0.1)
    raise DeviceError(
        f"audio.virtual_mic: PipeWire made the node {NODE}, but it showed no ports within {APPEAR_S:g} s",
        "check PipeWire's log (journalctl --user -u pipewire), then start rtvc again",
    )


def _players(objects: list[dict]) -> list[dict]:
    """The properties of the nodes of other processes that play into the virtual microphone (a link from a port
    of theirs to its input), each once."""
    links = [o["info"] for o in objects if o.get("type", "").endswith(":Link")]
    mics = {p["object.id"] for p in _props(objects, "Node") if p.get("node.name") == NODE}
    into = {i.get("output-node-id") for i in links if i.get("input-node-id") in mics}
    clients = {p["object.id"]: p for p in _props(objects, "Client")}  # (a JACK client's process is its client's)
    found = [{**clients.get(p.get("client.id"), {}), **p} for p in _props(objects, "Node") if p["object.id"] in into]
    return [p for p in found if str(p.get("application.process.id", "")) != str(os.getpid())]  # (exec'd: rtvc.restart)


def _recorders(objects: list[dict]) -> list[dict]:
    """The properties of the nodes that record from the virtual microphone (a link from it to an input of theirs: a
    call, OBS), each once."""
    links = [o["info"] for o in objects if o.get("type", "").endswith(":Link")]
    mics = {p["object.id"] for p in _props(objects, "Node") if p.get("node.name") == NODE}
    outof = {i.get("input-node-id") for i in links if i.get("output-node-id") in mics}
    clients = {p["object.id"]: p for p in _props(objects, "Client")}
    return [{**clients.get(p.get("client.id"), {}), **p} for p in _props(objects, "Node") if p["object.id"] in outof]


def _program(props: dict) -> str:
    pid = props.get("application.process.id")
    return f"'{props.get('node.name') or props.get('application.name') or props['object.id']}'" + (
        f" (process {pid})" if pid else ""
    )


def check_alone() -> str:
    """'' when nothing plays into the virtual microphone; a line naming the programs that do, which the call hears
    mixed with rtvc's voice. DeviceError when one of them is another rtvc: two voices summed into one microphone
    went past full scale (peaks of 1.73, 7.7 % of the call's samples clipped) while each rtvc's own output did not.
    PipeWire takes a client's links away with it, so a link seen here is a program that runs (or is stopped)."""
    from rtvc.audio.devices import JACK_CLIENT

    players = _players(_dump())
    rtvcs = [p for p in players if str(p.get("node.name", "")).split("-")[0] == JACK_CLIENT]
    if rtvcs:
        raise DeviceError(
            f"audio.virtual_mic: another rtvc, {', '.join(_program(p) for p in rtvcs)}, plays into the virtual "
            f"microphone '{LABEL}' already: the call would hear both voices summed, and clipped",
            "stop the other rtvc (end that process), or run this one without the virtual microphone "
            "(audio.virtual_mic = false, no --virtual-mic)",
        )
    if not players:
        return ""
    return f"; {', '.join(_program(p) for p in players)} plays into it too: the call hears it mixed with rtvc's voice"


def prepare(audio: AudioConfig, play: bool = False) -> tuple[AudioConfig, str]:
    """With audio.virtual_mic on: PipeWire's JACK loaded, the node there, and the settings rtvc opens its devices
    with (the voice into the node, on JACK; hear-myself on PipeWire's default speakers unless a monitor device is
    named); and a line for the user. DeviceError (nothing made) when PipeWire or its JACK is missing, or another rtvc
    plays into the node (check_alone). `play`: this process is to play into it (claim, before the node is made: two
    made at once would be two nodes of one name)."""
    why = pipewire_runs()
    if why:
        raise DeviceError(f"audio.virtual_mic: {why}", FIX_PIPEWIRE)
    if play:
        claim()
    use_pipewire_jack()
    made = ensure_node()
    others = "" if made else check_alone()
    monitor, note = audio.monitor_device, others
    if monitor == "":  # (hear-myself, off until asked for: `h`; on PipeWire's default speakers where JACK shows them)
        from rtvc.audio.devices import list_devices

        speakers = default_device("output", wait_s=DEFAULTS_WAIT_S)[0]
        if speakers and any(d.name == speakers and d.max_output and "JACK" in d.host_api for d in list_devices()):
            monitor = speakers
        else:
            note = "; hear-myself: no default speakers found on PipeWire's JACK (name them with --monitor-device)"
    effective = dataclasses.replace(
        audio,
        host_api=audio.host_api or "JACK",
        output_device=LABEL,
        output_channels=audio.output_channels or 1,
        monitor_device=monitor,
    )
    said = (
        f"virtual microphone '{LABEL}': {'made now' if made else 'there'} (PipeWire node {NODE}); choose it as the "
        "microphone in your call or in OBS"
        + ("" if installed() else "; `rtvc virtual-mic install` keeps it over a PipeWire restart or log-out")
        + note
    )
    return effective, said


_claim: list[Any] = []  # the open lock file while this process plays into the node (claim)
CLAIM_FD_ENV = "RTVC_VOICE_LOCK_FD"  # the lock's descriptor, kept over a restart's exec (keep_claim_over_exec)


def _claim_path() -> Path:
    # (where PipeWire's socket is, as PipeWire looks for it: one lock per PipeWire, whoever runs it)
    runtime = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR") or ""
    return Path(runtime if os.path.isabs(runtime) else "/tmp") / f"rtvc-voice-{os.getuid()}.lock"


def _holder(f) -> str:
    """The process number the lock's holder wrote, where it is an rtvc's ('' otherwise: the file keeps a holder's
    number after it ended). A holder that took the lock this instant writes its number just after: read again for
    a moment (a start at the same instant was named "process unknown")."""
    deadline = time.monotonic() + 0.5
    while True:
        f.seek(0)
        pid = f.read().strip()[:20]
        try:
            if pid.isdigit() and b"rtvc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            pass
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.02)


def claim() -> None:
    """This process plays into the virtual microphone, alone: an exclusive lock on a file beside PipeWire's socket
    (held until the process ends or execs: rtvc.restart takes it again). check_alone sees another rtvc only once it
    plays (its links); two started in the same instant (a login's service and an autostart) both passed it, and the
    call heard both voices summed. DeviceError, naming the other's process, while another holds it."""
    if _claim:
        return
    path = _claim_path()
    if _adopt_claim(path):
        return
    try:
        f = open(path, "a+")  # noqa: SIM115 (held open: the lock lives as long as the file stays open)
    except OSError as e:
        raise DeviceError(
            f"audio.virtual_mic: the lock file {path} cannot be opened ({e.strerror})",
            f"make {path.parent} writable for this user (XDG_RUNTIME_DIR), or remove {path}",
        ) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(f)
        f.close()
        check_alone()  # (one that plays already: named by its node, as ever)
        raise DeviceError(
            f"audio.virtual_mic: another rtvc (process {pid or 'unknown'}) is starting to play into the virtual "
            f"microphone '{LABEL}' (it holds {path}): the call would hear both voices summed, and clipped",
            "stop the other rtvc (end that process), or run this one without the virtual microphone "
            "(audio.virtual_mic = false, no --virtual-mic)",
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _claim.append(f)


def keep_claim_over_exec() -> int | None:
    """(rtvc.restart, just before its exec.) The lock's descriptor, kept open over the exec, for the new serve to
    adopt (claim): closed by the exec, a second rtvc started in that moment took it, and the restarted serve
    refused to start and ended (a review). None where this process holds none."""
    if not _claim:
        return None
    fd = _claim[0].fileno()
    os.set_inheritable(fd, True)
    return fd


def drop_inherited_claim() -> None:
    """A serve started anew that does not play into the virtual microphone (turned off in config.toml since, or
    --virtual): the lock kept over the exec let go (it held it for its whole run, and another rtvc was refused: a
    review)."""
    fd_text = os.environ.pop(CLAIM_FD_ENV, "")
    if fd_text.isdigit():
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(int(fd_text)), os.stat(_claim_path())):  # (that file's, nothing else)
                os.close(int(fd_text))


def _adopt_claim(path: Path) -> bool:
    """The lock a serve held before it started anew (keep_claim_over_exec), taken over: True where it is that
    file's and still this process's."""
    fd_text = os.environ.pop(CLAIM_FD_ENV, "")  # (not for this process's children)
    if not fd_text.isdigit():
        return False
    fd = int(fd_text)
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False
    if not same:
        return False
    f = os.fdopen(fd, "a+")
    os.set_inheritable(fd, False)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (held by this open file already: granted)
    except BlockingIOError:
        f.close()
        return False
    _claim.append(f)
    return True


def apply(cfg: Config, patience_s: float = 0.0, play: bool = False) -> tuple[Config, str]:
    """The config with the virtual microphone's settings, and a line for the user, when audio.virtual_mic is on
    (prepare); as it is, and '', otherwise. `patience_s`: how long to try again (a serve started anew after PipeWire
    restarted: its session manager may not be up yet). `play`: this process is to play into the node (run, serve:
    claim), not only to list what it would open."""
    if not cfg.audio.virtual_mic:
        drop_inherited_claim()
        return cfg, ""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            audio, said = prepare(cfg.audio, play)
        except DeviceError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
            continue
        return dataclasses.replace(cfg, audio=audio), said


def drop_in_path() -> Path:
    """Where `install` writes the node for PipeWire to make at each start: its user config's drop-in folder, found
    as the token's and the unit's are (a relative XDG_CONFIG_HOME wrote it under the working directory)."""
    return user_config_dir() / "pipewire" / "pipewire.conf.d" / "rtvc-voice.conf"


def installed() -> bool:
    return drop_in_path().is_file()


def install() -> list[str]:
    """`rtvc virtual-mic install`: the node in PipeWire's user config (made at each PipeWire start), and made now
    when PipeWire runs; what was done, a line each."""
    path = drop_in_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DROP_IN)
    except OSError as e:
        raise DeviceError(f"could not write {path}: {e.strerror or e}", "check that folder's owner and space") from None
    said = [f"wrote {path}: PipeWire makes the virtual microphone '{LABEL}' at each start"]
    if pipewire_runs():
        said.append("PipeWire does not run now: the microphone is there from its next start")
    else:
        said.append(f"'{LABEL}' {'made now' if ensure_node() else 'is there'}: choose it as the microphone in a call")
    return said


def remove(force: bool = False) -> list[str]:
    """`rtvc virtual-mic remove`: the drop-in deleted and the node destroyed. While a program records from it (a
    call) refused without `force`: PipeWire would move that program to the default microphone, the user's own
    voice (a review: the call heard the user unconverted, rtvc muted)."""
    path, said = drop_in_path(), []
    objects = _dump() if not pipewire_runs() else []
    recording = _recorders(objects)
    if recording and not force:
        names = ", ".join(_program(p) for p in recording)
        raise DeviceError(
            f"{names} records from the virtual microphone '{LABEL}': removed, PipeWire would move "
            f"{'it' if len(recording) == 1 else 'them'} to the default microphone, your own voice",
            "choose another microphone in that program first, or remove it anyway: rtvc virtual-mic remove --force",
        )
    if path.is_file():
        try:
            path.unlink()
        except OSError as e:
            raise DeviceError(f"could not remove {path}: {e.strerror or e}", "remove it by hand") from None
        said.append(f"removed {path}")
    if any(p.get("node.name") == NODE for p in _props(objects, "Node")):
        if _ask(["pw-cli", "destroy", NODE]) is None:
            raise DeviceError(f"PipeWire did not remove the node {NODE}", f"pw-cli destroy {NODE}")
        said.append(f"removed the node {NODE} ('{LABEL}') from PipeWire")
        if recording:
            said.append(
                f"{', '.join(_program(p) for p in recording)} recorded from it: PipeWire moves "
                f"{'it' if len(recording) == 1 else 'them'} to the default microphone (your own voice)"
            )
    return said or [f"no virtual microphone to remove ({path} absent, no node {NODE})"]
