"""JACK connections of rtvc's own ports, kept across a reopen of the same devices.

Under JACK, PortAudio's streams are one JACK client whose ports it connects to the physical ones (`system:*`)
as each stream starts; the user then routes them (qjackctl, Carla, a patchbay): a noise suppressor into rtvc's
input, rtvc's output into OBS. rtvc reopens its streams without any change of device when it reads the device
list again (`devices.select` of a name the list lacks, `devices.list` with rescan) and when it recovers from a
failure, and each reopen put the ports back on `system:*`: the stream went silent while status said running (a
helper's bug hunt). So around such a reopen rtvc notes what its ports were connected to and, once the new ports
run, connects them the same way (the n-th input port as the n-th was; PortAudio numbers them anew) and cuts the
connections PortAudio made that were not there.

Both steps run in a child process with a deadline (a JACK client opened in this process would block inside
libjack if the server stopped meanwhile: rtvc.audio.jack_probe); what fails is logged, never raised: the
devices run either way. Ports are matched in the order JACK lists them (the order PortAudio registered them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rtvc.errors import DeviceError

log = logging.getLogger("rtvc")

TIMEOUT_S = 3.0


def child_env() -> dict[str, str]:
    """The environment of a child that runs a module of rtvc (`python -P -m rtvc.audio...`): this rtvc first on
    its path, wherever the daemon was started from (-P: not the folder it runs in)."""
    root = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + rest if rest else "")}


def client_name() -> str | None:
    """The JACK client name PortAudio's streams use in this process (PaJack_GetClientName), or None where
    PortAudio has no JACK host API."""
    from rtvc.audio.devices import portaudio

    portaudio()  # (PortAudio loaded and initialised, by sounddevice)
    found = ctypes.util.find_library("portaudio")
    if found is None:
        return None
    try:
        fn = ctypes.CDLL(found).PaJack_GetClientName
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    name = ctypes.c_char_p()
    return name.value.decode() if fn(ctypes.byref(name)) == 0 and name.value else None


def _child(*args: str) -> Any:
    """The child's answer (its `rtvc-links` line, parsed), or None, logged: it timed out, failed or said
    something else."""
    try:
        done = subprocess.run(
            [sys.executable, "-P", "-m", "rtvc.audio.jack_links_child", *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=child_env(),
        )
    except subprocess.TimeoutExpired:
        log.info("JACK connections: the server did not answer within %g s", TIMEOUT_S)
        return None
    except OSError as e:  # (no process to be had: out of memory or processes)
        log.info("JACK connections: could not ask the server (%s)", e)
        return None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("rtvc-links ")]
    if done.returncode != 0 or not lines:
        log.info("JACK connections: could not ask the server (%s)", (done.stderr.strip() or "no server")[-200:])
        return None
    try:
        return json.loads(lines[-1].removeprefix("rtvc-links "))
    except ValueError:
        log.info("JACK connections: the server's answer did not read (%s)", lines[-1][:200])
        return None


def own_name() -> str | None:
    try:
        return client_name()
    except DeviceError:
        return None


# rtvc's JACK client name, its ports' connections ({direction: [[peer, ...] per port]}), and its ports ({direction:
# [port, ...]}), in the order PortAudio registered them
Links = tuple[str, dict[str, list[list[str]]], dict[str, list[str]]]


def _links(name: str, got: Any) -> Links | None:
    if not isinstance(got, dict):
        return None
    return name, {d: got.get(d, []) for d in ("inputs", "outputs")}, got.get("ports") or {}


def snapshot() -> Links | None:
    """rtvc's JACK ports and their connections, or None (no JACK client, no server)."""
    name = own_name()
    return None if name is None else _links(name, _child("snapshot", name))


def port_latency() -> tuple[list[int | None], list[int | None], int] | None:
    """The JACK latency outside rtvc, per port of rtvc's client in JACK's order: for each input port, the largest
    capture latency of the ports feeding it (how old the audio is when it arrives: system:capture_1 says the
    sound card's), for each output port the largest playback latency of the ports it feeds (how long until what
    rtvc writes is heard, or reaches a program that records it); None for a port with no peer; and the server's
    period then (frames). None when JACK cannot be asked (logged)."""
    name = own_name()
    if name is None:
        return None
    got = _child("latency", name)
    if not isinstance(got, dict):
        return None
    return list(got.get("inputs", [])), list(got.get("outputs", [])), int(got.get("period") or 0)


def restore(saved: str, want: dict[str, list[list[str] | None]]) -> tuple[list[list[str]], Links | None]:
    """Make the connections of rtvc's (new) ports those of `want` ({direction: [[peer, ...] per port]}, None for a
    port left as it is), under the client name PortAudio uses now (`saved`: the one before, where it cannot be
    asked). Returns the connections whose other port is gone ([direction, rtvc's port, the other port]: its program
    closed meanwhile), for rtvc.audio.jack_watch to wait for, and rtvc's connections then (None: not known)."""
    try:
        name = client_name() or saved
    except DeviceError:
        name = saved
    done = _child("restore", name, json.dumps(want))
    if not isinstance(done, dict):
        return [], None
    after = _links(name, done.get("after"))
    failed, gone = done.get("failed", []), done.get("gone", [])
    if not any(w for ws in want.values() for w in ws):
        return gone, after  # (nothing to restore: asked for the connections PortAudio made)
    if failed:
        log.info("JACK connections after reopening the devices: could not %s", "; ".join(failed))
    elif not gone:
        log.info("JACK connections of rtvc's ports restored after reopening the devices")
    if gone:
        log.info(
            "JACK connections after reopening the devices: %s gone meanwhile (waited for)",
            ", ".join(sorted({q for _d, _p, q in gone})),
        )
    return gone, after


def add(extra: dict[str, list[list[str]]]) -> tuple[list[list[str]], Links | None]:
    """Connect rtvc's ports to more peers, cutting none (`extra`: {direction: [[peer, ...] per port]}): after a
    reopen on other devices, the programs the user had connected rtvc's ports to (OBS recording its output), which
    PortAudio does not know. Returns what `restore` returns."""
    name = own_name()
    if name is None or not any(peers for ports in extra.values() for peers in ports):
        return [], None
    done = _child("add", name, json.dumps(extra))
    if not isinstance(done, dict):
        return [], None
    after = _links(name, done.get("after"))
    failed, gone = done.get("failed", []), done.get("gone", [])
    if failed:
        log.info("JACK connections to other programs after the switch: could not %s", "; ".join(failed))
    if gone:
        programs = ", ".join(sorted({q for *_, q in gone}))
        log.info("JACK connections after the switch: %s gone meanwhile (waited for)", programs)
    return gone, after


def route(groups: list[tuple[str, int, int, str, str, int]]) -> tuple[list[str] | None, Links | None, Links | None]:
    """Move rtvc's running ports to other devices on the same JACK server, its streams untouched (a switch with
    no gap: rtvc.audio.switch): `groups` [(direction, first port, count, device, old device, the device's ports)],
    see jack_links_child: only the connections to the old device are cut (those to other programs stay). The ports
    moved, or None (logged) where any part failed: the caller reopens the streams then, on the new devices; the
    connections before (a `snapshot`: for that reopen, which makes those of the devices kept again) and after (for
    the JACK watch that starts then: a program that closes meanwhile is seen), each None when the child did not
    answer."""
    name = own_name()
    if name is None:
        return None, None, None
    done = _child("route", name, json.dumps([list(g) for g in groups]))
    if not isinstance(done, dict):
        return None, None, None
    before, after = _links(name, done.get("before")), _links(name, done.get("after"))
    if done.get("failed"):
        log.info("JACK: rtvc's ports not moved to the new devices: could not %s", "; ".join(done["failed"]))
        return None, before, after
    return list(done.get("ports", [])), before, after


def client_ports(device: str) -> tuple[int, int] | None:
    """How many audio ports JACK client `device` has to capture from and to play to (what PortAudio would count as
    its input and output channels), or None when JACK cannot be asked (logged)."""
    got = _child("ports", device)
    if not isinstance(got, dict):
        return None
    return int(got.get("capture", 0)), int(got.get("playback", 0))


def capture_names(device: str) -> list[str] | None:
    """The names of JACK client `device`'s ports that rtvc's inputs would connect to, in PortAudio's order (its
    n-th input channel's is the n-th), or None when JACK cannot be asked (logged)."""
    got = _child("ports", device)
    if not isinstance(got, dict) or not isinstance(got.get("names"), list):
        return None
    return [str(n) for n in got["names"]]


def client_counts(devices: list[str]) -> dict[str, tuple[int, int]] | None:
    """For each JACK client of `devices`, how many audio ports it has to capture from and to play to (as
    client_ports), or None when JACK cannot be asked (logged)."""
    got = _child("counts", "-", json.dumps(devices))
    if not isinstance(got, dict):
        return None
    return {d: (int(v[0]), int(v[1])) for d, v in got.items() if isinstance(v, list) and len(v) == 2}


def clients() -> list[str] | None:
    """The names of the JACK clients with audio ports now, or None when JACK cannot be asked (logged)."""
    got = _child("clients", "-")
    return [str(n) for n in got] if isinstance(got, list) else None
