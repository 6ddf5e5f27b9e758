"""`devices.select` on a running `rtvc serve`, over real PortAudio callbacks on a JACK server.

PortAudio's JACK host API lists every JACK client with ports as a device, so a client made here,
"rtvc-mic", is a second sound card: it plays a 440 Hz tone at -12 dBFS. The daemon starts on "system"
(the dummy backend's capture: silence), is switched to "rtvc-mic" over the API and back, and a name
that matches nothing is refused while the current device keeps playing. What the daemon plays is
recorded from its JACK output port, so the test hears the switch, not only the daemon's meters.

A second client, "rtvc-late", made after the daemon started, is a headset plugged in later: PortAudio's list
does not hold it until it is read again, which devices.select does on its own for a name it does not find, and
devices.list does with `rescan`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from jack_harness import RTVC_PORTS, Harness, jack_port_latency
from websockets.sync.client import connect

pytestmark = [pytest.mark.jack, pytest.mark.timeout(120)]
jack = pytest.importorskip("jack", reason="needs the JACK-Client package (test extra)")
ROOT = Path(__file__).resolve().parent.parent
TONE_DB = -12.0
LATE_DB = -6.0


class Mic:
    """A JACK client: a tone on out_1 (the second "device"), and whatever reaches in_1 recorded."""

    def __init__(self, server: str, name: str = "rtvc-mic", tone_db: float = TONE_DB):
        os.environ["JACK_DEFAULT_SERVER"] = server
        self.client = jack.Client(name, no_start_server=True)
        self.out = self.client.outports.register("out_1")
        self.inp = self.client.inports.register("in_1")
        sr = self.client.samplerate
        self._phase = 0
        self._w = 2 * np.pi * 440.0 / sr
        self._amp = np.float32(10 ** (tone_db / 20))
        self._lock = threading.Lock()
        self._heard: list[np.ndarray] = []
        self._closing, self._left = False, threading.Event()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if self._closing:  # (its thread leaves before deactivate(): jack_harness.Harness._leave says why)
            self._left.set()
            raise jack.CallbackExit
        n = np.arange(self._phase, self._phase + frames)
        Harness._array(self.out, frames)[:] = self._amp * np.sin(self._w * n).astype(np.float32)
        self._phase += frames
        with self._lock:
            self._heard.append(Harness._array(self.inp, frames).copy())

    def listen_to(self, port: str) -> None:
        for p in list(self.inp.connections):
            self.client.disconnect(p, self.inp)
        self.client.connect(port, self.inp)

    def heard_db(self, seconds: float) -> float:
        with self._lock:
            self._heard.clear()
        time.sleep(seconds)
        with self._lock:
            x = np.concatenate(self._heard) if self._heard else np.zeros(1, np.float32)
        return 20 * np.log10(max(np.abs(x).max(), 1e-6))

    def take(self) -> np.ndarray:
        """What reached in_1 since the last take (or heard_db)."""
        with self._lock:
            got, self._heard = self._heard, []
        return np.concatenate(got) if got else np.zeros(0, np.float32)

    def rtvc_out_port(self) -> str:
        ports = [p.name for p in self.client.get_ports(RTVC_PORTS, is_audio=True, is_output=True)]
        assert ports, [p.name for p in self.client.get_ports()]
        return ports[0]

    def close(self) -> None:
        """Its process thread ends itself first: jack2's deactivate() cancels a thread still there, and one
        cancelled while it waits for Python's GIL leaves the GIL's mutex locked, hanging the whole test process
        (a CI run hung so in test_jack_routing_is_watched_..., even pytest-timeout's thread could not run)."""
        if not getattr(self, "_closed", False):  # (once: a test that failed between a close and a new Mic)
            self._closed = True
            self._closing = True
            self._left.wait(5.0)
            time.sleep(max(0.05, 4 * self.client.blocksize / self.client.samplerate))  # (libjack ends it after)
            self.client.deactivate()
            self.client.close()


class Program:
    """A JACK program in a process of its own: a client `name` playing a -9 dBFS tone on out_1 (with `records`, one
    with an input port in_1 too, as OBS); `kill()` ends it at once, as a program that crashes or is closed."""

    CODE = """
import sys, time, numpy as np, jack
c = jack.Client(sys.argv[1], no_start_server=True)
out = c.outports.register("out_1")
if sys.argv[2:]:
    c.inports.register("in_1")
n = [0]
w = 2 * np.pi * 440.0 / c.samplerate
def process(frames):
    out.get_array()[:] = 10 ** (-9 / 20) * np.sin(w * np.arange(n[0], n[0] + frames))
    n[0] += frames
c.set_process_callback(process)
c.activate()
print("ready", flush=True)
sys.stdin.read()
"""

    def __init__(self, server: str, name: str, records: bool = False):
        env = {**os.environ, "JACK_DEFAULT_SERVER": server, "JACK_NO_START_SERVER": "1"}
        args = [name, "records"] if records else [name]
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, *args], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Rpc:
    def __init__(self, port: int, token: str):
        self.ws = connect(f"ws://127.0.0.1:{port}/rpc?token={token}", open_timeout=10)
        self._id = 0
        self.events: list[dict] = []  # (the daemon's events that came in while waiting for replies)

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self._id:
                return msg
            if msg.get("method") == "event":
                self.events.append(msg["params"])


def reopen(rpc: Rpc, server: str) -> dict:
    """A reopen of the devices in use: devices.list with `rescan`, a device plugged in first (with nothing plugged in
    or out since the list was read, a rescan stops nothing: rtvc.audio.devices.listing_anew)."""
    plugged = Mic(server, "rtvc-plugged", -90.0)
    try:
        return rpc.call("devices.list", rescan=True)
    finally:
        plugged.close()


def wait_for(what: str, fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {value!r})"
        time.sleep(0.1)


class Served:
    """`rtvc serve` on the JACK server, on its "system" ports, with the passthrough voice."""

    def __init__(self, server: str, tmp_path: Path, virtual: bool = False, devices: list[str] | None = None):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tmp_path = tmp_path
        (tmp_path / "config.toml").write_text(f'[voice]\nprofile = "{ROOT / "profiles" / "passthrough.toml"}"\n')
        env = {**os.environ, "JACK_DEFAULT_SERVER": server, "JACK_NO_START_SERVER": "1",
               "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}  # fmt: skip
        self._log = (tmp_path / "serve.log").open("wb")
        if devices is None:
            devices = ["--virtual"] if virtual else ["--host-api", "JACK", "--input-device", "system",
                                                     "--output-device", "system", "--output-channels", "1"]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtvc", "serve", "--config", str(tmp_path / "config.toml"), "--port",
             str(self.port), *devices],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip

    def log(self) -> str:
        return (self.tmp_path / "serve.log").read_text(errors="replace")[-3000:]

    def connect(self) -> Rpc:
        token_file = self.tmp_path / "xdg" / "rtvc" / "token"
        wait_for("the token", lambda: token_file.exists() and self.proc.poll() is None, 30)

        def connected():
            assert self.proc.poll() is None, self.log()
            try:
                return Rpc(self.port, token_file.read_text().strip())
            except OSError:
                return None

        return wait_for("rtvc serve to listen", connected, 30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_switching_the_input_device_while_serving(jack_bare, tmp_path):
    mic = Mic(jack_bare.name)  # before the daemon starts: PortAudio lists the devices it sees at start
    served = Served(jack_bare.name, tmp_path)
    proc, serve_log = served.proc, served.log
    try:
        rpc = served.connect()
        listed = rpc.call("devices.list")["result"]
        assert listed["switchable"] is True, listed
        assert [d["name"] for d in listed["devices"] if d["name"] == "rtvc-mic"], listed["devices"]
        assert "system" in listed["in_use"]["input"], listed["in_use"]
        # a NUL in a name reached a JACK query's command line: an internal error with a traceback
        refused = rpc.call("devices.select", input="rtvc-mic\u0000")["error"]
        assert refused["code"] == -32602 and "without control characters ('\\x00' is one" in refused["message"], refused
        assert '"rtvc-mic\\u0000"' in refused["message"] and "Traceback" not in serve_log(), refused

        def in_peak() -> float:
            return rpc.call("status.get")["result"]["engine"]["levels"]["in_peak"]

        def devices_latency() -> tuple[int, int]:
            lat = rpc.call("status.get")["result"]["engine"]["latency"]
            return lat["device_in"], lat["device_out"]

        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")
        # the devices' latency is JACK's for the ports rtvc's are connected to: the sound card's at the start
        card = (
            jack_port_latency(jack_bare.name, "system:capture_1")["capture"],
            jack_port_latency(jack_bare.name, "system:playback_1")["playback"],
        )
        assert card == (256, 512)
        # (asked from a child process once the streams run: the engine runs a moment before the figures change)
        wait_for("JACK's figures in status", lambda: devices_latency() == card)
        assert "JACK ports' latency: 256 frames before rtvc's input, 512 after its output" in serve_log()
        mic.listen_to(mic.rtvc_out_port())
        assert in_peak() < -60 and mic.heard_db(0.5) < -60, "the dummy capture should be silence"

        switched = rpc.call("devices.select", input="rtvc-mic")
        assert "result" in switched, (switched, serve_log())
        assert "rtvc-mic" in switched["result"]["in_use"]["input"], switched
        # a program as the input: its port's capture latency (JACK's, as the client leaves it), the output's as before
        mic_in = jack_port_latency(jack_bare.name, "rtvc-mic:out_1")["capture"]
        assert devices_latency() == (mic_in, card[1]), (mic_in, serve_log())
        wait_for("the tone in the daemon's meters", lambda: abs(in_peak() - TONE_DB) < 1.0)
        mic.listen_to(mic.rtvc_out_port())  # the new stream's port
        heard = mic.heard_db(0.5)
        assert abs(heard - TONE_DB) < 1.0, f"the daemon plays {heard:.1f} dBFS after the switch"

        def quietest_period_db(x: np.ndarray) -> float:
            periods = x[: len(x) // 256 * 256].reshape(-1, 256)
            return float(20 * np.log10(max(np.sqrt((periods**2).mean(axis=1)).min(), 1e-9)))

        # a name no device has, nothing plugged in since (a Stream Deck key's typo): refused as it is, the voice not
        # stopped to read the device list again (a quarter of a second of silence, the answer saying the current
        # devices stayed): a new PortAudio, in a child process, lists no device the daemon's list lacks
        mic.take()
        refused = rpc.call("devices.select", input="no-such-mic")["error"]
        assert refused["code"] == -32002 and "no input device matches 'no-such-mic'" in refused["message"], refused
        after = rpc.call("devices.list", rescan=True)["result"]  # (the picker's "look again": nothing new either)
        assert "rtvc-mic" in after["in_use"]["input"] and "error" not in after, after
        heard = mic.take()
        assert len(heard) > 4800 and quietest_period_db(heard) > TONE_DB - 12, quietest_period_db(heard)
        assert "none was plugged in since the list was read" in serve_log(), serve_log()
        assert "lists the same devices; nothing stopped" in serve_log() and "device list read again" not in serve_log()

        late = Mic(jack_bare.name, "rtvc-late", LATE_DB)  # plugged in while the daemon runs
        try:
            names = [d["name"] for d in rpc.call("devices.list")["result"]["devices"]]
            assert "rtvc-late" not in names, names  # PortAudio's list as read at start

            # a JACK client by its exact name: rtvc's ports move to it, the list is not read again (that stops the
            # streams); in_use says it is not listed ("[-]") until the list is read again
            plugged = rpc.call("devices.select", input="rtvc-late")
            assert "result" in plugged, (plugged, serve_log())
            assert plugged["result"]["in_use"]["input"] == "[-] rtvc-late (JACK Audio Connection Kit)", plugged
            wait_for("the late device's tone in the meters", lambda: abs(in_peak() - LATE_DB) < 1.0)
            assert abs(mic.heard_db(0.5) - LATE_DB) < 1.0
            assert "rtvc's JACK ports moved to them" in serve_log() and "device list read again" not in serve_log()

            refused = rpc.call("devices.select", input="no-such-card")
            msg = refused["error"]["message"]
            assert refused["error"]["code"] == -32002, refused
            assert "devices not switched, the current ones stay" in msg and "no-such-card" in msg, msg
            assert "'rtvc-late'" in msg, "the refusal lists the input devices there are"
            assert "device list read again" in serve_log()  # (for a name no JACK client has either)
            assert "rtvc-late" in rpc.call("devices.list")["result"]["in_use"]["input"]
            mic.listen_to(mic.rtvc_out_port())
            assert abs(mic.heard_db(0.5) - LATE_DB) < 1.0, "the current device must keep playing after a refusal"

            again = rpc.call("devices.list", rescan=True)["result"]
            assert {"rtvc-mic", "rtvc-late"} <= {d["name"] for d in again["devices"]}, again
            assert "rtvc-late" in again["in_use"]["input"], again
            mic.listen_to(mic.rtvc_out_port())
            assert abs(mic.heard_db(0.5) - LATE_DB) < 1.0, "the devices in use play on after a rescan"

            back = rpc.call("devices.select", input="rtvc-mic")
            assert "rtvc-mic" in back["result"]["in_use"]["input"], back
            wait_for("the first tone again", lambda: abs(in_peak() - TONE_DB) < 1.0)
        finally:
            late.close()  # unplugged: its entry in the daemon's list is stale now

        stale = rpc.call("devices.select", input="rtvc-late")  # (opening the stale entry fails: looked for again)
        msg = stale["error"]["message"]
        assert stale["error"]["code"] == -32002 and "no input device matches 'rtvc-late'" in msg, stale
        assert "host error" not in msg and "rtvc-mic" in rpc.call("devices.list")["result"]["in_use"]["input"]

        usb = Mic(jack_bare.name, "rtvc-usb", LATE_DB)
        try:
            assert "rtvc-usb" in rpc.call("devices.select", input="rtvc-usb")["result"]["in_use"]["input"]
        finally:
            usb.close()  # the device in use unplugged (JACK keeps the stream: no failure to notice)
        gone = rpc.call("devices.list", rescan=True)["result"]  # the new list comes, with what happened
        assert "the input device 'rtvc-usb' (JACK Audio Connection Kit) is gone" in gone.get("error", ""), gone
        assert "rtvc-usb" not in {d["name"] for d in gone["devices"]} and "rtvc-usb" in gone["in_use"]["stopped"]
        assert rpc.call("status.get")["result"]["engine"]["state"] == "failed"
        again = rpc.call("devices.select", input="rtvc-mic")
        assert "rtvc-mic" in again["result"]["in_use"]["input"] and "stopped" not in again["result"]["in_use"]
        assert again["result"]["latency_ms"] < 1000, again  # (PortAudio said about 2^32 frames: JACK says 0)
        wait_for("the first tone after the lost device", lambda: abs(in_peak() - TONE_DB) < 1.0)

        back = rpc.call("devices.select", input="system")
        assert "system" in back["result"]["in_use"]["input"], back
        wait_for("silence again", lambda: in_peak() < -60)
        status = rpc.call("status.get")["result"]["engine"]
        assert status["state"] == "running", status
        assert "sound devices switched" in serve_log()
    finally:
        served.stop()
        mic.close()
    assert proc.returncode == 0, serve_log()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_jack_server_that_dies_under_serve_gets_one_answer_and_a_prompt_exit(jack_bare, tmp_path):
    """PortAudio cannot let go of a JACK server that died (its stop never returns; restarting it aborts the
    process). Every device change says to restart rtvc serve, in the same words; the daemon answers on, and
    stops when told to, without hanging on PortAudio or aborting in it."""
    served = Served(jack_bare.name, tmp_path)
    try:
        rpc = served.connect()

        def state() -> str:
            return rpc.call("status.get")["result"]["engine"]["state"]

        wait_for("the engine to run", lambda: state() == "running")
        jack_bare.stop()
        wait_for("the engine to see its device gone", lambda: state() in ("stalled", "failed"))
        answers = [rpc.call("devices.select", input="system"), rpc.call("devices.select", output="system")]
        for a in answers:
            assert a.get("error", {}).get("code") == -32004, (a, served.log())
            assert "restart rtvc serve" in a["error"]["message"], a
        listed = rpc.call("devices.list", rescan=True)["result"]  # the list as it was, and the same words
        said = {a["error"]["message"] for a in answers} | {listed["error"]}
        assert len(said) == 1, said
        assert "restart rtvc serve" in listed["in_use"]["stopped"], listed
        assert listed["switchable"] is False, listed  # (it said true, and the TUI offered a switch it refused)
        assert rpc.call("status.get")["result"]["engine"]["state"] == "failed"
        served.proc.terminate()
        code = served.proc.wait(20)
    finally:
        served.stop()
    out = served.log()
    assert code == 3, out  # EXIT_DEVICE_HUNG: gone without terminating PortAudio
    assert "Traceback" not in out and "Assertion" not in out, out


def call_once(daemon, method: str, **params):
    """One request on a connection of its own (a daemon that starts anew closes the ones it had)."""
    from daemon_harness import RpcClient
    from websockets.exceptions import InvalidHandshake

    try:
        rpc = RpcClient(daemon.port, daemon.token)
    except InvalidHandshake as e:  # (the serve before, its control server closing: HTTP 503, "shutting down")
        raise OSError(f"refused while a serve stops: {e}") from None
    try:
        return rpc.call(method, **params)
    finally:
        rpc.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_jack_server_restarted_under_serve_gets_rtvc_back_as_it_was(jack_bare, tmp_path):
    """The JACK server restarted under rtvc serve (as PipeWire's is, under pw-jack, by `systemctl --user restart
    pipewire`): PortAudio cannot let go of the old server, and rtvc stayed without sound until the user restarted
    it. Now serve starts anew by itself once the server runs again: the same process (PID), port and token, the
    same devices and live settings, and sound through it again (the C reference client's sine heard at its
    input). The test's own process stays off JACK (its client would be stuck on the old server too)."""
    from jack_daemon import JackDaemon

    daemon = JackDaemon(jack_bare.name, tmp_path, "passthrough")

    def call(method: str, **params):
        return call_once(daemon, method, **params)

    def answering_running():
        try:
            st = call("status.get")
        except (OSError, AssertionError, ValueError, TimeoutError) as e:  # (between the two processes)
            return ("not answering", repr(e))
        return st if st["engine"]["state"] == "running" else (st["engine"]["state"], st["engine"]["detail"])

    try:
        wait_for("the engine to run", lambda: isinstance(answering_running(), dict), 30)
        call("params.set", values={"gain_db": -6.0})
        call("mute.set", on=True)
        call("voice.set", on=False)
        call("ptt.mode", on=True)
        call("gate.set", on=True, threshold_db=-50.0)
        before = call("status.get")["control"]
        pid = daemon.proc.pid
        # config.toml edited into an error meanwhile (not read while serve runs): the new serve exited on it, its
        # voice and settings lost; it starts with the file as the serve before read it, and says so
        with (tmp_path / "config.toml").open("a") as f:
            f.write("[stream]\nblok_ms = 10\n")
        jack_bare.stop()
        time.sleep(1.0)
        jack_bare.start()
        t0 = time.monotonic()
        wait_for("rtvc to start anew", lambda: "stopping (to start anew)" in daemon.log(), 40)
        st = wait_for("rtvc to run again", lambda: isinstance(r := answering_running(), dict) and r, 40)
        print(f"running again {time.monotonic() - t0:.1f} s after the server")
        assert daemon.proc.poll() is None and daemon.proc.pid == pid, daemon.log()[-3000:]
        now = st["control"]
        for key in ("profile", "params", "mute", "voice_on", "gate", "monitor", "ptt"):
            assert now[key] == before[key], (key, now[key], before[key])
        calls = st["engine"]["callbacks"]
        daemon.feed_sine()  # (a client started on the new server, wired into rtvc's input)
        time.sleep(1.0)
        st = call("status.get")["engine"]
        assert st["callbacks"] > calls + 100 and st["levels"]["in_peak"] > -30, st
        log = daemon.log()
        assert "Traceback" not in log and log.count("control: ws://") == 2, log[-3000:]
        assert "config.toml has an error now (" in log and "unknown key 'stream.blok_ms'" in log, log[-3000:]
        assert "rtvc started anew with the file as it was before the edit" in log
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log()[-3000:]


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_jack_server_started_again_at_another_rate_keeps_serve_answering_until_it_is_right(jack_bare, tmp_path):
    """The JACK server restarted at 44.1 kHz under a serve at 48 kHz: the new serve's devices do not open. Its control
    port was closed while it looked for them (the TUI and the OBS dock saw no daemon, and no reason), and when the
    user started the server again at 48 kHz, reading the device list again aborted the process (PortAudio's JACK
    host API, on the server gone: `pa_jack.c: Terminate: Assertion`), the voice and settings lost. Now it answers
    meanwhile, with the reason, and starts anew once more when the server is started again."""
    from daemon_harness import RpcClient
    from jack_daemon import JackDaemon

    daemon = JackDaemon(jack_bare.name, tmp_path, "passthrough")

    def call(method: str, **params):
        return call_once(daemon, method, **params)

    def engine():
        try:
            return call("status.get")["engine"]
        except (OSError, AssertionError, ValueError, TimeoutError) as e:  # (between the two processes)
            return {"state": "not answering", "detail": repr(e)}

    try:
        wait_for("the engine to run", lambda: engine()["state"] == "running", 30)
        call("params.set", values={"gain_db": -6.0})
        pid = daemon.proc.pid
        jack_bare.stop()
        time.sleep(1.0)
        jack_bare.samplerate = 44100
        jack_bare.start()
        # (the serve before says the server was restarted, failed too: then the new one answers)
        st = wait_for("the new serve to answer", lambda: "48000 Hz" in (e := engine())["detail"] and e, 40)
        assert st["state"] == "failed" and "started anew and waits for its sound devices" in st["detail"], st
        rpc = RpcClient(daemon.port, daemon.token)
        try:
            with pytest.raises(AssertionError) as refused:
                rpc.call("devices.select", input="system")
            said = "'code': -32004, 'message': 'devices.select is not available yet: rtvc serve started anew and waits"
            assert said in str(refused.value) and "48000 Hz" in str(refused.value), refused.value
            listed = rpc.call("devices.list")
            assert "48000 Hz" in listed["in_use"]["resuming"] and not listed["switchable"], listed
            assert rpc.call("status.get")["control"]["params"]["gain_db"] == -6.0
            # changes made meanwhile are the serve's (a later start anew lost them: the state it started with)
            rpc.call("params.set", values={"gain_db": -3.0})
            rpc.call("mute.set", on=True)
        finally:
            rpc.close()
        jack_bare.stop()  # (and while no server runs, that is the reason said)
        gone = "the JACK server rtvc runs on is gone"
        wait_for("the reason to be the server gone", lambda: gone in engine()["detail"], 20)
        jack_bare.samplerate = 48000
        jack_bare.start()
        st = wait_for("rtvc to run again", lambda: (e := engine())["state"] == "running" and e, 40)
        assert daemon.proc.poll() is None and daemon.proc.pid == pid, daemon.log()[-3000:]
        assert st["samplerate"] == 48000 and st["detail"] == "", st
        control = call("status.get")["control"]
        assert control["params"]["gain_db"] == -3.0 and control["mute"] is True, control
        log = daemon.log()
        assert "Assertion" not in log and "Traceback" not in log, log[-3000:]
        assert "the JACK server was started again, and PortAudio cannot reach it from this process" in log
        assert "started anew (2 of at most 3 restarts" in log, log[-3000:]
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log()[-3000:]


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_serve_past_its_restarts_exits_with_the_reason_not_an_abort(jack_bare, tmp_path, monkeypatch):
    """Its restarts spent (3 in 10 minutes; two are made to have been), a serve waiting for its devices whose JACK
    server is started again cannot start anew: it said so, then PortAudio's exit handler aborted the process in the
    server gone (`pa_jack.c: Terminate: Assertion`, SIGABRT). It exits 2 (an error the user mends) with the reason."""
    from jack_daemon import JackDaemon

    monkeypatch.setenv("RTVC_RESTARTS", f"{time.time() - 60:.3f},{time.time() - 30:.3f}")
    daemon = JackDaemon(jack_bare.name, tmp_path, "passthrough")
    try:
        wait_for("the engine to run", lambda: "engine running" in daemon.log(), 30)
        jack_bare.stop()
        time.sleep(1.0)
        jack_bare.samplerate = 44100
        jack_bare.start()
        wait_for("the new serve to wait", lambda: "does not support 48000 Hz" in daemon.log(), 40)
        jack_bare.stop()
        time.sleep(1.0)
        jack_bare.samplerate = 48000
        jack_bare.start()
        code = daemon.proc.wait(40)
    finally:
        daemon.stop()
    log = daemon.log()
    assert code == 2, (code, log[-3000:])
    assert "has started anew 3 times in 10 minutes already (restart rtvc serve)" in log, log[-3000:]
    assert "Assertion" not in log and "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_virtual_daemon_that_listed_jack_devices_survives_the_server(jack_bare, tmp_path):
    """`rtvc serve --virtual` listed the devices (PortAudio then holds the JACK server), and the server died: the
    list is not read again (PortAudio would abort the process), the reply says why, and the daemon exits
    cleanly (PortAudio's exit handler used to abort in its JACK host API)."""
    served = Served(jack_bare.name, tmp_path, virtual=True)
    try:
        rpc = served.connect()
        assert "system" in {d["name"] for d in rpc.call("devices.list")["result"]["devices"]}
        jack_bare.stop()
        refused = rpc.call("devices.list", rescan=True)
        assert refused["error"]["code"] == -32004, refused
        assert "the JACK server rtvc started on no longer answers" in refused["error"]["message"], refused
        assert rpc.call("status.get")["result"]["engine"]["state"] == "running"  # (the virtual device plays on)
        served.proc.terminate()
        code = served.proc.wait(20)
    finally:
        served.stop()
    out = served.log()
    assert code == 0 and "Assertion" not in out and "Traceback" not in out, out


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_reopen_of_the_same_devices_keeps_the_jack_routing(jack_bare, tmp_path):
    """A user routes rtvc in JACK: a mic client into rtvc's input, rtvc's output into an OBS-like client, the
    system ports cut. A refused devices.select (a mistyped name reads the device list again, which reopens the
    streams) and a rescan put the ports back on system:*: the stream went silent while status said running. The
    same devices reopened now keep their connections (rtvc.audio.jack_links)."""
    mic = Mic(jack_bare.name)
    served = Served(jack_bare.name, tmp_path)
    try:
        rpc = served.connect()
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")

        def rtvc_ports(inputs: bool) -> list[str]:
            ports = mic.client.get_ports(RTVC_PORTS, is_audio=True, is_input=inputs, is_output=not inputs)
            return [p.name for p in ports]

        def route() -> tuple[list[str], list[str]]:
            into, out_of = rtvc_ports(True)[0], rtvc_ports(False)[0]
            peers_in = [p.name for p in mic.client.get_all_connections(into)]
            peers_out = [p.name for p in mic.client.get_all_connections(out_of)]
            return peers_in, peers_out

        into, out_of = rtvc_ports(True)[0], rtvc_ports(False)[0]
        for p in mic.client.get_all_connections(into):
            mic.client.disconnect(p, into)
        for p in mic.client.get_all_connections(out_of):
            mic.client.disconnect(out_of, p)
        mic.client.connect(mic.out, into)
        mic.listen_to(out_of)
        assert route() == (["rtvc-mic:out_1"], ["rtvc-mic:in_1"])
        assert abs(mic.heard_db(0.5) - TONE_DB) < 1.0  # the tone through rtvc (passthrough) and back

        refused = rpc.call("devices.select", input="no-such-card")
        assert refused["error"]["code"] == -32002, refused
        wait_for("the routing back", lambda: route() == (["rtvc-mic:out_1"], ["rtvc-mic:in_1"]), 10)
        assert abs(mic.heard_db(0.5) - TONE_DB) < 1.0, "the stream went silent after the refused switch"

        reopen(rpc, jack_bare.name)
        wait_for("the routing after a rescan", lambda: route() == (["rtvc-mic:out_1"], ["rtvc-mic:in_1"]), 10)
        assert abs(mic.heard_db(0.5) - TONE_DB) < 1.0
        # another input device: PortAudio connects the input to it, and the output keeps its route (not system:*)
        assert "rtvc-mic" in rpc.call("devices.select", input="rtvc-mic")["result"]["in_use"]["input"]
        wait_for("the output's route after a switch of the input", lambda: route()[1] == ["rtvc-mic:in_1"], 10)
        assert route()[0] == ["rtvc-mic:out_1"]
        assert "JACK connections of rtvc's ports restored" in served.log()
    finally:
        served.stop()
        mic.close()


def longest_silence_ms(x: np.ndarray, samplerate: int = 48000) -> float:
    """The longest run of samples under -80 dBFS (a tone at -12 dBFS is under it for one sample at a zero crossing)."""
    quiet = np.concatenate([[0], (np.abs(x) < 1e-4).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(quiet))
    runs = edges[1::2] - edges[0::2]
    return 1e3 * (runs.max() if runs.size else 0) / samplerate


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_switch_between_jack_devices_moves_rtvcs_ports_and_the_voice_runs_on(jack_bare, tmp_path):
    """On JACK a device is another client on the same server: a switch that keeps the streams' shape (channels, one
    stream or two, a monitor or none) moves rtvc's running ports to the new device's, and nothing stops. Each switch
    reopened the streams before: a gap in the voice, which a rescan (a reopen still) shows here."""
    # (a name with brackets: JACK finds a client's ports by a regular expression, where they are no letters)
    one, two = Mic(jack_bare.name, "rtvc-mic"), Mic(jack_bare.name, "rtvc mic (2)", LATE_DB)
    usb = Mic(jack_bare.name, "USB Headset.1", -15.0)  # (listed; its name holds the late "Headset.1"'s)
    ear = Mic(jack_bare.name, "rtvc-ear", -90.0)  # (what rtvc plays, recorded block by block)
    # speakers: a client with an input port only, listed by PortAudio as an output device (never activated: no
    # process thread to end before its close)
    sink = jack.Client("rtvc-sink", no_start_server=True)
    sink.inports.register("in_1")
    devices = ["--host-api", "JACK", "--input-device", "rtvc-mic", "--output-device", "system"]
    devices += ["--output-channels", "1"]
    served = Served(jack_bare.name, tmp_path, devices=devices)
    late = flaky = program = headset = None
    try:
        rpc = served.connect()

        def engine() -> dict:
            return rpc.call("status.get")["result"]["engine"]

        wait_for("the first tone in the meters", lambda: abs(engine()["levels"]["in_peak"] - TONE_DB) < 1.0)
        port = ear.rtvc_out_port()
        ear.listen_to(port)
        wait_for("the tone at the ear", lambda: abs(ear.heard_db(0.2) - TONE_DB) < 1.0)
        underruns = engine()["xruns"]["output_underrun_events"]

        # started after rtvc: not in PortAudio's list; named exactly, it is taken before "USB Headset.1", listed
        late = Mic(jack_bare.name, "Headset.1", -3.0)
        for k, (name, db) in enumerate((("rtvc mic (2)", LATE_DB), ("Headset.1", -3.0), ("rtvc-mic", TONE_DB))):
            ear.take()
            time.sleep(0.4)
            got = rpc.call("devices.select", input=name)
            assert got["result"]["in_use"]["input"].split("] ", 1)[1].startswith(f"{name} ("), (got, served.log())
            time.sleep(0.4)
            heard = ear.take()
            assert heard.size > 0.7 * 48000, heard.size  # (the ear's own callbacks ran on)
            gap = longest_silence_ms(heard)
            assert gap < 1.0, f"{gap:.1f} ms of silence in the switch to {name}"
            tail = 20 * np.log10(np.abs(heard[-4800:]).max())
            assert abs(tail - db) < 1.0, f"{tail:.1f} dBFS after the switch to {name}"
            assert ear.rtvc_out_port() == port, "the streams were reopened (a new port)"
            whole = (tmp_path / "serve.log").read_text(errors="replace")
            assert whole.count("rtvc's JACK ports moved to them") == k + 1, served.log()
        assert engine()["xruns"]["output_underrun_events"] == underruns
        assert engine()["state"] == "running"
        # the device in use asked for again: kept, and no change said (it logged "sound devices switched" and sent
        # a `devices` event)
        said = (tmp_path / "serve.log").read_text(errors="replace").count("sound devices switched (by")
        assert said >= 3, served.log()  # (the three switches above)
        again = rpc.call("devices.select", input="rtvc-mic")["result"]
        assert "rtvc-mic" in again["in_use"]["input"] and "changed" not in again, again
        time.sleep(0.3)
        whole = (tmp_path / "serve.log").read_text(errors="replace")
        assert "devices kept (the same devices: nothing stopped)" in whole, served.log()
        assert whole.count("sound devices switched (by") == said, served.log()
        # a device named the wrong way round (speakers, as the input) is refused as such, and the audio runs on
        # (it was "no input device matches", after the list was read again: the streams stopped for 336 ms)
        ear.take()
        time.sleep(0.3)
        wrong = rpc.call("devices.select", input="rtvc-sink")
        assert "error" in wrong and wrong["error"]["code"] == -32002, (wrong, served.log())
        assert "'rtvc-sink' is an output device (no input channels)" in wrong["error"]["message"], wrong
        time.sleep(0.3)
        assert longest_silence_ms(ear.take()) < 1.0, "the refused select stopped the audio"
        assert "reading the device list again" not in (tmp_path / "serve.log").read_text(errors="replace")[len(whole) :]
        # the devices' latency: JACK's for the ports rtvc's are connected to now (a client that declares none: 0)
        assert engine()["latency"]["device_in"] == jack_port_latency(jack_bare.name, "rtvc-mic:out_1")["capture"]

        # a reopen (the list read again) leaves a gap, heard by the same measure
        ear.take()
        reopen(rpc, jack_bare.name)
        wait_for("the ear reconnected", lambda: ear.rtvc_out_port() in [p.name for p in ear.inp.connections])
        time.sleep(0.4)
        gap = longest_silence_ms(ear.take())
        assert gap > 5.0, f"a reopen of the streams left only {gap:.1f} ms of silence"

        # a program moved to that closes at once, before the JACK watch that starts with the move first looks: said,
        # and connected again when it is back (the watch knows the connections the move made). A process of its own,
        # killed: a client closed in this process just after it opened once left this process's lock held for good
        program = Program(jack_bare.name, "rtvc-flaky")
        assert "rtvc-flaky" in rpc.call("devices.select", input="rtvc-flaky")["result"]["in_use"]["input"]
        program.kill()

        def waiting() -> list:
            return rpc.call("devices.list")["result"]["in_use"].get("waiting", [])

        lost = wait_for("the loss said", waiting)
        assert [q for _p, q in lost] == ["rtvc-flaky:out_1"] and lost[0][0].startswith("rtvc:in_"), lost
        flaky = Mic(jack_bare.name, "rtvc-flaky", -9.0)
        wait_for("the program's tone again", lambda: abs(engine()["levels"]["in_peak"] + 9.0) < 1.0)
        assert waiting() == []

        # part of the name of speakers listed (rtvc-sink), and of a microphone plugged in since: the list is read
        # again and the microphone taken (refused as "an output device", it was not looked for)
        headset = Mic(jack_bare.name, "rtvc-sink mic", -6.0)
        got = rpc.call("devices.select", input="rtvc-sin")
        assert "result" in got and "rtvc-sink mic" in got["result"]["in_use"]["input"], (got, served.log())
        wait_for("the headset's tone", lambda: abs(engine()["levels"]["in_peak"] + 6.0) < 1.0)
    finally:
        served.stop()
        if program is not None:
            program.kill()
        for m in (one, two, usb, ear, late, flaky, headset):
            if m is not None:
                m.close()
        sink.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_switch_of_speakers_keeps_the_programs_the_user_connected_rtvcs_output_to(jack_bare, tmp_path):
    """A streamer connects rtvc's output to OBS (here "rtvc-obs") beside the speakers PortAudio connected. A switch of
    speakers cut every connection of the ports it moved, and a reopen on other devices made only PortAudio's: the
    voice left the stream without a word. Only the old device's connections are cut now, by a move and by a reopen."""
    mic = Mic(jack_bare.name, "rtvc-mic")
    obs = Mic(jack_bare.name, "rtvc-obs", -90.0)
    speakers = Mic(jack_bare.name, "rtvc-speakers", -90.0)
    devices = ["--host-api", "JACK", "--input-device", "rtvc-mic", "--output-device", "system"]
    served = Served(jack_bare.name, tmp_path, devices=[*devices, "--output-channels", "1"])
    recorder = None
    try:
        rpc = served.connect()
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")
        port = obs.rtvc_out_port()
        obs.client.connect(port, obs.inp)  # (beside system:playback_1, which PortAudio connected)

        def peers() -> list[str]:
            return sorted(p.name for p in obs.client.get_all_connections(port))

        assert peers() == ["rtvc-obs:in_1", "system:playback_1"]
        wait_for("the tone in OBS", lambda: abs(obs.heard_db(0.2) - TONE_DB) < 1.0)

        # a move (the same shape: one channel, two streams): no gap in OBS either
        obs.take()
        got = rpc.call("devices.select", output="rtvc-speakers")
        assert "rtvc-speakers" in got["result"]["in_use"]["output"], (got, served.log())
        assert "rtvc's JACK ports moved to them" in served.log()
        assert peers() == ["rtvc-obs:in_1", "rtvc-speakers:in_1"]
        time.sleep(0.3)
        assert longest_silence_ms(obs.take()) < 1.0
        assert abs(speakers.heard_db(0.3) - TONE_DB) < 1.0

        # a recorder the user connected too, closed (crashed) just before the next switch: waited for
        recorder = Program(jack_bare.name, "rtvc-rec", records=True)
        obs.client.connect(port, "rtvc-rec:in_1")
        time.sleep(1.0)  # (the JACK watch has seen the connection)
        recorder.kill()

        def waiting() -> list:
            return rpc.call("devices.list")["result"]["in_use"].get("waiting", [])

        wait_for("the recorder waited for", lambda: [q for _p, q in waiting()] == ["rtvc-rec:in_1"])

        # a reopen (the microphone's client for the speakers too: one duplex stream, another shape): OBS connected
        # again to the new output port, the old speakers' connection not made again, the recorder still waited for
        got = rpc.call("devices.select", output="rtvc-mic")
        assert "rtvc-mic" in got["result"]["in_use"]["output"], (got, served.log())
        port = obs.rtvc_out_port()
        wait_for("OBS connected again", lambda: peers() == ["rtvc-mic:in_1", "rtvc-obs:in_1"], 10)
        assert abs(obs.heard_db(0.3) - TONE_DB) < 1.0
        assert abs(mic.heard_db(0.3) - TONE_DB) < 1.0
        assert waiting() == [[port, "rtvc-rec:in_1"]]  # (on the new port: PortAudio numbered them anew)
        recorder = Program(jack_bare.name, "rtvc-rec", records=True)
        wait_for("the recorder connected again", lambda: "rtvc-rec:in_1" in peers(), 10)
        assert waiting() == []
    finally:
        served.stop()
        if recorder is not None:
            recorder.kill()
        for m in (mic, obs, speakers):
            m.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
@pytest.mark.parametrize("first", ["system", "rtvc-speakers"])
def test_a_switch_between_mono_and_stereo_speakers_moves_rtvcs_ports_too(jack_bare, tmp_path, first):
    """The voice is the same on every output channel: where rtvc chose how many (up to 2), a switch from stereo
    speakers ("system") to mono ones (a headset's mono profile) or back moves rtvc's ports too (it reopened the
    streams: a gap): one mono port on both speakers' ports, or the first of two on the mono one. A reopen after such
    a move (a rescan) opens as many channels as the device has, and each role's ports get their own connections
    (they were restored by place, the monitor's shifted onto the output's)."""
    mic = Mic(jack_bare.name, "rtvc-mic")
    speakers = Mic(jack_bare.name, "rtvc-speakers", -90.0)  # (one playback port: in_1)
    obs = Mic(jack_bare.name, "rtvc-obs", -90.0)
    phones = Mic(jack_bare.name, "rtvc-phones", -90.0)  # (hear-myself's: its port after the output's)
    devices = ["--host-api", "JACK", "--input-device", "rtvc-mic", "--output-device", first]
    served = Served(jack_bare.name, tmp_path, devices=[*devices, "--monitor-device", "rtvc-phones"])
    try:
        rpc = served.connect()
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")

        def rtvc_ports() -> list[str]:
            return [p.name for p in obs.client.get_ports(RTVC_PORTS, is_audio=True, is_output=True)]

        ports = rtvc_ports()
        assert len(ports) == (3 if first == "system" else 2), ports
        obs.client.connect(ports[0], obs.inp)
        wait_for("the tone in OBS", lambda: abs(obs.heard_db(0.2) - TONE_DB) < 1.0)

        def peers() -> list[list[str]]:
            return [sorted(q.name for q in obs.client.get_all_connections(p) if q.name != "rtvc-obs:in_1")
                    for p in ports]  # fmt: skip

        playback, ear = ["system:playback_1", "system:playback_2"], [["rtvc-phones:in_1"]]
        stereo = [playback[:1], playback[1:], *ear] if len(ports) == 3 else [playback, *ear]
        mono = [["rtvc-speakers:in_1"], [], *ear] if len(ports) == 3 else [["rtvc-speakers:in_1"], *ear]
        steps = [("rtvc-speakers", mono), ("system", stereo)]
        for k, (name, want) in enumerate(steps if first == "system" else steps[::-1]):
            obs.take()
            time.sleep(0.3)
            got = rpc.call("devices.select", output=name)
            assert name in got["result"]["in_use"]["output"], (got, served.log())
            time.sleep(0.3)
            whole = (tmp_path / "serve.log").read_text(errors="replace")
            assert whole.count("rtvc's JACK ports moved to them") == k + 1, served.log()
            assert peers() == want
            assert longest_silence_ms(obs.take()) < 1.0, f"a gap in OBS at the switch to {name}"
            if name == "rtvc-speakers":
                assert abs(speakers.heard_db(0.3) - TONE_DB) < 1.0
        assert rtvc_ports() == ports
        assert rpc.call("status.get")["result"]["engine"]["xruns"]["output_underrun_events"] == 0

        # once more to the other speakers (the streams' channels not the device's now), then a reopen
        other = "rtvc-speakers" if first == "system" else "system"
        assert other in rpc.call("devices.select", output=other)["result"]["in_use"]["output"]
        reopen(rpc, jack_bare.name)
        ports = rtvc_ports()
        fresh = [["rtvc-speakers:in_1"], *ear] if other == "rtvc-speakers" else [playback[:1], playback[1:], *ear]
        wait_for("the reopened ports' connections", lambda: peers()[: len(fresh)] == fresh and len(ports) == 3 - (
            other == "rtvc-speakers"), 10)  # fmt: skip
        assert "rtvc-obs:in_1" in [q.name for q in obs.client.get_all_connections(ports[0])]
    finally:
        served.stop()
        for m in (mic, speakers, obs, phones):
            m.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_jack_devices_whose_names_portaudio_reads_as_a_pattern_run(jack_bare, tmp_path):
    """PortAudio's JACK host API (19.6, Debian's and Ubuntu's) finds a client's ports by a regular expression made of
    its name, unescaped: PipeWire's JACK names devices by their description, "... Speaker + Headphones" on Intel
    laptops, "... (HDMI)", and PortAudio listed those with no channels: rtvc could not use them at all ("no input
    device matches"). Their streams open on another JACK device now, and rtvc's ports are moved to them. Its pattern
    is not anchored either: "Phones" counted and connected "USB Phones"'s ports too (hear-myself here)."""
    mic = Mic(jack_bare.name, "Mic (USB)")
    speakers = Mic(jack_bare.name, "Speaker + Headphones", -90.0)
    phones, usb_phones = Mic(jack_bare.name, "Phones", -90.0), Mic(jack_bare.name, "USB Phones", -90.0)
    env = {**os.environ, "JACK_DEFAULT_SERVER": jack_bare.name, "JACK_NO_START_SERVER": "1"}
    listing = subprocess.run([sys.executable, "-m", "rtvc", "devices"], env=env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    rows = {ln[5:41].strip(): ln.split()[-3:-1] for ln in listing.stdout.splitlines() if "JACK" in ln}
    for name in ("Speaker + Headphones", "Mic (USB)", "Phones"):
        assert rows.get(name) == ["1", "1"], listing.stdout
    config = tmp_path / "doctor.toml"
    config.write_text('[audio]\nhost_api = "JACK"\ninput_device = "Mic (USB)"\noutput_device = "Phones"\n')
    doctor = subprocess.run([sys.executable, "-m", "rtvc", "doctor", "--config", str(config)], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    said = [ln for ln in doctor.stdout.splitlines() if "sound devices" in ln]
    why = "'Mic (USB), Phones': PortAudio's JACK host API reads the name as a pattern"
    assert said and why in said[0], doctor.stdout
    devices = ["--host-api", "JACK", "--input-device", "Mic (USB)", "--output-device", "Speaker + Headphones"]
    served = Served(jack_bare.name, tmp_path, devices=[*devices, "--monitor-device", "Phones"])
    try:
        rpc = served.connect()
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")

        def peers() -> tuple[list[str], list[str]]:
            got = []
            for inputs in (True, False):
                ports = mic.client.get_ports(RTVC_PORTS, is_audio=True, is_input=inputs, is_output=not inputs)
                got.append(sorted(q.name for p in ports for q in mic.client.get_all_connections(p)))
            return got[0], got[1]

        assert rpc.call("monitor.set", on=True)["result"]["on"] is True
        for k in range(2):
            wait_for("the tone at the speakers", lambda: abs(speakers.heard_db(0.2) - TONE_DB) < 1.0)
            wait_for("the tone in the phones", lambda: abs(phones.heard_db(0.2) - TONE_DB) < 1.0)
            assert usb_phones.heard_db(0.2) < -80.0
            assert peers() == (["Mic (USB):out_1"], ["Phones:in_1", "Speaker + Headphones:in_1"])
            whole = (tmp_path / "serve.log").read_text(errors="replace")
            assert whole.count("opens on [0] system (JACK Audio Connection Kit) first") == 3 * (k + 1), served.log()
            engine = rpc.call("status.get")["result"]["engine"]
            assert engine["latency"]["device_in"] == jack_port_latency(jack_bare.name, "Mic (USB):out_1")["capture"]
            listed = reopen(rpc, jack_bare.name) if k == 0 else rpc.call("devices.list")  # (the same way again)
            in_use = listed["result"]["in_use"]
            assert "Speaker + Headphones" in in_use["output"] and "Mic (USB)" in in_use["input"], in_use
        assert rpc.call("status.get")["result"]["engine"]["xruns"]["output_underrun_events"] == 0
    finally:
        served.stop()
        for m in (mic, speakers, phones, usb_phones):
            m.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_device_that_closes_right_after_the_streams_reopened_on_it_is_waited_for(jack_bare, tmp_path):
    """A switch that reopens the streams (here from one duplex stream on "system" to two) and a program chosen as the
    microphone that closes at once, before the JACK watch that starts with the new streams first looks: the watch
    knew only the connections rtvc made again, not PortAudio's, and the program was never said nor connected again
    when it was back."""
    served = Served(jack_bare.name, tmp_path)
    program = flaky = None
    try:
        rpc = served.connect()
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")
        program = Program(jack_bare.name, "rtvc-flaky")
        got = rpc.call("devices.select", input="rtvc-flaky")
        program.kill()
        assert "rtvc-flaky" in got["result"]["in_use"]["input"], got
        assert "rtvc's JACK ports moved" not in served.log()  # (a reopen)

        def waiting() -> list:
            return rpc.call("devices.list")["result"]["in_use"].get("waiting", [])

        lost = wait_for("the loss said", waiting)
        assert [q for _p, q in lost] == ["rtvc-flaky:out_1"], lost
        # status said running with nothing wrong (the loss an event alone, 12 s on the dock): a review
        engine = rpc.call("status.get")["result"]["engine"]
        gone = "the input device 'rtvc-flaky' is gone (its JACK program closed): the voice hears no microphone until"
        assert engine["state"] == "running" and engine["unheard"].startswith(gone), engine["unheard"]
        assert engine["detail"] == engine["unheard"], engine["detail"]
        flaky = Mic(jack_bare.name, "rtvc-flaky", -9.0)
        wait_for("the program's tone", lambda: abs(rpc.call("status.get")["result"]["engine"]["levels"]["in_peak"]
                                                   + 9.0) < 1.0)  # fmt: skip
        assert waiting() == []
        engine = rpc.call("status.get")["result"]["engine"]
        assert engine["unheard"] == "" and engine["detail"] == "", engine
    finally:
        served.stop()
        if program is not None:
            program.kill()
        if flaky is not None:
            flaky.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_device_whose_name_a_later_clients_ends_with_is_opened_by_a_move(jack_bare, tmp_path):
    """PortAudio's pattern for "Headset" finds "USB Headset"'s ports too, and connects the first JACK lists: a
    client that came after the list was read, in a slot another client freed, took rtvc's output at the next reopen
    while rtvc said "Headset" (a helper's hunt). Such a device is opened by a move at each open (JACK asked then)."""
    freed = Mic(jack_bare.name, "rtvc-gone", -90.0)
    headset = Mic(jack_bare.name, "Headset", -90.0)
    mic = Mic(jack_bare.name, "rtvc-mic")
    served = Served(jack_bare.name, tmp_path)
    usb = None
    try:
        rpc = served.connect()
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")
        freed.close()
        time.sleep(0.3)
        usb = Mic(jack_bare.name, "USB Headset", -90.0)  # (in the slot rtvc-gone freed: JACK lists its ports first)
        # another shape (two streams, a monitor): a reopen, on the list as read before "USB Headset" came
        got = rpc.call("devices.select", input="rtvc-mic", output="Headset", monitor="system")
        assert "Headset" in got["result"]["in_use"]["output"], (got, served.log())
        assert "rtvc's JACK ports moved to them" not in served.log()
        wait_for("the tone in the headset", lambda: abs(headset.heard_db(0.2) - TONE_DB) < 1.0)
        assert usb.heard_db(0.3) < -80.0, "the voice went to USB Headset"
        assert "PortAudio's device list read again" not in served.log()
    finally:
        served.stop()
        for m in (headset, mic, usb):
            if m is not None:
                m.close()


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_jack_routing_is_watched_reroutes_counted_and_restarted_programs_reconnected(jack_bare, tmp_path):
    """Under JACK the user routes rtvc in a patchbay, and programs at the other end come and go (rtvc.audio.
    jack_watch). Rerouting rtvc from the sound card to programs (one feeding it, one recording it) changes the
    devices' latency to JACK's figures for the new peers (it went on counting the sound card's until a reopen). The
    programs closing is said (a `routing` event, devices.list's in_use.waiting), and when they start again they are
    connected again: the tone comes through once more. A connection the user cuts, its program closing after, is not
    made again."""
    served = Served(jack_bare.name, tmp_path)
    mic, rec = Mic(jack_bare.name), Mic(jack_bare.name, "rtvc-rec")
    try:
        rpc = served.connect()
        assert "result" in rpc.call("events.subscribe", events=["state"])
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")

        def devices_latency() -> tuple[int, int]:
            lat = rpc.call("status.get")["result"]["engine"]["latency"]
            return lat["device_in"], lat["device_out"]

        def waiting() -> list[list[str]]:
            return sorted(rpc.call("devices.list")["result"]["in_use"].get("waiting", []))

        def peers(port: str) -> list[str]:
            return [p.name for p in mic.client.get_all_connections(port)]

        wait_for("the sound card's figures", lambda: devices_latency() == (256, 512))
        out_of = mic.rtvc_out_port()
        into = out_of.replace(":out_", ":in_")
        mic.client.disconnect("system:capture_1", into)
        mic.client.connect("rtvc-mic:out_1", into)
        rec.listen_to(out_of)
        mic.client.disconnect(out_of, "system:playback_1")
        # the new peers' figures: the programs' ports declare none (not sound cards)
        new = (
            jack_port_latency(jack_bare.name, "rtvc-mic:out_1")["capture"],
            jack_port_latency(jack_bare.name, "rtvc-rec:in_1")["playback"],
        )
        assert new == (0, 0)
        wait_for("the new routing's latency", lambda: devices_latency() == new, 5)
        assert "JACK ports' latency (JACK's graph around rtvc changed): 0 frames before" in served.log()
        assert abs(rec.heard_db(0.5) - TONE_DB) < 1.0

        mic.close()  # the programs close: their connections go
        rec.close()
        lost = [[into, "rtvc-mic:out_1"], [out_of, "rtvc-rec:in_1"]]
        wait_for("the loss said", lambda: waiting() == lost, 5)
        assert f"JACK: {into} lost its connection to rtvc-mic:out_1" in served.log()
        said = [e for e in rpc.events if e.get("changed") == ["routing"]]  # (as the TUI and the dock get it)
        assert said and all(e["by"] == "jack" for e in said), rpc.events[-3:]
        assert sorted(p for e in said for p in e["routing"]["lost"]) == lost, said
        # (one event for both, or one each where they closed a watch report apart)
        errors = " | ".join(e["error"] for e in said)
        assert all("rtvc connects" in e["error"] and "again when" in e["error"] for e in said), errors
        assert "rtvc-mic" in errors and "rtvc-rec" in errors and "(gone from rtvc-" in errors, errors
        mic, rec = Mic(jack_bare.name), Mic(jack_bare.name, "rtvc-rec")  # and start again
        wait_for("the connections made again", lambda: not waiting(), 5)
        assert (peers(into), peers(out_of)) == (["rtvc-mic:out_1"], ["rtvc-rec:in_1"])
        heard = rec.heard_db(0.5)
        assert abs(heard - TONE_DB) < 1.0, f"the restarted programs hear {heard:.1f} dBFS"
        assert f"JACK: {into} connected to rtvc-mic:out_1 again" in served.log()
        back = [e["routing"]["restored"] for e in rpc.events if e.get("changed") == ["routing"]]
        assert sorted(p for r in back for p in r) == lost, back

        mic.client.disconnect("rtvc-mic:out_1", into)  # the user cuts the input...
        time.sleep(1.0)
        mic.close()  # ...then both programs close and come back: only the output's connection is made again
        rec.close()
        wait_for("the output's loss said", lambda: waiting() == [[out_of, "rtvc-rec:in_1"]], 5)
        mic, rec = Mic(jack_bare.name), Mic(jack_bare.name, "rtvc-rec")
        wait_for("the output connected again", lambda: not waiting(), 5)
        time.sleep(1.0)
        assert (peers(into), peers(out_of)) == ([], ["rtvc-rec:in_1"])

        # a reopen of the devices (a rescan) while a program is waited for: it still is, and is connected when back
        rec.close()
        wait_for("the recorder waited for", lambda: waiting() == [[out_of, "rtvc-rec:in_1"]], 5)
        assert "error" not in reopen(rpc, jack_bare.name)
        out_of = mic.rtvc_out_port()  # (the new streams')
        assert waiting() == [[out_of, "rtvc-rec:in_1"]]
        rec = Mic(jack_bare.name, "rtvc-rec")
        wait_for("the recorder connected after the reopen", lambda: peers(out_of) == ["rtvc-rec:in_1"], 5)
        wait_for("nothing waited for", lambda: not waiting(), 5)
        # a program that restarts at once (its client closed and opened again within milliseconds)
        rec.close()
        rec = Mic(jack_bare.name, "rtvc-rec")
        wait_for("the restarted recorder connected", lambda: peers(out_of) == ["rtvc-rec:in_1"], 5)
        # the user connects rtvc's output elsewhere while the recorder is away: it is no longer waited for
        rec.close()
        wait_for("the recorder waited for", lambda: waiting() == [[out_of, "rtvc-rec:in_1"]], 5)
        mic.client.connect(out_of, "system:playback_1")
        wait_for("no longer waited for", lambda: not waiting(), 5)
        rec = Mic(jack_bare.name, "rtvc-rec")
        time.sleep(1.0)
        assert peers(out_of) == ["system:playback_1"]
        dropped = [e["routing"]["dropped"] for e in rpc.events if e.get("changed") == ["routing"]]
        assert [[out_of, "rtvc-rec:in_1"]] in dropped, dropped

        # a program that comes back and connects one port of a pair itself (a session manager): the other is still
        # connected again, not dropped as if the user had connected rtvc elsewhere
        def pair() -> jack.Client:
            c = jack.Client("rtvc-pair", no_start_server=True)
            c.inports.register("in_1")
            c.inports.register("in_2")
            c.activate()
            return c

        p = pair()
        for q in ("rtvc-pair:in_1", "rtvc-pair:in_2"):
            mic.client.connect(out_of, q)
        wait_for("the pair connected", lambda: {"rtvc-pair:in_1", "rtvc-pair:in_2"} <= set(peers(out_of)), 5)
        time.sleep(0.5)  # (seen connected)
        p.deactivate()
        p.close()
        wait_for("the pair waited for", lambda: len(waiting()) == 2, 5)
        p = pair()
        p.connect(out_of, "rtvc-pair:in_1")
        try:
            wait_for("both connected", lambda: {"rtvc-pair:in_1", "rtvc-pair:in_2"} <= set(peers(out_of)), 5)
            wait_for("nothing waited for", lambda: not waiting(), 5)
            dropped = [d for e in rpc.events if e.get("changed") == ["routing"] for d in e["routing"]["dropped"]]
            assert [out_of, "rtvc-pair:in_2"] not in dropped, dropped
        finally:
            p.deactivate()
            p.close()
    finally:
        served.stop()
        mic.close()
        rec.close()
    assert served.proc.returncode == 0, served.log()


def _watch_children(pid: int) -> list[int]:
    """The pids of serve's JACK-watch children."""
    got = subprocess.run(["pgrep", "-P", str(pid), "-f", "rtvc.audio.jack_watch_child"], capture_output=True, text=True)
    return [int(p) for p in got.stdout.split()]


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_killed_jack_watch_starts_again_and_what_it_waited_for_is_still_connected(jack_bare, tmp_path):
    """The JACK watch's child killed (by hand, or the kernel out of memory): rtvc went on unwatched until the next
    reopen (a program it fed that closed was never connected again). Another starts, handed what was waited for;
    one killed again and again is given up, said in the log."""
    served = Served(jack_bare.name, tmp_path)
    mic, rec = Mic(jack_bare.name), Mic(jack_bare.name, "rtvc-rec")
    try:
        rpc = served.connect()
        wait_for("the engine to run", lambda: rpc.call("status.get")["result"]["engine"]["state"] == "running")

        def waiting() -> list[list[str]]:
            return sorted(rpc.call("devices.list")["result"]["in_use"].get("waiting", []))

        out_of = rec.rtvc_out_port()
        mic.client.connect("rtvc-mic:out_1", out_of.replace(":out_", ":in_"))
        rec.listen_to(out_of)
        first = wait_for("the watch", lambda: _watch_children(served.proc.pid))
        time.sleep(0.5)  # (the recorder's connection seen)
        rec.close()
        wait_for("the recorder waited for", lambda: waiting() == [[out_of, "rtvc-rec:in_1"]], 5)
        os.kill(first[0], signal.SIGKILL)
        wait_for("another watch", lambda: (_watch_children(served.proc.pid) or first) != first, 10)
        assert "JACK routing: the watch ended (the watch was killed by signal 9)" in served.log()
        assert "JACK routing: the watch starts again" in served.log()
        assert waiting() == [[out_of, "rtvc-rec:in_1"]]
        rec = Mic(jack_bare.name, "rtvc-rec")
        wait_for("the recorder connected again", lambda: not waiting(), 5)
        assert "rtvc-rec:in_1" in [p.name for p in rec.client.get_all_connections(out_of)]
        assert abs(rec.heard_db(0.5) - TONE_DB) < 1.0

        for _ in range(3):  # killed again and again: given up, said
            now = wait_for("a watch", lambda: _watch_children(served.proc.pid), 10)
            os.kill(now[0], signal.SIGKILL)
            wait_for("it gone", lambda n=now: n[0] not in _watch_children(served.proc.pid), 5)
        wait_for("the watch given up", lambda: "killed 4 times within a minute: not started again" in served.log(), 10)
        time.sleep(1.0)
        assert not _watch_children(served.proc.pid)
        assert served.log().count("JACK routing: the watch starts again") == 3, served.log()
        # a reopen of the devices starts it again (and its count anew: a kill then is one)
        assert "error" not in reopen(rpc, jack_bare.name)
        now = wait_for("the watch after the reopen", lambda: _watch_children(served.proc.pid), 10)
        os.kill(now[0], signal.SIGKILL)
        wait_for("it started again", lambda: served.log().count("JACK routing: the watch starts again") == 4, 10)
        assert rpc.call("status.get")["result"]["engine"]["state"] == "running"
    finally:
        mic.close()
        rec.close()
        served.stop()


def test_which_chosen_device_is_gone_is_said_in_the_status_words():
    """engine.unheard's words for the JACK programs lost (rtvc.audio.switch.devices_gone): the hear-myself device's
    loss said nothing in status (a review), and programs the user connected rtvc to (OBS) are no device of its."""
    from types import SimpleNamespace

    from rtvc.audio.switch import devices_gone

    choice = SimpleNamespace(
        input=SimpleNamespace(name="USB mic"), output=SimpleNamespace(name="system"),
        monitor=SimpleNamespace(name="WH-1000XM4"),
    )  # fmt: skip
    said = devices_gone(choice, [["outputs", "rtvc:out_2", "WH-1000XM4:playback_FL"]])
    assert said.startswith("the hear-myself device 'WH-1000XM4' is gone (its JACK program closed): you do not hear"), (
        said
    )
    both = devices_gone(
        choice, [["inputs", "rtvc:in_1", "USB mic:capture_1"], ["outputs", "rtvc:out_2", "WH-1000XM4:playback_FL"]]
    )
    assert both.startswith(
        "the input device 'USB mic' and the hear-myself device 'WH-1000XM4' are gone (their JACK programs closed): the"
        " voice hears no microphone and you do not hear yourself until they are back"
    ), both
    assert devices_gone(choice, [["outputs", "rtvc:out_1", "obs:in_1"]]) == ""
    assert devices_gone(None, [["inputs", "rtvc:in_1", "USB mic:capture_1"]]) == ""
