"""The child process of rtvc.audio.jack_links: `python -P -m rtvc.audio.jack_links_child COMMAND CLIENT [JSON]`.

- `snapshot CLIENT` prints {"inputs": [[peer, ...] per port], "outputs": [...], "ports": {"inputs": [CLIENT's port,
  ...], "outputs": [...]}}, in the order of CLIENT's ports;
- `latency CLIENT` prints libjack.latency's answer for CLIENT's ports;
- `route CLIENT JSON` connects CLIENT's ports to another device's, JSON [[direction, first port, count, device,
  old device, the device's ports], ...]: the `count` ports of `direction` from the `first` (in CLIENT's order) to
  that device's first ports (those PortAudio would connect a stream on it to; as many as the last figure says,
  `count` where it is left out: where they differ, the n-th port to the n-th, the last of CLIENT's to each port
  beyond, and CLIENT's ports beyond the device's to none), all connected before their other connections to the old
  device's and the new one's ports are cut (a moment of both rather than of neither; their connections to other
  programs, which the user made, stay); prints {"ports": [CLIENT's ports moved], "failed": [what it could not do],
  "before" and "after": CLIENT's connections before and after, as `snapshot` prints them} (a device without enough
  ports is one thing it could not do);
- `ports DEVICE` prints {"capture": n, "playback": n, "names": [...]}: how many audio ports JACK client DEVICE has
  that rtvc's inputs, and its outputs, would connect to, and the names of the first (in PortAudio's order);
- `counts - JSON` prints {device: [capture, playback]} for each client named in JSON's list, as `ports` counts;
- `clients -` prints the names of the JACK clients with audio ports, sorted;
- `restore CLIENT JSON` makes CLIENT's ports' connections those of JSON ({direction: [[peer, ...] per port]}, as a
  snapshot's; a port whose list is null is left as it is) and prints {"failed": [what it could not do], "gone":
  [[direction, port, peer] whose peer is gone], "after": CLIENT's connections then, as `snapshot` prints them};
- `add CLIENT JSON` makes the connections of JSON (as restore's) and cuts none; prints as restore does.
Each answer is one line, "rtvc-links JSON". Exit 2: no JACK server to connect to.
"""

from __future__ import annotations

import json
import sys

from rtvc.audio.libjack import AUDIO, EEXIST, device_ports, exists, lib, names, open_client, ports_and_peers
from rtvc.audio.libjack import connect as jack_connect
from rtvc.audio.libjack import disconnect as jack_disconnect
from rtvc.audio.libjack import latency as jack_latency


def restore(c, now: dict[str, dict[str, list[str]]], want: dict[str, list[list[str]]], cut: bool = True) -> dict:
    failed, gone = [], []
    for d in ("inputs", "outputs"):
        for (port, peers), wanted in zip(now[d].items(), want.get(d, []), strict=False):  # (as many as both have)
            if wanted is None:  # (a port left as it is)
                continue
            for peer in sorted(set(peers) - set(wanted)) if cut else ():
                if jack_disconnect(c, d, port, peer):
                    failed.append(f"disconnect {port} {peer}")
            for peer in sorted(set(wanted) - set(peers)):
                if not exists(c, peer):
                    gone.append([d, port, peer])  # (its program closed meanwhile: waited for)
                elif jack_connect(c, d, port, peer):
                    failed.append(f"connect {port} {peer}")
    return {"failed": failed, "gone": gone}


def route(c, client: str, now: dict[str, dict[str, list[str]]], groups: list[list]) -> dict:
    moved, failed = [], []
    for d, first, count, device, old, *rest in groups:
        wanted = rest[0] if rest else count  # (the device's ports to play on: rtvc's are spread over them)
        ports = list(now[d].items())[first : first + count]
        theirs = device_ports(c, device, d)[:wanted]
        if len(ports) < count or len(theirs) < wanted:
            failed.append(f"find {count} {d} of rtvc's from {first} ({len(ports)}) and {wanted} of {device} ({theirs})")
            continue
        new: dict[str, list[str]] = {port: [] for port, _peers in ports}
        for k, peer in enumerate(theirs):  # (one mono port on both of stereo speakers; the second of two unused)
            new[ports[min(k, count - 1)][0]].append(peer)
        made = True
        for port, peers in new.items():
            for peer in peers:
                if jack_connect(c, d, port, peer) not in (0, EEXIST):
                    failed.append(f"connect {port} {peer}")
                    made = False
        if not made:  # (the old device still connected: the caller reopens)
            continue
        for port, peers in ports:
            moved.append(port)
            devices = (old, device)  # (JACK splits a port's name at its first colon)
            for was in sorted(q for q in peers if q not in new[port] and q.split(":", 1)[0] in devices):
                if jack_disconnect(c, d, port, was):
                    failed.append(f"disconnect {port} {was}")
    after = ports_and_peers(c, client)
    return {"ports": moved, "failed": failed, "before": snapshot(now), "after": snapshot(after)}


def snapshot(now: dict[str, dict[str, list[str]]]) -> dict:
    return {**{d: list(ps.values()) for d, ps in now.items()}, "ports": {d: list(ps) for d, ps in now.items()}}


def main(argv: list[str]) -> int:
    c, _status = open_client(b"rtvc-links")
    if not c:
        return 2
    try:
        command, client = argv[0], argv[1]
        if command == "clients":
            ports = names(lib.jack_get_ports(c, None, AUDIO, 0))
            print("rtvc-links " + json.dumps(sorted({p.split(":", 1)[0] for p in ports})), flush=True)
            return 0
        if command == "counts":
            counts = {d: [len(device_ports(c, d, "inputs")), len(device_ports(c, d, "outputs"))]
                      for d in json.loads(argv[2])}  # fmt: skip
            print("rtvc-links " + json.dumps(counts), flush=True)
            return 0
        if command == "ports":
            capture = device_ports(c, client, "inputs")
            counts = {"capture": len(capture), "playback": len(device_ports(c, client, "outputs")), "names": capture}
            print("rtvc-links " + json.dumps(counts), flush=True)
            return 0
        now = ports_and_peers(c, client)
        if command == "snapshot":
            answer: object = snapshot(now)
        elif command == "latency":
            answer = jack_latency(c, now)
        elif command == "route":
            answer = route(c, client, now, json.loads(argv[2]))
        elif command in ("restore", "add"):
            answer = restore(c, now, json.loads(argv[2]), cut=command == "restore")
            answer["after"] = snapshot(ports_and_peers(c, client))
        else:
            sys.stderr.write(f"no command {command!r}\n")
            return 2
        print("rtvc-links " + json.dumps(answer), flush=True)
        return 0
    finally:
        lib.jack_client_close(c)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
