"""The child process of rtvc.audio.jack_links: `python -P -m rtvc.audio.jack_links_child COMMAND CLIENT [JSON]`.

- `snapshot CLIENT` prints {"inputs": [[peer, ...] per port], "outputs": [...]}, in the order of CLIENT's ports;
- `latency CLIENT` prints libjack.latency's answer for CLIENT's ports;
- `restore CLIENT JSON` makes CLIENT's ports' connections those of JSON (a snapshot's lists, for the directions it
  holds) and prints {"failed": [what it could not do], "gone": [[direction, port, peer] whose peer is gone]}.
Each answer is one line, "rtvc-links JSON". Exit 2: no JACK server to connect to.
"""

from __future__ import annotations

import json
import sys

from rtvc.audio.libjack import connect as jack_connect
from rtvc.audio.libjack import disconnect as jack_disconnect
from rtvc.audio.libjack import exists, lib, open_client, ports_and_peers
from rtvc.audio.libjack import latency as jack_latency


def restore(c, now: dict[str, dict[str, list[str]]], want: dict[str, list[list[str]]]) -> dict:
    failed, gone = [], []
    for d in ("inputs", "outputs"):
        for (port, peers), wanted in zip(now[d].items(), want.get(d, []), strict=False):  # (as many as both have)
            for peer in sorted(set(peers) - set(wanted)):
                if jack_disconnect(c, d, port, peer):
                    failed.append(f"disconnect {port} {peer}")
            for peer in sorted(set(wanted) - set(peers)):
                if not exists(c, peer):
                    gone.append([d, port, peer])  # (its program closed meanwhile: waited for)
                elif jack_connect(c, d, port, peer):
                    failed.append(f"connect {port} {peer}")
    return {"failed": failed, "gone": gone}


def main(argv: list[str]) -> int:
    c, _status = open_client(b"rtvc-links")
    if not c:
        return 2
    try:
        command, client = argv[0], argv[1]
        now = ports_and_peers(c, client)
        if command == "snapshot":
            answer: object = {d: list(ps.values()) for d, ps in now.items()}
        elif command == "latency":
            answer = jack_latency(c, now)
        else:
            answer = restore(c, now, json.loads(argv[2]))
        print("rtvc-links " + json.dumps(answer), flush=True)
        return 0
    finally:
        lib.jack_client_close(c)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
