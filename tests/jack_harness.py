"""Real audio callbacks without a sound card: a JACK server on the dummy backend, and two JACK clients that
take the sound card's place for rtvc: one plays a signal into rtvc's input port, the other records rtvc's
output port, both on JACK's one clock, so delays are exact frame counts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SAMPLERATE = 48000
# late_clients()'s entry for an xrun of the server itself (its clock thread woke late), not of a client
SERVER_LATE = "jackd"
# rtvc's own JACK client (rtvc.audio.devices.JACK_CLIENT), as a POSIX regex for jack's get_ports; JACK names a second
# one in the same server rtvc-01 (test clients here are named rtvc-mic, rtvc-late: not matched)
RTVC_PORTS = r"^rtvc(-[0-9]+)?:"


def is_rtvc_port(name: str) -> bool:
    return re.match(RTVC_PORTS, name) is not None


def steal_ms() -> float:
    """CPU time the hypervisor gave to others while this VM had work, all CPUs together (/proc/stat 'steal')."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) * 1000.0 / os.sysconf("SC_CLK_TCK")


def jack_tool(env: dict[str, str], *args: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
    """One JACK command-line tool (jack_wait, jack_lsp, jack_connect...) against the server `env` names.
    Each opens a JACK client, and opening one blocks inside libjack while the server is wedged: in CI a
    `jack_wait -t 1` never returned and took the whole run down at pytest's timeout. So every call has
    its own deadline; past it the tool is killed and the result says so (returncode 124, empty stdout),
    and the caller's own loop or check decides what that means."""
    try:
        return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(args), 124, "", f"{args[0]} did not return in {timeout:g} s")


def client_env(server: str) -> dict[str, str]:
    """The environment for a JACK client (tool or rtvc) of `server`, never starting a server of its own."""
    return {**os.environ, "JACK_DEFAULT_SERVER": server, "JACK_NO_START_SERVER": "1"}


def jack_port_latency(server: str, port: str) -> dict[str, int]:
    """What JACK says of a port's latency ({"capture": max, "playback": max} in frames), from `jack_lsp -l`."""
    out = jack_tool(client_env(server), "jack_lsp", "-l", port).stdout
    found = dict(re.findall(r"port (capture|playback) latency = \[ \d+ (\d+) \]", out))
    if set(found) != {"capture", "playback"}:
        raise RuntimeError(f"jack_lsp -l {port} said no latency: {out!r}")
    return {k: int(v) for k, v in found.items()}


def answering(server: str) -> None:
    """Raise unless the JACK server `server` answers a client within 5 s. Checked (in a killable process)
    before this process opens a client of its own, which would block inside libjack, out of any timeout's
    reach but pytest-timeout's, which ends the whole run."""
    probe = jack_tool(client_env(server), "jack_lsp")
    if probe.returncode != 0:
        raise RuntimeError(f"JACK server '{server}' is not answering: {(probe.stderr or probe.stdout).strip()[-300:]}")


class JackServer:
    """`jackd --no-realtime -d dummy`: clock-paced periods, no hardware."""

    def __init__(self, period: int, samplerate: int = SAMPLERATE, realtime: bool = False, role: str = "test"):
        self.period = period
        self.realtime = realtime
        self.samplerate = samplerate
        # A few fixed names: JACK keeps every server name it saw in a shared-memory registry of eight
        # slots, and a server that died uncleanly keeps its slot ("Too many servers already active").
        self.name = f"rtvc-{role}-{period}"
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"{self.name}.log"

    def start(self) -> None:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise RuntimeError("jackd not found: install jackd2 (`.ci/run` does; see README)")
        stale = jack_tool(client_env(self.name), "jack_wait", "-c")
        if stale.stdout.strip() == "running":  # (its tests would kill their own jackd, and this one play on)
            raise RuntimeError(
                f"a JACK server named '{self.name}' is already running (left by a test run that was killed?):"
                f" stop it (pkill -f 'jackd.*-n {self.name} ') and run the tests again"
            )
        self.proc = subprocess.Popen(
            [
                jackd,
                "--realtime" if self.realtime else "--no-realtime",
                "-n",
                self.name,
                "-d",
                "dummy",
                "-r",
                str(self.samplerate),
                "-p",
                str(self.period),
                "-C",
                "2",
                "-P",
                "2",
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"},
        )
        env = client_env(self.name)
        deadline = time.monotonic() + 20
        tries = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited: {self.log()}")
            ok = jack_tool(env, "jack_wait", "-w", "-t", "1")
            if "server is available" in ok.stdout:
                return
            tries.append((ok.stdout + ok.stderr).strip()[-200:])
        self.stop()
        said = tries[-3:]
        raise RuntimeError(f"jackd '{self.name}' did not come up in 20 s; jack_wait said {said}; log: {self.log()}")

    @property
    def realtime_in_effect(self) -> bool:
        """jackd goes on without SCHED_FIFO when the system refuses it; its log says so."""
        return self.realtime and "real-time scheduling" not in self.log().lower()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def late_clients(self) -> list[str]:
        """Who jackd blamed for each xrun so far, in order: a client's name ("client = NAME was not
        finished"), or SERVER_LATE where the server's own clock thread woke late ("JackTimedDriver::Process
        XRun = N usec"). JACK raises every client's xrun callback, PortAudio's flags too, for either kind;
        the second is the machine's, as a stall of jackd alone shows (SIGSTOP for 30 ms: that line, no
        client named)."""
        found = re.findall(r"XRun: client = (\S+) was not finished|(JackTimedDriver::Process XRun)", self.log())
        return [client or SERVER_LATE for client, _driver in found]

    def blame_states(self) -> list[tuple[str, str]]:
        """Like late_clients, with the state jackd found each blamed client in: "Triggered" (signalled, its
        thread not yet woken: the OS had not run it), "Running" (woken, not finished: its own processing), or ""
        for SERVER_LATE."""
        found = re.findall(
            r"XRun: client = (\S+) was not finished, state = (\S+)|(JackTimedDriver::Process XRun)", self.log()
        )
        return [(client, state) if client else (SERVER_LATE, "") for client, state, _driver in found]

    def start_reference(self) -> subprocess.Popen:
        """The C reference client (jack_simple_client) in this server's graph: when jackd blames it for an
        xrun, the machine, not rtvc, missed the deadline."""
        env = client_env(self.name)
        return subprocess.Popen(["jack_simple_client"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def portaudio_on(server: JackServer):
    """Point this process's PortAudio at `server` (PortAudio reads the device list only when it starts),
    and stop the server on the way out. PortAudio's JACK host API aborts the process if it is
    terminated after its server is gone, so PortAudio is always terminated first."""
    from rtvc.audio.devices import portaudio

    sd = portaudio()  # (rtvc's: it names PortAudio's JACK client before PortAudio starts)
    answering(server.name)
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    sd._terminate()
    sd._initialize()
    try:
        yield server
    finally:
        sd._terminate()
        server.stop()
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        sd._initialize()


class Harness:
    """Two JACK clients standing in for the sound card: "harness" plays `src` into rtvc, "harness-sink" records
    rtvc's output at `sink`, on JACK's clock (the frame time of each cycle). Two clients, not one: a client that
    both fed rtvc and recorded it made a feedback loop, which JACK runs one period late, and that period looked
    like the devices' latency (PortAudio's output latency for JACK, one period short of the sound card's, was the
    same number). Here JACK runs src, rtvc, sink in order within each cycle: port to port is rtvc's own delay."""

    def __init__(self, server: str):
        import jack

        answering(server)
        self.client = jack.Client("harness", servername=server, no_start_server=True)
        self.sink_client = jack.Client("harness-sink", servername=server, no_start_server=True)
        self.src = self.client.outports.register("src")
        self.sink = self.sink_client.inports.register("sink")
        self.period = self.client.blocksize
        self.samplerate = self.client.samplerate
        self.recording = np.zeros(0, dtype=np.float32)
        self._signal = np.zeros(0, dtype=np.float32)
        self._start: int | None = None  # JACK frame time of the signal's first frame (set by the src client)
        self._recording = False
        self._closing = False
        self.xruns = 0
        self._done = threading.Event()
        self._left = [threading.Event(), threading.Event()]  # each process thread saw _closing and is leaving
        self.client.set_process_callback(self._play)
        self.sink_client.set_process_callback(self._record)
        self.client.set_xrun_callback(self._xrun)  # (JACK tells every client of each xrun: one counts them)

    def _xrun(self, _delay) -> None:
        self.xruns += 1

    @staticmethod
    def _array(port, frames: int) -> np.ndarray:
        """The port's buffer for this cycle. JACK-Client's own get_array() asks libjack for the buffer
        size on every call, which deadlocks against a deactivate() running on another thread."""
        import jack

        ptr = jack._lib.jack_port_get_buffer(port._ptr, frames)
        return np.frombuffer(jack._ffi.buffer(ptr, frames * 4), dtype=np.float32)

    def _leave(self, k: int) -> None:
        # The thread leaves on its own (libjack ends a client whose process callback fails), so that deactivate()
        # finds it gone. Otherwise jack2 kills it with an asynchronous pthread_cancel, and a thread killed while
        # waiting for Python's GIL leaves the GIL's mutex locked: every thread of the test process then hangs
        # (seen once, with rtvc's worker on SCHED_FIFO making this one late).
        import jack

        self._left[k].set()
        raise jack.CallbackExit

    def _play(self, frames: int) -> None:
        if self._closing:
            self._leave(0)
        out = self._array(self.src, frames)
        if not self._recording:
            out.fill(0)
            return
        now = self.client.last_frame_time
        if self._start is None:
            self._start = now
        p, sig = now - self._start, self._signal
        n = max(0, min(frames, len(sig) - p))
        out[:n] = sig[p : p + n]
        out[n:] = 0

    def _record(self, frames: int) -> None:
        if self._closing:
            self._leave(1)
        start = self._start
        if not self._recording or start is None:
            return
        p = self.sink_client.last_frame_time - start  # (the same cycle's frame time as src's: same timeline)
        if p < 0:
            return
        m = max(0, min(frames, len(self.recording) - p))
        self.recording[p : p + m] = self._array(self.sink, frames)[:m]
        if p + frames >= len(self.recording):
            self._recording = False
            self._done.set()

    def __enter__(self) -> Harness:
        self.client.activate()
        self.sink_client.activate()
        return self

    def __exit__(self, *exc) -> None:
        self._closing = True  # the process callbacks stop touching libjack and end their threads (see _leave)
        for left in self._left:
            left.wait(5.0)
        time.sleep(max(0.05, 4 * self.period / self.samplerate))  # libjack ends the thread after the callback returns
        for c in (self.client, self.sink_client):
            c.deactivate()
            c.close()

    def wire(self) -> None:
        """Take the sound card's place: cut `system` from rtvc's ports and connect ours.

        rtvc's ports (one input, the first output) are its JACK client's; their numbers grow with each stream
        a process opens, so they are looked up.
        """
        ins = self.client.get_ports(RTVC_PORTS, is_audio=True, is_input=True)
        outs = self.client.get_ports(RTVC_PORTS, is_audio=True, is_output=True)
        if len(ins) != 1 or not outs:
            raise RuntimeError(f"expected one rtvc input port, found {[p.name for p in ins]}")
        into, out_of = ins[0].name, outs[0].name
        for port in (into, out_of):
            for other in self.client.get_all_connections(port):
                if other.name.startswith("system:"):
                    if port == into:
                        self.client.disconnect(other, port)
                    else:
                        self.client.disconnect(port, other)
        self.client.connect(self.src, into)
        self.client.connect(out_of, self.sink)

    def play_and_record(self, signal: np.ndarray, seconds: float) -> np.ndarray:
        """Play `signal` from frame 0 and record `seconds` of rtvc's output on the same timeline."""
        n = int(seconds * self.samplerate)
        self._signal = np.ascontiguousarray(signal, dtype=np.float32)
        self.recording = np.zeros(n, dtype=np.float32)
        self._start = None
        self._done.clear()
        self._recording = True
        if not self._done.wait(seconds + 10):
            raise TimeoutError("the JACK harness stopped getting process callbacks")
        return self.recording
