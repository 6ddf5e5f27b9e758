"""Watching the JACK graph around rtvc's ports while `rtvc serve` runs on JACK.

Two things change there without rtvc doing anything:
- the user reroutes rtvc's ports (a patchbay: rtvc's output from system:playback to OBS). The devices' part of the
  declared latency is JACK's figure for the ports rtvc is connected to (rtvc.audio.io: jack_latency), asked at start
  and after each reopen only, so it went on counting the sound card's playback after the output went to OBS;
- a program rtvc is connected to closes (a noise suppressor feeding rtvc's input, the "device" the user chose in
  rtvc, or OBS recording its output, restarted). JACK drops its connections, rtvc runs on in silence, status said
  running, and when the program came back nothing connected it again.

So while rtvc's streams run on JACK a child process holds a JACK client of its own (no ports, no process callback:
it is no part of the audio cycle) that JACK tells of every connection, port, client and latency change. After each
burst of changes (WAIT_S of quiet) it looks at rtvc's ports and prints one JSON line per finding:
- {"latency": {inputs, outputs, period}}: the figures rtvc.audio.jack_links.port_latency gives, when they changed;
- {"lost": [[rtvc port, peer], ...]}: connections whose peer port went away (its program closed, or was restarted);
- {"restored": [[rtvc port, peer], ...]}: those connected again once a port of that name was back.
A connection cut while both ports stay (the user did it) is not restored; nor is one of a port the user has since
connected to something else (rtvc does not mix in a second source the user chose against). The child is a process
of its own for the reason rtvc.audio.jack_links gives (libjack blocks while a server is stopped); it exits when
the server shuts down, and when rtvc closes the pipe it reads.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("rtvc")
WAIT_S = 0.15  # a burst of JACK's notifications (a client closing: disconnects, ports, the client) is read as one
GRACE_S = 0.5  # a cut connection whose peer port is gone within this long was lost with its program (one
# that deactivates, then closes)

_CHILD = r"""
import ctypes, ctypes.util, json, os, sys, threading, time
WAIT_S, GRACE_S = float(sys.argv[2]), float(sys.argv[3])
lib = ctypes.CDLL(ctypes.util.find_library("jack"))
vp, cp, u32, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_int
lib.jack_client_open.restype = vp
lib.jack_client_open.argtypes = [cp, i32, ctypes.POINTER(i32)]
lib.jack_get_ports.restype = ctypes.POINTER(cp)
lib.jack_get_ports.argtypes = [vp, cp, cp, ctypes.c_ulong]
lib.jack_port_by_name.restype = vp
lib.jack_port_by_name.argtypes = [vp, cp]
lib.jack_port_get_all_connections.restype = ctypes.POINTER(cp)
lib.jack_port_get_all_connections.argtypes = [vp, vp]
lib.jack_connect.argtypes = [vp, cp, cp]
lib.jack_free.argtypes = [vp]
lib.jack_activate.argtypes = [vp]
lib.jack_port_get_latency_range.argtypes = [vp, i32, ctypes.POINTER(u32 * 2)]
lib.jack_get_buffer_size.restype = u32
lib.jack_get_buffer_size.argtypes = [vp]
INPUT, OUTPUT = 0x1, 0x2
CAPTURE, PLAYBACK = 0, 1
QUIET = ctypes.CFUNCTYPE(None, cp)(lambda msg: None)
lib.jack_set_info_function(QUIET)
lib.jack_set_error_function(QUIET)
changed, gone = threading.Event(), threading.Event()

def poke(*args):
    changed.set()
    return 0

def shutdown(*args):
    gone.set()
    changed.set()

# (kept referenced: libjack calls them for as long as the client lives)
CALLBACKS = [
    (lib.jack_set_port_connect_callback, ctypes.CFUNCTYPE(None, u32, u32, i32, vp)(poke)),
    (lib.jack_set_port_registration_callback, ctypes.CFUNCTYPE(None, u32, i32, vp)(poke)),
    (lib.jack_set_client_registration_callback, ctypes.CFUNCTYPE(None, cp, i32, vp)(poke)),
    (lib.jack_set_graph_order_callback, ctypes.CFUNCTYPE(i32, vp)(poke)),
    (lib.jack_set_latency_callback, ctypes.CFUNCTYPE(None, i32, vp)(poke)),
    (lib.jack_set_buffer_size_callback, ctypes.CFUNCTYPE(i32, u32, vp)(poke)),
]
ON_SHUTDOWN = ctypes.CFUNCTYPE(None, vp)(shutdown)

def names(arr):
    out, k = [], 0
    while arr and arr[k]:
        out.append(arr[k].decode())
        k += 1
    if arr:
        lib.jack_free(ctypes.cast(arr, vp))
    return out

def say(**what):
    sys.stdout.write("rtvc-watch " + json.dumps(what) + "\n")
    sys.stdout.flush()

def parent_gone():
    sys.stdin.buffer.read()  # (EOF: rtvc closed the pipe, or died)
    os._exit(0)

status = i32(0)
c = lib.jack_client_open(b"rtvc-watch", 0x01, ctypes.byref(status))
if not c:
    sys.exit(2)
for setter, fn in CALLBACKS:
    setter.argtypes = [vp, type(fn), vp]
    setter(c, fn, None)
lib.jack_on_shutdown.argtypes = [vp, type(ON_SHUTDOWN), vp]
lib.jack_on_shutdown(c, ON_SHUTDOWN, None)
if lib.jack_activate(c):
    sys.exit(2)
threading.Thread(target=parent_gone, daemon=True).start()
name = sys.argv[1]

def exists(port):
    return bool(lib.jack_port_by_name(c, port.encode()))

def look():
    # {direction: {rtvc port: [peer, ...]}}, rtvc's ports in JACK's order
    got = {}
    for d, flag in (("inputs", INPUT), ("outputs", OUTPUT)):
        ports = names(lib.jack_get_ports(c, ("^" + name + ":").encode(), None, flag))
        got[d] = {}
        for p in ports:
            port = lib.jack_port_by_name(c, p.encode())
            if port:  # (gone since it was listed)
                got[d][p] = names(lib.jack_port_get_all_connections(c, port))
    return got

def latency(ports):
    def most(peers, mode):
        best = None
        for q in peers:
            r, port = (u32 * 2)(), lib.jack_port_by_name(c, q.encode())
            if not port:
                continue
            lib.jack_port_get_latency_range(port, mode, ctypes.byref(r))
            best = r[1] if best is None else max(best, r[1])
        return best
    return {"inputs": [most(qs, CAPTURE) for qs in ports["inputs"].values()],
            "outputs": [most(qs, PLAYBACK) for qs in ports["outputs"].values()],
            "period": lib.jack_get_buffer_size(c)}

def pairs(ports):
    return {(d, p, q) for d, peers in ports.items() for p, qs in peers.items() for q in qs}

before, said_latency = look(), None
cut = {}  # (direction, rtvc port, peer) -> when it was seen cut, its peer still there (within GRACE_S: closing?)
lost = set()  # (direction, rtvc port, peer): cut as the peer went away; connected again when it is back
while True:
    changed.wait(GRACE_S if cut else None)
    if gone.is_set():
        say(gone=True)
        os._exit(0)
    time.sleep(WAIT_S)
    changed.clear()
    now = look()
    then, have = pairs(before), pairs(now)
    t = time.monotonic()
    for link in then - have:
        cut[link] = t
    for link in have - then:  # (connected again by someone: nothing to do for it; its port is the user's choice)
        cut.pop(link, None)
        lost.difference_update({x for x in lost if x[:2] == link[:2] and x != link})
    went = [k for k in cut if not exists(k[2])]
    for k in went:
        del cut[k]
        lost.add(k)
    for k in [k for k, when in cut.items() if t - when > GRACE_S]:
        del cut[k]  # (cut by the user: both ports stayed)
    back, failed = [], []
    for k in sorted(lost):
        d, port, peer = k
        if exists(peer) and exists(port):
            a, b = (peer, port) if d == "inputs" else (port, peer)
            (failed if lib.jack_connect(c, a.encode(), b.encode()) not in (0, 17) else back).append(k)  # 17: EEXIST
    lost.difference_update(back)
    if went:
        say(lost=[[p, q] for _, p, q in sorted(went)])
    if back:
        say(restored=[[p, q] for _, p, q in back])
        now = look()
    before = now
    lat = latency(now)
    if lat != said_latency:
        said_latency = lat
        say(latency=lat)
"""


class JackWatch:
    """The child for rtvc's JACK client `name`. `on_line(what)` gets each of its findings (a dict, see above), on a
    thread of its own; a child that cannot watch (no server, no libjack) logs why and ends."""

    def __init__(self, name: str, on_line: Callable[[dict[str, Any]], None]):
        self.name = name
        self._on_line = on_line
        self._stopped = False
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, name, str(WAIT_S), str(GRACE_S)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as e:  # (no process to be had: out of memory or processes)
            log.info("JACK routing: not watched (%s): a reroute of rtvc's ports is not seen until a reopen", e)
            self._proc = None
            return
        threading.Thread(target=self._read, name="rtvc-jack-watch", daemon=True).start()

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("rtvc-watch "):
                continue
            try:
                what = json.loads(line.removeprefix("rtvc-watch "))
            except ValueError:
                continue
            if self._stopped:
                return
            try:
                self._on_line(what)
            except Exception:  # (a bug: the watch must not end for it)
                log.exception("JACK routing: could not take %s", line.strip()[:200])
        code = proc.wait()
        if not self._stopped and code != 0:
            err = proc.stderr.read().strip() if proc.stderr else ""
            log.info("JACK routing: the watch ended (%s)", (err or f"exit {code}")[-200:])

    def stop(self) -> None:
        """End the child (never waits on its reader: that may be waiting on the caller's lock)."""
        self._stopped = True
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()  # (it exits at EOF)
        except OSError:
            pass
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
