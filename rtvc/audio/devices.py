"""Sound devices: list them, find one by index or name substring, check rate and channels.

Every miss is a DeviceError that names what was asked, what exists, and how to choose. PortAudio (through
sounddevice) is loaded on first use: the virtual device and `rtvc convert` run where its library is absent (a GPU
server, a container), and asking for a sound card there says what to install.

PortAudio reads the device list once, when it starts: a headset plugged in later is not in it, and a USB
microphone plugged out and back in keeps its stale entry. `rescan()` restarts PortAudio to read it again; no
stream may be open then, so the daemon stops its streams around it (rtvc/audio/switch.py).
"""

from __future__ import annotations

import ctypes.util
import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from rtvc.errors import DeviceError

log = logging.getLogger("rtvc")
Kind = Literal["input", "output"]
RESCAN_TIMEOUT_S = 10.0
# PortAudio is not thread-safe: its device list is read under this lock, and restarted under it.
_pa_lock = threading.RLock()
_stuck = ""  # why PortAudio cannot be used again in this process (a restart that did not return)


class DeviceNotFound(DeviceError):
    """No device answers to what was asked (in PortAudio's list as it was read: see rescan)."""


class RescanHung(DeviceError):
    """PortAudio did not restart within RESCAN_TIMEOUT_S: it is unusable until rtvc restarts."""


def mark_stuck(why: str) -> None:
    """PortAudio hung in a call that holds its locks (a stream's start that never returned, rtvc.audio.io): the
    device list is not read again in this process (`why` is said instead)."""
    global _stuck
    _stuck = _stuck or why


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    host_api: str
    max_input: int
    max_output: int
    default_samplerate: float
    low_input_latency: float
    low_output_latency: float
    # a JACK client whose name PortAudio reads as a pattern ("Speaker + Headphones", "Audio (HDMI)"): it finds none of
    # its ports, lists it with no channels and opens no stream on it; its channels here are JACK's (_reach_by_move)
    by_move: bool = False

    def channels(self, kind: Kind) -> int:
        return self.max_input if kind == "input" else self.max_output

    def title(self) -> str:
        return f"[{self.index if self.listed else '-'}] {self.name} ({self.host_api})"

    @property
    def listed(self) -> bool:
        """In PortAudio's list as read; not: a JACK client that came after it, which rtvc's ports were moved to
        (rtvc.audio.switch: _unlisted_choice), until the list is read again."""
        return self.index >= 0

    @property
    def opened_by_move(self) -> bool:
        """PortAudio cannot open a stream on it (not listed, or `by_move`): rtvc.audio.io opens the stream on another
        JACK device and moves rtvc's ports to this one's."""
        return not self.listed or self.by_move


JACK_CLIENT = "rtvc"  # the JACK client name of rtvc's ports (rtvc:in_1, rtvc:out_1); JACK adds -01... to a second
_jack_name = ctypes.create_string_buffer(JACK_CLIENT.encode())  # (PortAudio keeps the pointer: never freed)
_jack_named = False


def name_jack_client() -> None:
    """Ask PortAudio's JACK host API to connect as JACK_CLIENT: a patchbay (qjackctl, Carla, qpwgraph) showed rtvc's
    ports as "PortAudio", the name every PortAudio program gets (Audacity's too). PortAudio reads the name when it
    starts, so this runs before sounddevice is first imported (sounddevice starts PortAudio then); sounddevice
    loads the same shared library by the same name. Nothing happens where PortAudio has no JACK host API."""
    global _jack_named
    if _jack_named:
        return
    _jack_named = True
    # (the same through the ALSA plugins of PipeWire and PulseAudio: mixers showed "PipeWire ALSA [python3.11]",
    # "ALSA Capture" and "ALSA Playback"; a user's own settings of these stay)
    os.environ.setdefault("PIPEWIRE_ALSA", f'{{ application.name = "{JACK_CLIENT}" node.name = "{JACK_CLIENT}" }}')
    os.environ.setdefault("PULSE_PROP", f"application.name={JACK_CLIENT}")
    found = ctypes.util.find_library("portaudio")
    try:
        fn = ctypes.CDLL(found).PaJack_SetClientName if found else None
    except (OSError, AttributeError):  # (no such library, or one built without JACK)
        fn = None
    if fn is None:
        return
    fn.argtypes, fn.restype = [ctypes.c_char_p], ctypes.c_int
    if fn(_jack_name) != 0:
        log.info("PortAudio did not take the JACK client name '%s'", JACK_CLIENT)


def portaudio():
    """The sounddevice module. Importing it loads PortAudio's shared library, which may be missing."""
    name_jack_client()
    try:
        import sounddevice
    except ImportError:
        raise DeviceError(
            "the sounddevice package is not installed, so no sound card can be used",
            "pip install sounddevice (rtvc's own dependency: reinstall rtvc), or run on the virtual device: --virtual",
        ) from None
    except OSError as e:  # the module is installed, PortAudio's library is not
        raise DeviceError(
            f"PortAudio's library is not installed, so no sound card can be used ({e})",
            "sudo apt-get install libportaudio2 (Debian/Ubuntu), or run on the virtual device: --virtual",
        ) from None
    return sounddevice


def list_devices() -> list[Device]:
    sd = portaudio()
    with _pa_lock:
        _check_usable()
        return _read_devices(sd)


def _check_usable() -> None:
    if _stuck:
        raise DeviceError(_stuck, "restart rtvc")


@dataclass(frozen=True)
class Pin:
    """A device as it is found again after the list was read anew (indices change): its name, host API and
    place among the devices of that same name and host API (two identical USB headsets)."""

    name: str
    host_api: str
    nth: int

    def title(self) -> str:
        return f"'{self.name}' ({self.host_api})"


def pin_device(device: Device) -> Pin:
    """`device`'s Pin, in the device list as it is now."""
    same = [d.index for d in list_devices() if (d.name, d.host_api) == (device.name, device.host_api)]
    return Pin(device.name, device.host_api, same.index(device.index) if device.index in same else 0)


def find_pinned(pin: Pin, role: str) -> Device:
    """The device `pin` stands for in the device list as it is now; DeviceNotFound when it is gone. `role`:
    input, output or monitor."""
    kind: Kind = "input" if role == "input" else "output"
    same = [d for d in list_devices() if (d.name, d.host_api) == (pin.name, pin.host_api) and d.channels(kind) > 0]
    if not same:
        raise DeviceNotFound(
            f"the {role} device {pin.title()} is gone (not in the system's device list)",
            f"plug it back in, or choose another {role} device with devices.select (devices.list shows them)",
        )
    return same[min(pin.nth, len(same) - 1)]


def _read_devices(sd) -> list[Device]:
    apis = sd.query_hostapis()
    return _reach_by_move(
        [
            Device(
                index=i,
                name=d["name"],
                host_api=apis[d["hostapi"]]["name"],
                max_input=d["max_input_channels"],
                max_output=d["max_output_channels"],
                default_samplerate=d["default_samplerate"],
                low_input_latency=d["default_low_input_latency"],
                low_output_latency=d["default_low_output_latency"],
            )
            for i, d in enumerate(sd.query_devices())
        ]
    )


PATTERN_CHARACTERS = set("\\[](){}*+?|^$")  # (a '.' matches itself too)
# JACK's port counts (None: a client it does not know), per reading of the list (_generation)
_by_move: dict[int, dict[str, tuple[int, int] | None]] = {}
_generation = 0
_failed_at = -1e9  # when JACK last did not answer (each question can take jack_links.TIMEOUT_S, under _pa_lock)
RETRY_COUNTS_S = 30.0


def _reach_by_move(devices: list[Device]) -> list[Device]:
    """PortAudio's JACK host API (19.6, what Debian and Ubuntu ship) finds a client's ports by a regular expression
    made of its name, unescaped: a client whose name holds a pattern's characters, as PipeWire's JACK names devices
    by their description ("Tiger Lake-LP Smart Sound Technology Audio Controller Speaker + Headphones", "Family 17h
    (Models 10h-1fh) HD Audio Controller Analog Stereo", "... Digital Stereo (HDMI)"), is listed with no channels,
    or with another client's, and opens no stream; a name another client's ends with ("Headset" beside "USB
    Headset") gets that client's ports too. Those get JACK's own counts of their ports (asked once per
    reading of the list, from a child: rtvc.audio.jack_links) and `by_move`: rtvc opens their streams on another
    JACK device and moves its ports to theirs (rtvc.audio.io)."""
    jack = [d.name for d in devices if "JACK" in d.host_api]
    # (and its pattern is not anchored: "Headset" finds "USB Headset"'s ports too, counts and connects them)
    odd = [n for n in jack if PATTERN_CHARACTERS & set(n) or any(o != n and o.endswith(n) for o in jack)]
    if not odd:
        return devices
    global _failed_at
    counts = _by_move.setdefault(_generation, {})
    if any(name not in counts for name in odd) and time.monotonic() - _failed_at > RETRY_COUNTS_S:
        from rtvc.audio import jack_links

        got = jack_links.client_counts(odd)  # (None: logged; PortAudio's stand, and JACK is asked again later)
        if got is None:
            _failed_at = time.monotonic()
        else:
            counts.update({name: got.get(name) for name in odd})
    fixed = []
    for d in devices:
        ports = counts.get(d.name) if "JACK" in d.host_api else None
        if ports and sum(ports):
            d = dataclasses.replace(d, max_input=ports[0], max_output=ports[1], by_move=True)
        fixed.append(d)
    return fixed


_JACK_PROBE = """
import ctypes, sys
jack = ctypes.CDLL(sys.argv[1])
jack.jack_client_open.restype = ctypes.c_void_p
status = ctypes.c_int(0)
client = jack.jack_client_open(b"rtvc-probe", 1, ctypes.byref(status))  # 1: JackNoStartServer
if client:
    jack.jack_client_close(ctypes.c_void_p(client))
sys.exit(0 if client else 1)
"""


def jack_server_answers(timeout: float = 5.0) -> bool:
    """Whether the JACK server PortAudio uses (JACK_DEFAULT_SERVER) answers a client. Asked from a child
    process: a client opened on a dying server can block inside libjack, out of reach of any timeout."""
    lib = ctypes.util.find_library("jack")
    if lib is None:
        return False
    try:
        probe = subprocess.run([sys.executable, "-c", _JACK_PROBE, lib], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


# A device gone for long (a USB microphone left unplugged): its list was read again at every look (every 2 s), and
# each read takes 20-200 ms and, where PipeWire's ALSA plugin is installed, PortAudio keeps ~17 KiB of it
# (bench/rescan_cost.py: 30 MB an hour, a quarter of a gigabyte overnight; 2.4 MB an hour now). After READ_ALWAYS_S,
# a look reads it only when system_audio() changed since the last read, or READ_LATER_S after it.
READ_ALWAYS_S = 60.0
READ_LATER_S = 30.0


def system_audio() -> tuple:
    """What changes when a sound card is plugged in or out, or a sound server starts or stops, read without
    PortAudio (a file read, a few stats and folder listings; microseconds): the cards the kernel knows
    (/proc/asound/cards), the device nodes in /dev/snd, the sockets of PipeWire and PulseAudio (a server started again
    makes new ones), and JACK's entries in /dev/shm."""

    def listing(folder: str, prefix: str = "") -> tuple:
        try:
            with os.scandir(folder) as it:
                return tuple(sorted((e.name, e.inode()) for e in it if e.name.startswith(prefix)))
        except OSError:
            return ()

    def stamp(path: str) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_ino, st.st_ctime_ns

    try:
        with open("/proc/asound/cards", "rb") as f:
            cards = f.read()
    except OSError:
        cards = b""
    run = os.environ.get("XDG_RUNTIME_DIR", "")
    pipewire = os.environ.get("PIPEWIRE_RUNTIME_DIR", run)
    remote = os.environ.get("PIPEWIRE_REMOTE", "pipewire-0")
    return (
        cards,
        listing("/dev/snd"),
        stamp(os.path.join(pipewire, remote)) if pipewire else None,
        stamp(os.path.join(run, "pulse", "native")) if run else None,
        listing("/dev/shm", "jack"),
    )


class Rereads:
    """When a look for devices that are gone reads PortAudio's list again (rescan): at every look for READ_ALWAYS_S
    from `since`, then when system_audio() changed since the last read (a card plugged in, a sound server started
    again), or READ_LATER_S after it (what that does not see: a device of a sound server, a Bluetooth headset
    coming back, say)."""

    def __init__(self, since: float):
        self._since = since
        self._read_at: float | None = None
        self._seen: tuple | None = None

    def due(self, now: float) -> bool:
        seen = system_audio()
        late = now - self._since >= READ_ALWAYS_S
        if late and self._read_at is not None and now - self._read_at < READ_LATER_S and seen == self._seen:
            return False
        self._read_at, self._seen = now, seen
        return True


def rescan(quiet: bool = False) -> list[Device]:
    """Restart PortAudio so that it reads the device list again, and return the new list. No stream may be
    open. Device indices can change: a device kept across a rescan is found again by its name. `quiet`: the count
    goes to the debug log (a recovery's tries after the first, while a device stays gone).

    DeviceError when PortAudio runs on a JACK server that no longer answers: PortAudio's JACK host API aborts
    the whole process if it is restarted then, so it is left as it is. RescanHung when the restart does not
    return (PortAudio then cannot be used again in this process)."""
    global _stuck, _generation
    sd = portaudio()
    with _pa_lock:
        _check_usable()
        apis = [a["name"] for a in sd.query_hostapis()]
        if any("JACK" in a for a in apis) and not jack_server_answers():
            raise DeviceError(
                "the JACK server rtvc started on no longer answers, so the device list cannot be read again",
                "start the JACK server again and restart rtvc (PortAudio cannot let go of a JACK server that died)",
            )
        done = threading.Event()
        failed: list[BaseException] = []

        def restart():
            try:
                sd._terminate()  # sounddevice has no public call for this (RVC's GUI does the same)
                sd._initialize()
            except BaseException as e:  # (handed to the caller)
                failed.append(e)
            done.set()

        threading.Thread(target=restart, name="rtvc-portaudio-rescan", daemon=True).start()
        if not done.wait(RESCAN_TIMEOUT_S):  # (PortAudio may be half restarted: nothing may call it again)
            _stuck = f"PortAudio did not restart within {RESCAN_TIMEOUT_S:g} s while reading the device list again"
            raise RescanHung(_stuck, "restart rtvc (a sound device or its driver is hung)")
        if failed:
            raise DeviceError(f"PortAudio did not restart: {failed[0]}", "restart rtvc") from failed[0]
        _generation += 1
        _by_move.clear()
        found = _read_devices(sd)
    log.log(logging.DEBUG if quiet else logging.INFO, "PortAudio's device list read again: %d devices", len(found))
    return found


# PortAudio's device list as a new PortAudio reads it, in a child process (`python -P -c`): rtvc's own may not be
# restarted while its streams run, so whether a restart would find anything new is asked there first
_LIST_CHILD = """
import ctypes, ctypes.util, json, sys
found = ctypes.util.find_library("portaudio")
name = b"rtvc-list"  # (kept referenced: PortAudio keeps the pointer)
try:
    fn = ctypes.CDLL(found).PaJack_SetClientName if found else None
except (OSError, AttributeError):
    fn = None
if fn is not None:
    fn.argtypes = [ctypes.c_char_p]
    fn(name)
import sounddevice as sd
apis = sd.query_hostapis()
got = [
    [d["name"], apis[d["hostapi"]]["name"], d["max_input_channels"], d["max_output_channels"]]
    for d in sd.query_devices()
]
print("rtvc-list " + json.dumps(got))
"""
LIST_TIMEOUT_S = 5.0


def _kinds(entries: list[tuple[str, str, int, int]], without: str | None = None) -> list[tuple[str, str, str]]:
    """(name, host API, kind) of each way each device can be chosen (a kind it has channels for); `without`: rtvc's
    own JACK client (its ports are a device to a new PortAudio)."""
    got = []
    for name, api, ins, outs in entries:
        if name == without and "JACK" in api:
            continue
        got += [(name, api, "input")] if ins > 0 else []
        got += [(name, api, "output")] if outs > 0 else []
    return sorted(got)


def listing_anew() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]] | None:
    """The devices PortAudio lists now, read by a new PortAudio in a child process while this one's streams run,
    and those this process's PortAudio lists (as `_kinds` gives them), or None where the child did not answer
    (within LIST_TIMEOUT_S; logged): then only a rescan (which stops the streams) tells. A device this process
    holds may be busy to the child (listed without its channels there)."""
    sd = portaudio()
    with _pa_lock:
        _check_usable()
        apis = sd.query_hostapis()
        have = [(d["name"], apis[d["hostapi"]]["name"], d["max_input_channels"], d["max_output_channels"])
                for d in sd.query_devices()]  # fmt: skip
    from rtvc.audio import jack_links

    try:
        done = subprocess.run(
            [sys.executable, "-P", "-c", _LIST_CHILD],
            capture_output=True,
            text=True,
            timeout=LIST_TIMEOUT_S,
            env=jack_links.child_env(),
        )
        line = [ln for ln in done.stdout.splitlines() if ln.startswith("rtvc-list ")][-1]
        now = [(str(n), str(a), int(i), int(o)) for n, a, i, o in json.loads(line.removeprefix("rtvc-list "))]
    except (subprocess.TimeoutExpired, OSError, IndexError, ValueError, TypeError) as e:
        log.info("the device list could not be read in a child process (%s): it is read again here", e or "no answer")
        return None
    own = jack_links.own_name()
    return _kinds(now, own), _kinds(have)


def nothing_new() -> bool:
    """Whether a rescan would find no device to choose that this process's PortAudio does not list already (a
    device gone or busy changes nothing there): a device asked for that is not found would not be found after it
    either, and the streams need not stop for it. False where it cannot be told."""
    got = listing_anew()
    return got is not None and not set(got[0]) - set(got[1])


def listing_unchanged(in_use: list[Device | None]) -> bool:
    """Whether a rescan would read the device list as it is (nothing plugged in or out since: see listing_anew),
    the devices `in_use` in it (not one rtvc's ports were moved to, unlisted, and gone since)."""
    got = listing_anew()
    if got is None or got[0] != got[1]:
        return False
    now = {(name, api) for name, api, _kind in got[0]}
    return all((d.name, d.host_api) in now for d in in_use if d is not None)


def must_not_terminate() -> bool:
    """Whether PortAudio, loaded in this process, must not be terminated at exit (sounddevice does it from an
    exit handler): a restart of it hung, or it runs on a JACK server that died, though another may run now (its
    JACK host API aborts the process then: `pa_jack.c: Terminate: Assertion`). The caller exits with os._exit
    instead."""
    sd = sys.modules.get("sounddevice")
    if sd is None or not getattr(sd, "_initialized", 0):
        return False
    if _stuck:
        return True
    try:
        with _pa_lock:
            jack = any("JACK" in a["name"] for a in sd.query_hostapis())
    except Exception:  # (a PortAudio that cannot answer this cannot be terminated safely either)
        return True
    if not jack:
        return False
    from rtvc.audio import jack_links, voice_mic
    from rtvc.audio.jack_probe import ANSWERS, jack_server

    name = jack_links.own_name()
    if name is None:
        return not jack_server_answers()
    # (its own client in the server's graph: the server it connected to, still running)
    return jack_server(client=name, not_client=(voice_mic.LABEL,)) != ANSWERS


def format_devices(devices: list[Device]) -> str:
    if not devices:
        return "no sound devices found"
    default_in, default_out = portaudio().default.device
    rows = [f"{'':2}{'#':>3}  {'name':<36} {'host API':<28} {'in':>3} {'out':>3} {'rate':>7}"]
    for d in devices:
        mark = ("<" if d.index == default_in else " ") + (">" if d.index == default_out else " ")
        rows.append(
            f"{mark}{d.index:>3}  {d.name[:36]:<36} {d.host_api[:28]:<28} {d.max_input:>3} {d.max_output:>3}"
            f" {d.default_samplerate:>7.0f}"
        )
    rows.append("< default input, > default output")
    return "\n".join(rows)


def names_a_device(audio: Any) -> bool:
    """Whether the settings ask for a particular device or host API (with no sound card, that is an error;
    without any such wish rtvc falls back to the virtual device)."""
    named = ("host_api", "input_device", "output_device", "monitor_device")
    return audio.virtual_mic or any(getattr(audio, k) != "" for k in named)


def no_devices_error(listing: bool = False, host_api: str = "") -> DeviceError:
    """`listing`: for `rtvc devices` itself (its fix does not send the user back to it); `host_api`: audio.host_api
    (JACK asked for: its server is what is missing)."""
    if "jack" in host_api.lower():
        return DeviceNotFound(
            f"no sound devices found, and audio.host_api asks for '{host_api}': no JACK server answers",
            "start the JACK server (jackd or QjackCtl), or under PipeWire run rtvc with pw-jack (pw-jack rtvc run); "
            "or leave audio.host_api empty for the system's devices",
        )
    return DeviceNotFound(
        "no sound devices found",
        "plug in or enable a sound card (or start a JACK/PipeWire server)"
        + ("" if listing else ", check `rtvc devices`")
        + "; without one, `rtvc run --virtual` runs the engine on the virtual device",
    )


def find_device(spec: int | str, kind: Kind, host_api: str = "", flag: str = "") -> Device:
    """A device by index, by name substring (case-insensitive; of several, the one whose whole name it is, in the
    same case first), or '' for the host API's default. `flag`: the option that chooses it, for the fixes (default
    --input-device / --output-device)."""
    with _pa_lock:
        _check_usable()
        return _find(spec, kind, host_api, flag)


def _find(spec: int | str, kind: Kind, host_api: str, flag: str) -> Device:
    devices = list_devices()
    if not devices:
        raise no_devices_error(host_api=host_api)
    flag = flag or f"--{kind}-device"
    usable = [d for d in devices if d.channels(kind) > 0 and host_api.lower() in d.host_api.lower()]
    if host_api and not usable:
        apis = sorted({d.host_api for d in devices if d.channels(kind) > 0})
        jack = ""
        if "jack" in host_api.lower():
            jack = " (no JACK server runs? start jackd, or under PipeWire run rtvc with pw-jack)"
        raise DeviceNotFound(
            f"no {kind} device on a host API matching '{host_api}'{jack}",
            f"host APIs with {kind} devices: {', '.join(apis) or 'none'}; set audio.host_api",
        )
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        match = [d for d in devices if d.index == spec]
        if not match:
            raise DeviceNotFound(f"no device with index {spec}", f"run `rtvc devices` and pass {flag} N")
        if match[0].channels(kind) == 0:
            raise DeviceError(
                f"device {match[0].title()} has no {kind} channels", f"choose an {kind} device with {flag}"
            )
        return match[0]
    if spec == "":
        return _default(kind, usable, host_api, flag)
    match = [d for d in usable if spec.lower() in d.name.lower()]
    elsewhere = [d for d in devices if d.channels(kind) > 0 and d.name.lower() == spec.lower()]
    if not match and elsewhere:
        raise DeviceError(
            f"{kind} device '{spec}' is on {elsewhere[0].host_api}, but audio.host_api is '{host_api}'",
            f"choose a device on {host_api}, or set audio.host_api (or --host-api) to '{elsewhere[0].host_api}'",
        )
    names = ", ".join(f"'{d.name}'" for d in usable) or "none"
    wrong_way = [d for d in devices if d.channels(kind) == 0 and host_api.lower() in d.host_api.lower()]
    wrong_way = [d for d in wrong_way if spec.lower() in d.name.lower()]
    if not match and wrong_way:
        other = "output" if kind == "input" else "input"
        what = f"'{spec}' is an {other} device (no {kind} channels): {wrong_way[0].title()}"
        if any(d.name.lower() == spec.lower() for d in wrong_way):
            # its whole name, listed the other way round: refused as it is (reading the list again, for a device of
            # that name plugged in since, stopped the audio a moment)
            raise DeviceError(what, f"choose an {kind} device: {names}")
        # part of a name ("Headset" for "Headset Speakers"): an input of that name may have been plugged in since (a
        # Bluetooth headset switched to its headset mode), which reading the list again finds
        raise DeviceNotFound(f"no {kind} device matches '{spec}'; {what}", f"{kind} devices: {names}")
    if not match:
        raise DeviceNotFound(f"no {kind} device matches '{spec}'", f"{kind} devices: {names}; see `rtvc devices`")
    if len(match) > 1:
        # the whole name as written first: JACK clients 'Cam' and 'cam' (or PipeWire nodes that differ only in case)
        # could otherwise not be chosen by name at all
        exact = [d for d in match if d.name == spec]
        if len(exact) != 1:
            exact = [d for d in match if d.name.lower() == spec.lower()]
        if len(exact) == 1:
            return exact[0]
        names = ", ".join(d.title() for d in match)
        raise DeviceError(
            f"'{spec}' matches {len(match)} {kind} devices: {names}",
            f"give more of the name, or the index: {flag} {match[0].index}",
        )
    return match[0]


def _default(kind: Kind, usable: list[Device], host_api: str, flag: str) -> Device:
    """The system default device, or with audio.host_api set, that host API's default."""
    if not usable:
        raise DeviceNotFound(f"no {kind} device found", f"connect one, or choose one with {flag} (see `rtvc devices`)")
    sd = portaudio()
    if host_api:
        api = sd.query_hostapis(sd.query_devices(usable[0].index)["hostapi"])
        idx = api["default_input_device" if kind == "input" else "default_output_device"]
    else:
        idx = sd.default.device[0 if kind == "input" else 1]
        if idx < 0:  # PortAudio's own default
            idx = sd.query_hostapis(0)["default_input_device" if kind == "input" else "default_output_device"]
    for d in usable:
        if d.index == idx:
            if "JACK" in d.host_api and d.name != "system":
                return _pipewire_default(kind, [u for u in usable if "JACK" in u.host_api], flag)
            return d
    raise DeviceNotFound(f"no default {kind} device", f"choose one with {flag} (see `rtvc devices`)")


def _pipewire_default(kind: Kind, usable: list[Device], flag: str) -> Device:
    """On a JACK server without 'system' ports (PipeWire's JACK): PipeWire's default microphone or speakers, as the
    desktop's sound settings choose them. PortAudio's own default there is the first client with ports: under
    pw-jack it was a sink, whose capture ports are its monitor, and rtvc took what it played itself as the
    microphone, a feedback loop (a howl with a pitch voice)."""
    from rtvc.audio import voice_mic

    names = ", ".join(f"'{u.name}'" for u in usable if kind == "output" or u.name != voice_mic.LABEL)
    name, node = voice_mic.default_device(kind, wait_s=voice_mic.DEFAULTS_WAIT_S)
    if kind == "input" and node == voice_mic.NODE:
        # (made every program's microphone in the sound settings: rtvc's own input would be its output, a loop;
        # the microphone WirePlumber would make the default without it is the one meant)
        for mic, mic_node in voice_mic.microphones():
            if found := [d for d in usable if d.name == mic]:
                log.info(
                    "input device: PipeWire's default microphone is rtvc's own '%s'; rtvc takes '%s' (node %s), "
                    "the microphone of highest priority (%s chooses another)", voice_mic.LABEL, mic, mic_node, flag,
                )  # fmt: skip
                return found[0]
        raise DeviceError(
            f"PipeWire's default microphone is rtvc's own virtual microphone '{voice_mic.LABEL}', and PipeWire has "
            "no other: rtvc would hear itself",
            f"choose your microphone with {flag}: {names}",
        )
    found = [d for d in usable if d.name == name] if name else []
    if name and not found:  # (PipeWire's JACK may add to a name: a prefix, a -N for a second of the same name)
        near = [d for d in usable if name in d.name]
        found = near if len(near) == 1 else []
    if not found:
        why = (
            f"PipeWire's default {kind} '{name or node}' is not among them"
            if name or node
            else (f"PipeWire named none within {voice_mic.DEFAULTS_WAIT_S:g} s: does WirePlumber run?")
        )
        raise DeviceNotFound(
            f"no default {kind} device on this JACK server (no 'system' ports: PipeWire's JACK names each device on "
            f"its own; {why})",
            f"choose the {kind} with {flag}: {names}",
        )
    log.info("%s device: PipeWire's default, '%s' (node %s)", kind, found[0].name, node)
    return found[0]


def check_rate(device: Device, kind: Kind, samplerate: int, channels: int) -> None:
    if device.opened_by_move:  # (a JACK client PortAudio cannot open: it runs at the server's rate)
        return
    sd = portaudio()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        with _pa_lock:
            _check_usable()
            check(device=device.index, samplerate=samplerate, channels=channels, dtype="float32")
    except sd.PortAudioError as e:
        msg = str(e)
        if "sample rate" in msg.lower():
            raise DeviceError(
                f"{kind} device {device.title()} does not support {samplerate} Hz",
                f"set audio.samplerate (or --samplerate) to {device.default_samplerate:.0f}, its default",
            ) from None
        raise DeviceError(
            f"{kind} device {device.title()} refuses {channels} channel(s) at {samplerate} Hz: {msg}",
            f"it has {device.channels(kind)} {kind} channel(s); check audio.input_channel/output_channels",
        ) from None
