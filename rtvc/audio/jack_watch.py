"""Watching the JACK graph around rtvc's ports while `rtvc serve` runs on JACK.

Two things change there without rtvc doing anything:
- the user reroutes rtvc's ports (a patchbay: rtvc's output from system:playback to OBS). The devices' part of the
  declared latency is JACK's figure for the ports rtvc is connected to (rtvc.audio.io: jack_latency), asked at start
  and after each reopen only, so it went on counting the sound card's playback after the output went to OBS;
- a program rtvc is connected to closes (a noise suppressor feeding rtvc's input, the "device" the user chose in
  rtvc, or OBS recording its output, restarted). JACK drops its connections, rtvc runs on in silence, status said
  running, and when the program came back nothing connected it again.

So while rtvc's streams run on JACK a child process (jack_watch_child) holds a JACK client of its own (no ports,
no process callback: it is no part of the audio cycle) that JACK tells of every connection, port, client and latency
change. After each burst of changes (WAIT_S of quiet) it looks at rtvc's ports and prints one JSON line per finding,
connections as [direction ("inputs" or "outputs"), rtvc's port, the other port]:
- {"latency": {inputs, outputs, period}}: the figures rtvc.audio.jack_links.port_latency gives, when they changed;
- {"lost": [...]}: connections whose other port's program closed (its client went, even if it is back already: a
  program that restarts at once), or whose other port went away;
- {"restored": [...]}: those connected again once a port of that name is there;
- {"dropped": [...]}: those no longer waited for, since the user connected rtvc's port to something else (rtvc
  does not mix in a second source the user chose against);
- {"gone": true}: the JACK server shut down (the child ends).
A connection cut while both ports stay (the user did it) is not restored. A reopen of rtvc's streams (a rescan, a
switch, a recovery) starts a new child, seeded with what is still waited for and with the connections the ports
should have again, so that a program that closes meanwhile is seen. The child is a process of its own for the
reason rtvc.audio.jack_links gives (libjack blocks while a server is stopped); it ends when the server shuts down
and when rtvc closes the pipe it reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from rtvc.audio.jack_links import child_env

log = logging.getLogger("rtvc")
WAIT_S = 0.15  # a burst of JACK's notifications (a client closing: disconnects, ports, the client) is read as one
GRACE_S = 0.5  # a cut connection whose peer port is gone within this long was lost with its program (one
# that deactivates, then closes)


class JackWatch:
    """The child for rtvc's JACK client `name`. `on_line(what)` gets each of its findings (a dict, see above), on a
    thread of its own. `seed`: {"lost": [...], "expected": {direction: [[peer, ...] per port]}} (see the child).
    `on_died()`: the child was killed (a signal: not asked, nor the server's shutdown, nor a server it could not
    reach), on that thread: the watch's owner starts another."""

    def __init__(
        self,
        name: str,
        on_line: Callable[[dict[str, Any]], None],
        seed: dict[str, Any] | None = None,
        on_died: Callable[[], None] | None = None,
    ):
        self.name = name
        self._on_line = on_line
        self._on_died = on_died
        self._stopped = False
        try:
            args = [name, str(WAIT_S), str(GRACE_S), json.dumps(seed or {})]
            self._proc: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, "-P", "-m", "rtvc.audio.jack_watch_child", *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=child_env(),
            )
        except OSError as e:  # (no process to be had: out of memory or processes)
            log.info("JACK routing: not watched (%s): a reroute of rtvc's ports is not seen until a reopen", e)
            self._proc = None
            return
        threading.Thread(target=self._read, name="rtvc-jack-watch", daemon=True).start()

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None
        try:
            self._take_lines(proc)
        finally:
            # the pipes go with the watch: left to the garbage collector, each device rescan (a new watch) kept
            # two more fds open, 16 after a few minutes (a soak test)
            for pipe in (proc.stdout, proc.stderr, proc.stdin):
                with contextlib.suppress(OSError, ValueError):
                    if pipe is not None:
                        pipe.close()

    def _take_lines(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
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
        if self._stopped:
            return
        if code != 0:
            err = proc.stderr.read().strip() if proc.stderr else ""
            err = err or (f"the watch was killed by signal {-code}" if code < 0 else f"the watch exited with {code}")
            if code < 0 and self._on_died is not None:
                log.info("JACK routing: the watch ended (%s)", err[-200:])
                self._on_died()
                return
            log.info(
                "JACK routing: not watched (%s): a reroute of rtvc's ports or a program that closes is not seen"
                " until the devices reopen",
                err[-200:],
            )
        else:
            log.info("JACK routing: the JACK server shut down; the watch starts again with the devices")

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
