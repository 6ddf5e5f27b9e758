"""Whether the JACK server answers, asked from a process of its own.

When rtvc's JACK streams stop getting callbacks, the server is stopped (a frozen machine, SIGSTOP, a laptop's
suspend), stuck, or gone. Closing a stream of a server that is stopped blocks inside libjack until the server
runs again, and PortAudio cannot be used again in a process where that happened: rtvc's device recovery, which
reopens the streams after 2 s without callbacks, made a JACK server that froze for 5 s cost a restart of rtvc.
So before it closes JACK streams that stalled, rtvc asks: a child process opens a JACK client (never starting
a server) within a deadline. One that does not return in time is killed: the server is not answering, and rtvc
waits for it, touching nothing, until the callbacks come back or the server answers or is gone.

A server that answers without rtvc's own client (`client`) is a new one (a JACK server or PipeWire restarted) or
one that dropped rtvc: its streams cannot be stopped either (PortAudio waits ten minutes for a callback from the
old server), and neither can they where the server is gone. The client counts where it has ports in the graph,
or, with none (PortAudio's, with no stream open), by its exact name: then PortAudio cannot be restarted either
(its JACK host API aborts the process closing a client of a server gone).
"""

from __future__ import annotations

import os
import subprocess
import sys

ANSWERS, GONE, NOT_ANSWERING, NO_LIBJACK = "answers", "gone", "not answering", "no libjack"
WITHOUT = "answers without the client"  # (jack_server's `client` is not in its graph)
UNKNOWN = "the probe failed"  # (it crashed or was killed: nothing is known of the server)

_PROBE = r"""
import ctypes, ctypes.util, sys
found = ctypes.util.find_library("jack")
if not found:
    sys.exit(3)
lib = ctypes.CDLL(found)
lib.jack_client_open.restype = ctypes.c_void_p
lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.jack_client_close.argtypes = [ctypes.c_void_p]
status = ctypes.c_int(0)
client = lib.jack_client_open(b"rtvc-probe", 0x01, ctypes.byref(status))  # JackNoStartServer
if not client:
    sys.exit(2)
ours = True
if len(sys.argv) > 1:  # a client whose ports should be in the graph
    lib.jack_get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.jack_get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
    lib.jack_free.argtypes = [ctypes.c_void_p]
    ports = lib.jack_get_ports(client, None, None, 0)
    names = []
    if ports:
        i = 0
        while ports[i]:
            names.append(ports[i].decode(errors="replace"))
            i += 1
        lib.jack_free(ports)
    # (a client whose name holds rtvc's counts: PipeWire's JACK can add a prefix or a suffix to the name it reports;
    # not those named after it: rtvc's virtual microphone, "rtvc voice", which PipeWire may make again at its start)
    others = set(sys.argv[2:])
    ours = any(sys.argv[1] in c and c not in others for c in (n.split(":", 1)[0] for n in names))
    if not ours and hasattr(lib, "jack_get_uuid_for_client_name"):  # a client with no port (PortAudio's, idle)
        lib.jack_get_uuid_for_client_name.restype = ctypes.c_void_p
        lib.jack_get_uuid_for_client_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        ours = bool(lib.jack_get_uuid_for_client_name(client, sys.argv[1].encode()))
lib.jack_client_close(client)
sys.exit(0 if ours else 4)
"""


def jack_server(timeout: float = 2.0, client: str | None = None, not_client: tuple[str, ...] = ()) -> str:
    """ANSWERS, GONE (no server to connect to), NOT_ANSWERING (a client's open did not return within
    `timeout`), or NO_LIBJACK; with `client` (a JACK client name), WITHOUT where the server answers and that
    client has no port in its graph (`not_client`: names that hold `client`'s but are others'). The server is the
    one rtvc's own streams use (JACK_DEFAULT_SERVER, inherited)."""
    # (-I: nothing from the folder it runs in; PIPEWIRE_NODE would show pw-jack's client that node's ports only)
    env = {k: v for k, v in os.environ.items() if k != "PIPEWIRE_NODE"}
    try:
        argv = [sys.executable, "-I", "-c", _PROBE, *([client, *not_client] if client else [])]
        done = subprocess.run(argv, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return NOT_ANSWERING
    except OSError:  # (no process to be had)
        return UNKNOWN
    return {0: ANSWERS, 2: GONE, 3: NO_LIBJACK, 4: WITHOUT}.get(done.returncode, UNKNOWN)
