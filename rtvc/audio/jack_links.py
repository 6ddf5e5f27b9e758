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
import subprocess
import sys
from typing import Any

from rtvc.errors import DeviceError

log = logging.getLogger("rtvc")

# The child's side: `snapshot NAME` prints {"inputs": [[peer, ...], ...], "outputs": [...]}, the peers of each
# of NAME's ports in their order; `restore NAME JSON` makes NAME's ports' connections those, and prints
# {"failed": [what it could not do], "gone": [[direction, port, peer] whose peer is gone]}; `latency NAME` prints
# {"inputs": [frames or null, ...], "outputs": [...], "period": frames}: per input port the largest capture latency
# of its peers, per output port the largest playback latency of its peers (JACK's jack_port_get_latency_range, max
# of the range), null for a port with no peer; and the server's period.
_CHILD = r"""
import ctypes, ctypes.util, json, sys
lib = ctypes.CDLL(ctypes.util.find_library("jack"))
vp, cp = ctypes.c_void_p, ctypes.c_char_p
lib.jack_client_open.restype = vp
lib.jack_client_open.argtypes = [cp, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.jack_get_ports.restype = ctypes.POINTER(cp)
lib.jack_get_ports.argtypes = [vp, cp, cp, ctypes.c_ulong]
lib.jack_port_by_name.restype = vp
lib.jack_port_by_name.argtypes = [vp, cp]
lib.jack_port_get_all_connections.restype = ctypes.POINTER(cp)
lib.jack_port_get_all_connections.argtypes = [vp, vp]
lib.jack_connect.argtypes = lib.jack_disconnect.argtypes = [vp, cp, cp]
lib.jack_free.argtypes = [vp]
lib.jack_client_close.argtypes = [vp]
lib.jack_port_get_latency_range.argtypes = [vp, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32 * 2)]
lib.jack_get_buffer_size.restype = ctypes.c_uint32
lib.jack_get_buffer_size.argtypes = [vp]
INPUT, OUTPUT = 0x1, 0x2
CAPTURE, PLAYBACK = 0, 1  # jack_latency_callback_mode_t
QUIET = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda msg: None)  # (libjack's messages go to stdout)
lib.jack_set_info_function(QUIET)
lib.jack_set_error_function(QUIET)

def names(arr):
    out, k = [], 0
    while arr and arr[k]:
        out.append(arr[k].decode())
        k += 1
    if arr:
        lib.jack_free(ctypes.cast(arr, vp))
    return out

status = ctypes.c_int(0)
c = lib.jack_client_open(b"rtvc-links", 0x01, ctypes.byref(status))
if not c:
    sys.exit(2)
try:
    name = sys.argv[2]
    ports = {d: names(lib.jack_get_ports(c, ("^" + name + ":").encode(), None, flag))
             for d, flag in (("inputs", INPUT), ("outputs", OUTPUT))}
    peers = {d: [names(lib.jack_port_get_all_connections(c, lib.jack_port_by_name(c, p.encode()))) for p in ps]
             for d, ps in ports.items()}
    if sys.argv[1] == "snapshot":
        print("rtvc-links " + json.dumps(peers))
    elif sys.argv[1] == "latency":
        def latency(peer, mode):
            r = (ctypes.c_uint32 * 2)()
            lib.jack_port_get_latency_range(lib.jack_port_by_name(c, peer.encode()), mode, ctypes.byref(r))
            return r[1]
        print("rtvc-links " + json.dumps({
            "inputs": [max((latency(q, CAPTURE) for q in qs), default=None) for qs in peers["inputs"]],
            "outputs": [max((latency(q, PLAYBACK) for q in qs), default=None) for qs in peers["outputs"]],
            "period": lib.jack_get_buffer_size(c),
        }))
    else:
        want, failed, gone = json.loads(sys.argv[3]), [], []
        for d in ("inputs", "outputs"):
            for port, now, wanted in zip(ports[d], peers[d], want.get(d, [])):
                for peer in set(now) - set(wanted):
                    a, b = (peer, port) if d == "inputs" else (port, peer)
                    if lib.jack_disconnect(c, a.encode(), b.encode()):
                        failed.append(f"disconnect {a} {b}")
                for peer in sorted(set(wanted) - set(now)):
                    a, b = (peer, port) if d == "inputs" else (port, peer)
                    if not lib.jack_port_by_name(c, peer.encode()):
                        gone.append([d, port, peer])  # (its program closed meanwhile: waited for)
                    elif lib.jack_connect(c, a.encode(), b.encode()):
                        failed.append(f"connect {a} {b}")
        print("rtvc-links " + json.dumps({"failed": failed, "gone": gone}))
finally:
    lib.jack_client_close(c)
"""
TIMEOUT_S = 3.0


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
        done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=TIMEOUT_S)
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


def snapshot() -> tuple[str, dict[str, list[list[str]]]] | None:
    """rtvc's JACK client name and its ports' connections, or None (no JACK client, no server)."""
    name = own_name()
    if name is None:
        return None
    peers = _child("snapshot", name)
    return None if not isinstance(peers, dict) else (name, peers)


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


def restore(saved: tuple[str, dict[str, list[list[str]]]], directions: tuple[str, ...]) -> list[list[str]]:
    """Connect rtvc's (new) ports as `saved` says for `directions` ("inputs", "outputs"), under the client name
    PortAudio uses now. Returns the connections whose other port is gone ([direction, rtvc's port, the other port]:
    its program closed meanwhile), for rtvc.audio.jack_watch to wait for."""
    try:
        name = client_name() or saved[0]
    except DeviceError:
        name = saved[0]
    done = _child("restore", name, json.dumps({d: saved[1].get(d, []) for d in directions}))
    if not isinstance(done, dict):
        return []
    failed, gone = done.get("failed", []), done.get("gone", [])
    if failed:
        log.info("JACK connections after reopening the devices: could not %s", "; ".join(failed))
    elif not gone:
        log.info("JACK connections of rtvc's ports restored after reopening the devices")
    if gone:
        log.info(
            "JACK connections after reopening the devices: %s gone meanwhile (waited for)",
            ", ".join(sorted({q for _d, _p, q in gone})),
        )
    return gone
