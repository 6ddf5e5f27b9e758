"""The child process of rtvc.audio.jack_watch (of rtvc it imports libjack only).

    python -P -m rtvc.audio.jack_watch_child CLIENT WAIT_S GRACE_S SEED

CLIENT is rtvc's JACK client; SEED is JSON {"lost": [[direction, rtvc port, peer], ...], "expected": {direction:
[[peer, ...] per port], ...} or null}: connections still waited for from before a reopen of rtvc's streams, and
the connections its ports should have now (those before the reopen, made again), so that a program that closes
between the reopen and this child's first look is seen. Prints "rtvc-watch JSON" lines (see jack_watch).
"""

import ctypes
import json
import os
import sys
import threading
import time

from rtvc.audio.libjack import EEXIST, cp, exists, i32, lib, open_client, ports_and_peers, u32, vp
from rtvc.audio.libjack import connect as jack_connect
from rtvc.audio.libjack import latency as jack_latency

NAME, WAIT_S, GRACE_S = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
SEED = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
changed, gone = threading.Event(), threading.Event()
closed: list[str] = []  # clients that closed since the last look (a program that restarts at once included)
closed_lock = threading.Lock()


def poke(*args):
    changed.set()
    return 0


def client_went(name, registered, arg):
    if not registered:
        with closed_lock:
            closed.append(name.decode(errors="replace"))
    changed.set()


def shutdown(arg):
    gone.set()
    changed.set()


# (kept referenced: libjack calls them for as long as the client lives)
CALLBACKS = [
    (lib.jack_set_port_connect_callback, ctypes.CFUNCTYPE(None, u32, u32, i32, vp)(poke)),
    (lib.jack_set_port_registration_callback, ctypes.CFUNCTYPE(None, u32, i32, vp)(poke)),
    (lib.jack_set_client_registration_callback, ctypes.CFUNCTYPE(None, cp, i32, vp)(client_went)),
    (lib.jack_set_graph_order_callback, ctypes.CFUNCTYPE(i32, vp)(poke)),
    (lib.jack_set_latency_callback, ctypes.CFUNCTYPE(None, i32, vp)(poke)),
    (lib.jack_set_buffer_size_callback, ctypes.CFUNCTYPE(i32, u32, vp)(poke)),
]
ON_SHUTDOWN = ctypes.CFUNCTYPE(None, vp)(shutdown)


def say(**what):
    sys.stdout.write("rtvc-watch " + json.dumps(what) + "\n")
    sys.stdout.flush()


def parent_gone():
    sys.stdin.buffer.read()  # (EOF: rtvc closed the pipe, or died)
    os._exit(0)


def links(ports):
    return {(d, p, q) for d, peers in ports.items() for p, qs in peers.items() for q in qs}


def client(port):
    return port.split(":", 1)[0]  # (JACK splits a port's name at its first colon)


c, status = open_client(b"rtvc-watch")
if not c:
    sys.stderr.write(f"could not open a JACK client (status 0x{status:x})\n")
    sys.exit(2)
for setter, fn in CALLBACKS:
    setter.argtypes = [vp, type(fn), vp]
    setter(c, fn, None)
lib.jack_on_shutdown.argtypes = [vp, type(ON_SHUTDOWN), vp]
lib.jack_on_shutdown(c, ON_SHUTDOWN, None)
if lib.jack_activate(c):
    sys.stderr.write("could not activate a JACK client\n")
    sys.exit(2)
threading.Thread(target=parent_gone, daemon=True).start()

now = ports_and_peers(c, NAME)
# the connections rtvc's ports should have (made again after a reopen, in port order): seen cut if they are not
before = {d: dict(ps) for d, ps in now.items()}
for d, wanted in (SEED.get("expected") or {}).items():
    for p, qs in zip(before.get(d, {}), wanted, strict=False):  # (as many as both have)
        before[d][p] = sorted(set(before[d][p]) | set(qs))
# (direction, rtvc port, peer): cut as the peer went away; connected again when it is back. A seed's rtvc port
# under this client's name (a reopen can rename it: rtvc-01)
lost = {(d, NAME + ":" + p.split(":", 1)[1], q) for d, p, q in SEED.get("lost", [])}
cut = {}  # (direction, rtvc port, peer) -> when it was seen cut, its peer still there (closing, or the user's doing)
said_latency = None
changed.set()
while True:
    changed.wait(GRACE_S if cut else None)
    if gone.is_set():
        say(gone=True)
        os._exit(0)
    time.sleep(WAIT_S)
    changed.clear()
    with closed_lock:
        went_clients, closed[:] = set(closed), []
    now = ports_and_peers(c, NAME)
    then, have = links(before), links(now)
    t = time.monotonic()
    for k in then - have:
        cut[k] = t
    dropped = []
    for k in have - then:  # a port connected to another program: what it waited for is no longer wanted there
        cut.pop(k, None)  # (a program that comes back and connects a port of a pair itself is no other program)
        mine = {x for x in lost if x[:2] == k[:2] and client(x[2]) != client(k[2])}
        lost -= mine
        dropped += sorted(mine)
    went = sorted(k for k in cut if client(k[2]) in went_clients or not exists(c, k[2]))
    for k in went:
        del cut[k]
        lost.add(k)
    for k in [k for k, when in cut.items() if t - when > GRACE_S]:
        del cut[k]  # (cut by the user: both ports stayed)
    back = []
    for k in sorted(lost):
        d, port, peer = k
        if exists(c, peer) and exists(c, port) and jack_connect(c, d, port, peer) in (0, EEXIST):
            back.append(k)
    lost.difference_update(back)
    if went:
        say(lost=[list(k) for k in went])
    if back:
        say(restored=[list(k) for k in back])
        now = ports_and_peers(c, NAME)
    if dropped:
        say(dropped=[list(k) for k in dropped])
    before = now
    lat = jack_latency(c, now)
    if lat != said_latency:
        said_latency = lat
        say(latency=lat)
