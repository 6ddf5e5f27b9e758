"""PipeWire's quantum, for streams that reach PipeWire through its ALSA plugin (device "pipewire", and "default" on
a desktop where PipeWire is the sound server).

PipeWire runs its graph in cycles of a quantum of frames. Through the ALSA plugin each cycle takes a whole quantum
out of the ALSA buffer that PortAudio fills (and puts one into the capture buffer). The graph runs at the smallest
quantum its streams ask for, which follows rtvc's own period (128 frames, PortAudio's "low" latency) unless the
user's settings hold it higher: `clock.min-quantum` raised (a common cure for crackling elsewhere on a desktop), or
`clock.force-quantum`. PortAudio's low-latency ALSA buffer is 512 frames: measured on PipeWire 0.3.65
(bench/latency_pipewire.py), a quantum of 512 underran it about 13 times a second and one of 1024 let no sound through
at all, while rtvc said it ran. For such a quantum the streams are opened with a period of one quantum (PortAudio
then keeps three in its buffer): no underrun, and the declared latency is what impulses take (measured from 512 to
2048).

The settings are read with `pw-metadata -n settings` (pipewire-bin, installed with PipeWire); `QuantumWatch` follows
them while `rtvc serve` runs, so that a quantum forced later reopens the devices sized for it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Callable

from rtvc.audio.devices import Device

log = logging.getLogger("rtvc")
SERVED = ("pipewire", "default")  # ALSA devices that reach PipeWire (where it runs)
LOW_QUANTUM = 256  # the largest quantum PortAudio's low-latency ALSA buffer (512 frames) keeps up with
ASK_S = 2.0
WAIT_S = 0.2  # a change of the settings is read once they have been quiet this long
# how often a watch looks whether its metadata object is still the one it follows: WirePlumber's own ("default")
# is made anew when WirePlumber restarts (a crash, `systemctl --user restart wireplumber`), and `pw-metadata -m`
# hears nothing from the new one (a review: rtvc stopped following the default devices, without a word)
CHECK_S = 3.0
_LINE = re.compile(r"key:'([^']*)' value:'([^']*)'")
_REMOVED = re.compile(r"key:'([^']*)'")
_CORE = re.compile(r'default\.clock\.([a-z-]+) = "([^"]*)"')
KEYS = ("clock.force-quantum", "clock.min-quantum")
DEFAULT_KEYS = {"input": "default.audio.source", "output": "default.audio.sink"}  # (WirePlumber's "default" metadata)


def served(devices: tuple[Device | None, ...]) -> bool:
    """Whether any of these devices is an ALSA device that reaches PipeWire when it runs."""
    return any(d is not None and d.host_api == "ALSA" and d.name in SERVED for d in devices)


def parse(text: str, into: dict[str, str] | None = None, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """pw-metadata's lines ("update: id:0 key:'clock.min-quantum' value:'1024' type:''") as {key: value}. A key
    removed ("remove: id:0 key:'clock.force-quantum'", "remove: id:0 all keys") goes back to PipeWire's own
    setting (`defaults`: core_defaults), or goes."""
    got = {} if into is None else into
    for line in text.splitlines():
        if "id:0 " not in line:
            continue
        if line.startswith("remove:"):
            if "all keys" in line:
                got.clear()
                got.update(defaults or {})
            elif m := _REMOVED.search(line):
                key = m.group(1)
                if defaults and key in defaults:
                    got[key] = defaults[key]
                else:
                    got.pop(key, None)
        elif m := _LINE.search(line):
            got[m.group(1)] = m.group(2)
    return got


def node_named(value: str) -> str:
    """The node name in a value of WirePlumber's "default" metadata (default.audio.source, default.audio.sink:
    '{"name":"alsa_input.usb-..."}'); '' when it names none."""
    try:
        name = json.loads(value).get("name", "")
    except (ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def core_defaults(text: str) -> dict[str, str]:
    """PipeWire's own settings (its config file's default.clock.*, as `pw-cli info 0` prints them), under the names
    the settings metadata gives them: what a key removed from the metadata falls back to."""
    got = {}
    for line in text.splitlines():
        m = _CORE.search(line)
        if m and f"clock.{m.group(1)}" in KEYS:
            got[f"clock.{m.group(1)}"] = m.group(2)
    return got


def floor(settings: dict[str, str]) -> tuple[int, str]:
    """The smallest quantum PipeWire runs at, whatever rtvc asks, and the setting that says so: a forced quantum,
    else the minimum; (0, "") when neither is set."""
    for key in KEYS:
        try:
            value = int(settings.get(key, "0"))
        except ValueError:
            continue
        if value > 0:
            return value, key
    return 0, ""


def sizing(quantum: int) -> int:
    """The period to open PipeWire's ALSA streams with for this quantum floor; 0: PortAudio's low latency."""
    return quantum if quantum > LOW_QUANTUM else 0


def ask(args: list[str], timeout: float = ASK_S) -> str | None:
    """What a PipeWire tool prints (stdout); None when it fails, is missing, or takes longer than `timeout`."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def settings() -> tuple[dict[str, str], dict[str, str]] | None:
    """PipeWire's clock settings, and its own (core_defaults) that a removed one falls back to; None when it cannot
    be asked (not running, pw-metadata not installed)."""
    if shutil.which("pw-metadata") is None:
        return None
    meta = ask(["pw-metadata", "-n", "settings"])
    if meta is None or "Found" not in meta:
        return None
    defaults = core_defaults(ask(["pw-cli", "info", "0"]) or "") if shutil.which("pw-cli") else {}
    return parse(meta, dict(defaults), defaults), defaults


def quantum_for(devices: tuple[Device | None, ...]) -> tuple[int, str, dict[str, str]] | None:
    """(the quantum floor, its setting, PipeWire's own settings) when these devices reach a running PipeWire; None
    otherwise."""
    if not served(devices):
        return None
    got = settings()
    return None if got is None else (*floor(got[0]), got[1])


class MetadataWatch:
    """Follows one of PipeWire's metadata objects (`pw-metadata -m -n NAME`, a child that prints its keys, then each
    change): once changes have been quiet for WAIT_S, `on_quiet(values)` gets every key and value so far (parse), on
    a thread of its own. `what` names it in the log, `unseen` says what is missed while it is not watched."""

    def __init__(
        self,
        name: str,
        on_quiet: Callable[[dict[str, str]], None],
        what: str,
        unseen: str,
        values: dict[str, str] | None = None,
        defaults: dict[str, str] | None = None,
    ):
        self._on_quiet = on_quiet
        self._name, self._what, self._unseen = name, what, unseen
        self._start_values = dict(values or {})
        self._values = dict(self._start_values)
        self._defaults = defaults
        self._stopped = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._serial: str | None = None  # the object's, as the guard first finds it
        self._proc: subprocess.Popen[str] | None = None
        if not self._start():
            return
        threading.Thread(target=self._guard, name="rtvc-pipewire-guard", daemon=True).start()

    def _start(self) -> bool:
        try:
            proc = subprocess.Popen(
                ["pw-metadata", "-m", "-n", self._name],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError as e:
            log.info("%s: not watched (%s): %s", self._what, e, self._unseen)
            return False
        self._proc = proc
        threading.Thread(target=self._read, args=(proc,), name="rtvc-pipewire-watch", daemon=True).start()
        return True

    def _guard(self) -> None:
        """Every CHECK_S: the metadata object made anew since (another serial: its owner restarted) is watched
        anew, its values read in full (a default chosen meanwhile is followed)."""
        self._serial = object_serial(self._name)  # (None: not found now; taken when it is, and watched anew)
        while not self._stop.wait(CHECK_S):
            serial = object_serial(self._name)
            if serial is None or serial == self._serial:
                continue
            with self._lock:
                if self._stopped:
                    return
                was, self._serial = self._serial, serial
                old = self._proc
                self._values = dict(self._start_values)
                if not self._start():
                    continue
            _end(old)
            if was is not None:
                log.info("%s: watched again (made anew: WirePlumber or PipeWire restarted)", self._what)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        timer: threading.Timer | None = None
        for line in proc.stdout:
            with self._lock:
                if proc is not self._proc:  # (replaced by a watch of the object made anew)
                    return
                parse(line, self._values, self._defaults)
            if timer is not None:
                timer.cancel()
            # (a change comes a key a line: the values are taken once they have all come, WAIT_S of quiet)
            timer = threading.Timer(WAIT_S, self._quiet)
            timer.daemon = True
            timer.start()
        proc.wait()
        with self._lock:
            said = self._stopped or proc is not self._proc
        if not said:
            log.info(
                "%s: no longer watched (PipeWire stopped?): %s, until it is back", self._what, self._unseen
            )  # fmt: skip

    def _quiet(self) -> None:
        with self._lock:
            if self._stopped:
                return
            values = dict(self._values)
        try:
            self._on_quiet(values)
        except Exception:  # (a bug: the watch must not end for it)
            log.exception("%s: could not take a change", self._what)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._stop.set()
            proc = self._proc
        _end(proc)


def _end(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def object_serial(name: str) -> str | None:
    """The object.serial of PipeWire's metadata object of this name (serials, unlike ids, are never given twice);
    None when PipeWire cannot be asked or has none."""
    text = ask(["pw-cli", "ls", "Metadata"])
    if not text:
        return None
    for block in re.split(r"\n(?=\s*id \d+, type )", text):
        if re.search(rf'metadata\.name = "{re.escape(name)}"', block):
            m = re.search(r'object\.serial = "(\d+)"', block)
            return m.group(1) if m else None
    return None


class QuantumWatch:
    """Follows PipeWire's settings (MetadataWatch of "settings"); `on_change(quantum, key)` gets each new quantum
    floor, on a thread of its own."""

    def __init__(self, on_change: Callable[[int, str], None], now: int, defaults: dict[str, str]):
        self._on_change = on_change
        self._seen = now
        self._lock = threading.Lock()
        unseen = "a quantum forced later is not seen"
        self._watch = MetadataWatch("settings", self._settled, "PipeWire's quantum", unseen, defaults, defaults)

    def _settled(self, current: dict[str, str]) -> None:
        with self._lock:
            quantum, key = floor(current)
            if quantum == self._seen:
                return
            self._seen = quantum
        self._on_change(quantum, key)

    def stop(self) -> None:
        self._watch.stop()
