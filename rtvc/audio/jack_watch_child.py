"""The child process of rtvc.audio.jack_watch (run by its path: it imports nothing of rtvc, nor numpy).

    python jack_watch_child.py CLIENT WAIT_S GRACE_S SEED

CLIENT is rtvc's JACK client; SEED is JSON {"lost": [[direction, rtvc port, peer], ...], "expected": {direction:
[[peer, ...] per port], ...} or null}: connections still waited for from before a reopen of rtvc's streams, and
the connections its ports should have now (those before the reopen, made again), so that a program that closes
between the reopen and this child's first look is seen. Prints "rtvc-watch JSON" lines (see jack_watch).
"""

import ctypes
import ctypes.util
import json
import os
import sys
import threading
import time

NAME, WAIT_S, GRACE_S = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
SEED = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
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
CAPTURE, PLAYBACK = 0, 1  # jack_latency_callback_mode_t
EEXIST = 17  # jack_connect: already connected
QUIET = ctypes.CFUNCTYPE(None, cp)(lambda msg: None)  # (libjack's messages would go to stdout)
lib.jack_set_info_function(QUIET)
lib.jack_set_error_function(QUIET)
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


def exists(port):
    return bool(lib.jack_port_by_name(c, port.encode()))


def look():
    """{direction: {rtvc port: [peer, ...]}}, rtvc's ports in JACK's order."""
    got = {}
    for d, flag in (("inputs", INPUT), ("outputs", OUTPUT)):
        got[d] = {}
        for p in names(lib.jack_get_ports(c, ("^" + NAME + ":").encode(), None, flag)):
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

    return {
        "inputs": [most(qs, CAPTURE) for qs in ports["inputs"].values()],
        "outputs": [most(qs, PLAYBACK) for qs in ports["outputs"].values()],
        "period": lib.jack_get_buffer_size(c),
    }


def links(ports):
    return {(d, p, q) for d, peers in ports.items() for p, qs in peers.items() for q in qs}


def client(port):
    return port.rsplit(":", 1)[0]


status = i32(0)
c = lib.jack_client_open(b"rtvc-watch", 0x01, ctypes.byref(status))  # JackNoStartServer
if not c:
    sys.stderr.write(f"could not open a JACK client (status 0x{status.value:x})\n")
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

now = look()
# the connections rtvc's ports should have (made again after a reopen, in port order): seen cut if they are not
before = {d: dict(ps) for d, ps in now.items()}
for d, wanted in (SEED.get("expected") or {}).items():
    for p, qs in zip(before.get(d, {}), wanted, strict=False):  # (as many as both have)
        before[d][p] = sorted(set(before[d][p]) | set(qs))
# (direction, rtvc port, peer): cut as the peer went away; connected again when it is back. A seed's rtvc port
# under this client's name (a reopen can rename it: rtvc-01)
lost = {(d, NAME + ":" + p.rsplit(":", 1)[1], q) for d, p, q in SEED.get("lost", [])}
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
    now = look()
    then, have = links(before), links(now)
    t = time.monotonic()
    for k in then - have:
        cut[k] = t
    dropped = []
    for k in have - then:  # a port connected by someone: what it waited for is no longer wanted there
        cut.pop(k, None)
        mine = {x for x in lost if x[:2] == k[:2] and x != k}
        lost -= mine
        dropped += sorted(mine)
    went = sorted(k for k in cut if client(k[2]) in went_clients or not exists(k[2]))
    for k in went:
        del cut[k]
        lost.add(k)
    for k in [k for k, when in cut.items() if t - when > GRACE_S]:
        del cut[k]  # (cut by the user: both ports stayed)
    back = []
    for k in sorted(lost):
        d, port, peer = k
        if exists(peer) and exists(port):
            a, b = (peer, port) if d == "inputs" else (port, peer)
            if lib.jack_connect(c, a.encode(), b.encode()) in (0, EEXIST):
                back.append(k)
    lost.difference_update(back)
    if went:
        say(lost=[list(k) for k in went])
    if back:
        say(restored=[list(k) for k in back])
        now = look()
    if dropped:
        say(dropped=[list(k) for k in dropped])
    before = now
    lat = latency(now)
    if lat != said_latency:
        said_latency = lat
        say(latency=lat)
