"""libjack through ctypes, for the child processes that ask a JACK server about rtvc's ports (jack_links_child,
jack_watch_child). Imported only there: a client opened in the daemon itself would block inside libjack while the
server is stopped (rtvc.audio.jack_probe). OSError on import where there is no libjack.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_found = ctypes.util.find_library("jack")
if _found is None:
    raise OSError("libjack is not installed")
lib = ctypes.CDLL(_found)
vp, cp, u32, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_int
lib.jack_client_open.restype = vp
lib.jack_client_open.argtypes = [cp, i32, ctypes.POINTER(i32)]
lib.jack_client_close.argtypes = [vp]
lib.jack_activate.argtypes = [vp]
lib.jack_get_ports.restype = ctypes.POINTER(cp)
lib.jack_get_ports.argtypes = [vp, cp, cp, ctypes.c_ulong]
lib.jack_port_by_name.restype = vp
lib.jack_port_by_name.argtypes = [vp, cp]
lib.jack_port_get_all_connections.restype = ctypes.POINTER(cp)
lib.jack_port_get_all_connections.argtypes = [vp, vp]
lib.jack_connect.argtypes = lib.jack_disconnect.argtypes = [vp, cp, cp]
lib.jack_free.argtypes = [vp]
lib.jack_port_get_latency_range.argtypes = [vp, i32, ctypes.POINTER(u32 * 2)]
lib.jack_get_buffer_size.restype = u32
lib.jack_get_buffer_size.argtypes = [vp]
NO_START_SERVER = 0x01  # jack_options_t
INPUT, OUTPUT = 0x1, 0x2  # JackPortIsInput, JackPortIsOutput
CAPTURE, PLAYBACK = 0, 1  # jack_latency_callback_mode_t
EEXIST = 17  # jack_connect: already connected
_QUIET = ctypes.CFUNCTYPE(None, cp)(lambda msg: None)  # (libjack's messages would go to stdout, the answer's channel)
lib.jack_set_info_function(_QUIET)
lib.jack_set_error_function(_QUIET)


def open_client(name: bytes) -> tuple[int | None, int]:
    """A client of the running server (never starting one): its handle, or None, and JACK's status bits."""
    status = i32(0)
    return lib.jack_client_open(name, NO_START_SERVER, ctypes.byref(status)), status.value


def names(arr) -> list[str]:
    """A NULL-terminated array of port names that libjack allocated, as a list (the array freed)."""
    out, k = [], 0
    while arr and arr[k]:
        out.append(arr[k].decode(errors="replace"))
        k += 1
    if arr:
        lib.jack_free(ctypes.cast(arr, vp))
    return out


AUDIO = b"32 bit float mono audio"  # JACK_DEFAULT_AUDIO_TYPE


def ere(text: str) -> str:
    """`text` as a POSIX extended regular expression that matches it literally (jack_get_ports' patterns)."""
    return "".join("\\" + ch if ch in "\\.[](){}*+?|^$" else ch for ch in text)


def device_ports(c, device: str, direction: str) -> list[str]:
    """The audio ports of JACK client `device` that rtvc's ports of `direction` connect to, in JACK's order (the
    ports PortAudio connects a stream on that device to): its outputs for rtvc's "inputs", its inputs for rtvc's
    "outputs". (PortAudio's pattern is not anchored, so that a client whose name ends in this one's, "USB Headset"
    beside "Headset", counts there too; only this client's are meant.)"""
    flag = OUTPUT if direction == "inputs" else INPUT
    return names(lib.jack_get_ports(c, ("^" + ere(device) + ":").encode(), AUDIO, flag))


def exists(c, port: str) -> bool:
    return bool(lib.jack_port_by_name(c, port.encode()))


def ports_and_peers(c, client: str) -> dict[str, dict[str, list[str]]]:
    """{"inputs": {port: [peer, ...]}, "outputs": {...}} for `client`'s ports, in the order PortAudio registered
    them (the number it ends their names with: in_3 after in_2; jackd lists ports by slot, and a slot another
    client freed can put a port registered later first); a port gone since it was listed is left out."""

    def registered(port: str) -> int:
        digits = port.rsplit("_", 1)[-1]
        return int(digits) if digits.isdigit() else 1 << 30

    got: dict[str, dict[str, list[str]]] = {}
    for d, flag in (("inputs", INPUT), ("outputs", OUTPUT)):
        got[d] = {}
        ports = names(lib.jack_get_ports(c, ("^" + ere(client) + ":").encode(), None, flag))
        for p in sorted(ports, key=registered):  # (stable: names without a number keep JACK's order, last)
            port = lib.jack_port_by_name(c, p.encode())
            if port:
                got[d][p] = names(lib.jack_port_get_all_connections(c, port))
    return got


def latency(c, ports: dict[str, dict[str, list[str]]]) -> dict:
    """Per input port the largest capture latency of its peers, per output port the largest playback latency of
    its peers (jack_port_get_latency_range, the range's max; None for a port with no peer), and the period."""

    def most(own: str, peers: list[str], mode: int) -> int | None:
        best = None
        for q in peers:
            if q.split(":", 1)[0] == own.split(":", 1)[0]:
                # rtvc's own port (its output looped into its input, `rtvc latency`'s JACK loop): no device between;
                # the port's range is rtvc's other side's, which JACK left at whatever it was before the loop
                best = 0 if best is None else best
                continue
            r, port = (u32 * 2)(), lib.jack_port_by_name(c, q.encode())
            if port:  # (gone since it was listed)
                lib.jack_port_get_latency_range(port, mode, ctypes.byref(r))
                best = r[1] if best is None else max(best, r[1])
        return best

    return {
        "inputs": [most(p, qs, CAPTURE) for p, qs in ports["inputs"].items()],
        "outputs": [most(p, qs, PLAYBACK) for p, qs in ports["outputs"].items()],
        "period": lib.jack_get_buffer_size(c),
    }


def connect(c, direction: str, port: str, peer: str) -> int:
    """Connect rtvc's `port` and `peer` the way `direction` ("inputs": peer -> port) says; JACK's answer."""
    a, b = (peer, port) if direction == "inputs" else (port, peer)
    return lib.jack_connect(c, a.encode(), b.encode())


def disconnect(c, direction: str, port: str, peer: str) -> int:
    a, b = (peer, port) if direction == "inputs" else (port, peer)
    return lib.jack_disconnect(c, a.encode(), b.encode())
