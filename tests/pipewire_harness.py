"""A private PipeWire with WirePlumber, and impulses through rtvc on it, for tests/test_pipewire_live.py and
bench/latency_pipewire.py.

PipeWire is the sound server of most Linux desktops; a program reaches it through its ALSA plugin (device
"pipewire", what "default" is there) or its JACK library (pw-jack). Here it runs with a dummy driver (48 kHz, a
fixed quantum) and two null sinks that stand in for the sound card: "mic" (rtvc's input: its monitor ports are a
source) and "speakers" (rtvc's output). WirePlumber links rtvc's streams to them as it would to a real card; its
hardware monitors are off, and it has its own D-Bus session, runtime, config and state folders, so a desktop's
own PipeWire and sound card are not touched. Two JACK clients (PipeWire's libjack, by pw-jack, in a child
process) play impulses into mic and record speakers' monitor on the graph's clock. Both null sinks pass audio
through within a cycle and declare no latency, so port to port is rtvc's whole path: what the ALSA plugin or the
JACK ports buffer (the devices' part) and rtvc's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SR = 48000
EVERY = SR // 2  # an impulse every half second
NEEDS = {  # program: the Debian package that has it
    "pipewire": "pipewire",
    "wireplumber": "wireplumber",
    "pw-jack": "pipewire-jack",
    "pw-cli": "pipewire-bin",
    "dbus-run-session": "dbus-daemon",
}
ALSA_PLUGIN = "libasound_module_pcm_pipewire.so"  # (pipewire-alsa)


def missing() -> list[str]:
    """The packages this needs that are not installed."""
    gone = [pkg for prog, pkg in NEEDS.items() if shutil.which(prog) is None]
    plugin = list(Path("/usr/lib").glob(f"**/alsa-lib/{ALSA_PLUGIN}")) + list(
        Path("/usr/lib64").glob(f"**/{ALSA_PLUGIN}")
    )
    return gone + ([] if plugin else ["pipewire-alsa"])


_SERVER_CONF = """
context.properties = {{
    core.daemon = true
    core.name = pipewire-0
    default.clock.rate = {rate}
    default.clock.quantum = {quantum}
    default.clock.min-quantum = {quantum}
    default.clock.max-quantum = {max_quantum}
    support.dbus = false
}}
context.spa-libs = {{
    audio.convert.* = audioconvert/libspa-audioconvert
    support.* = support/libspa-support
}}
context.modules = [
    {{ name = libpipewire-module-protocol-native }}
    {{ name = libpipewire-module-metadata }}
    {{ name = libpipewire-module-spa-node-factory }}
    {{ name = libpipewire-module-client-node }}
    {{ name = libpipewire-module-access args = {{ }} }}
    {{ name = libpipewire-module-adapter }}
    {{ name = libpipewire-module-link-factory }}
]
context.objects = [
    {{ factory = metadata args = {{ metadata.name = default }} }}
    {{ factory = spa-node-factory args = {{ factory.name = support.node.driver node.name = Dummy-Driver
        node.group = pipewire.dummy priority.driver = 20000 }} }}
    {{ factory = spa-node-factory args = {{ factory.name = support.node.driver node.name = Freewheel-Driver
        priority.driver = 19000 node.group = pipewire.freewheel node.freewheel = true }} }}
{sinks}
]
"""
_NODE = """{{ factory.name = support.null-audio-sink node.name = "{name}"
        media.class = "{cls}" audio.position = [ MONO ] node.group = pipewire.dummy node.always-process = true
        priority.session = 2000
        object.linger = true adapter.auto-port-config = {{ mode = dsp monitor = true control = false
        position = preserve }} }}"""
_SINK = "    {{ factory = adapter args = " + _NODE + " }}"
# (priority.session: as a sound card's nodes have it; WirePlumber makes the highest the default, over a virtual source
# such as rtvc's own "rtvc voice")
# WirePlumber without its hardware monitors, in the config forms of 0.4 (Lua) and 0.5 (SPA-JSON)
_WP_LUA = "alsa_monitor.enabled = false\nv4l2_monitor.enabled = false\nlibcamera_monitor.enabled = false\n"
_WP_CONF = (
    "wireplumber.profiles = { main = { monitor.alsa = disabled, monitor.alsa-midi = disabled, "
    "monitor.bluez = disabled, monitor.v4l2 = disabled, monitor.libcamera = disabled } }\n"
)

# The impulse clients, run under pw-jack: src plays an impulse every EVERY frames of the graph's clock into
# a port (mic:input_MONO), sink records another (speakers:monitor_MONO); after a warm-up, each impulse's delay
# (frames) mod EVERY.
_IMPULSES = r"""
import json, sys, time, numpy as np, jack
every, warm, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
into, out_of = sys.argv[4], sys.argv[5]
src = jack.Client("impulse-src", no_start_server=True)
snk = jack.Client("impulse-sink", no_start_server=True)
out, inp = src.outports.register("out"), snk.inports.register("in")
got = []
def play(frames):
    t = src.last_frame_time
    buf = out.get_array()
    buf[:] = 0
    buf[(np.arange(t, t + frames) % every) == 0] = 0.5
def record(frames):
    got.append((snk.last_frame_time, inp.get_array().copy()))
src.set_process_callback(play)
snk.set_process_callback(record)
src.activate()
snk.activate()
src.connect(out, into)
snk.connect(out_of, inp)
time.sleep(warm)
got.clear()
time.sleep(seconds)
heard = list(got)
delays = [int((t + k) % every) for t, a in heard for k in np.flatnonzero(np.abs(a) > 0.25)]
print("impulses " + json.dumps(delays))
"""


class PipeWire:
    """A private PipeWire and WirePlumber (own runtime, config and state folders, own D-Bus session)."""

    def __init__(self, quantum: int, max_quantum: int = 0, user_config: bool = False, own_default: bool = True):
        """`quantum`: the graph's, and its minimum (what rtvc asks does not lower it); `max_quantum`: what
        `force_quantum` may raise it to (the quantum when 0); `user_config`: PipeWire reads its config as on a desktop,
        from XDG_CONFIG_HOME/pipewire/pipewire.conf, with the drop-ins in pipewire.conf.d/ beside it (given by path,
        it reads none); `own_default`: PipeWire makes the "default" metadata itself (else WirePlumber does, as on a
        desktop: made anew when WirePlumber restarts, restart_wireplumber)."""
        self.quantum = quantum
        self.dir = Path(tempfile.mkdtemp(prefix="rtvc-pw-"))
        for sub in ("run", "config/wireplumber/main.lua.d", "config/wireplumber/wireplumber.conf.d", "state"):
            (self.dir / sub).mkdir(parents=True)
        os.chmod(self.dir / "run", 0o700)
        sinks = ",\n".join(
            _SINK.format(name=n, cls=c) for n, c in (("speakers", "Audio/Sink"), ("mic", "Audio/Source/Virtual"))
        )
        self.conf = self.dir / "config" / "pipewire" / "pipewire.conf" if user_config else self.dir / "pipewire.conf"
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        conf = _SERVER_CONF.format(rate=SR, quantum=quantum, max_quantum=max_quantum or quantum, sinks=sinks)
        if not own_default:
            conf = conf.replace("    { factory = metadata args = { metadata.name = default } }\n", "")
            assert "metadata.name = default" not in conf
        self.conf.write_text(conf)
        (self.dir / "config/wireplumber/main.lua.d/51-rtvc-bench.lua").write_text(_WP_LUA)
        (self.dir / "config/wireplumber/wireplumber.conf.d/51-rtvc-bench.conf").write_text(_WP_CONF)
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.dir / "run"),
            "XDG_CONFIG_HOME": str(self.dir / "config"),
            "XDG_STATE_HOME": str(self.dir / "state"),
            "PIPEWIRE_RUNTIME_DIR": str(self.dir / "run"),
        }
        self.env.pop("JACK_DEFAULT_SERVER", None)
        self.proc: subprocess.Popen | None = None
        self._wireplumbers: list[subprocess.Popen] = []  # (started again by restart_wireplumber: a session of its own)

    def __enter__(self) -> PipeWire:
        try:
            try:
                self._start()
            except RuntimeError as e:  # (as restart: PipeWire's own start, seen in full runs only, passing alone)
                print(f"PipeWire's start, tried again: {e}", file=sys.stderr)
                self._start()
        except RuntimeError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    def _start(self) -> None:
        """PipeWire and WirePlumber, until they serve the null sinks and WirePlumber has named the default microphone
        and speakers, as a desktop's session has by the time a user starts rtvc (RuntimeError, both stopped, if not
        in 40 s: a CI run once had none 10 s after WirePlumber connected, and rtvc, which waits 5 s for them, refused
        to start; another, twice, did not have them in 20 s, the log saying nothing)."""
        by = "" if self.conf.parent.name == "pipewire" else f" -c {self.conf}"
        script = f"pipewire{by} & sleep 1; wireplumber & wait"
        self.log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            ["dbus-run-session", "--", "bash", "-c", script],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline, nudge = time.monotonic() + 40, time.monotonic() + 8
        missing = "nothing asked yet"
        while time.monotonic() < deadline:
            ports = subprocess.run(["pw-jack", "jack_lsp"], env=self.env, capture_output=True, text=True).stdout
            clients = subprocess.run(["pw-cli", "ls", "Client"], env=self.env, capture_output=True, text=True).stdout
            have_ports = "mic:capture_MONO" in ports and "speakers:monitor_MONO" in ports
            have_wp = "WirePlumber" in clients
            missing = "the null sinks' ports" if not have_ports else "WirePlumber" if not have_wp else "the defaults"
            if have_ports and have_wp:
                named = subprocess.run(["pw-metadata", "-n", "default", "0"], env=self.env, capture_output=True,
                                       text=True, timeout=10).stdout  # fmt: skip
                if "key:'default.audio.source'" in named and "key:'default.audio.sink'" in named:
                    return
                if time.monotonic() > nudge:  # (none yet: the user's stored choice, as a desktop's session keeps it)
                    nudge = deadline
                    self.set_default("source", "mic")
                    self.set_default("sink", "speakers")
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"PipeWire did not come up in 40 s (missing: {missing}): "
            f"{(self.dir / 'server.log').read_text(errors='replace')[-2000:]}"
        )

    def setting(self, key: str, value: int | None) -> None:
        """What `pw-metadata -n settings 0 clock.force-quantum N` does on a desktop; None removes the setting
        (`pw-metadata -n settings -d 0 KEY`: PipeWire's own, its config file's, stands again)."""
        cmd = ["pw-metadata", "-n", "settings", *(["-d", "0", key] if value is None else ["0", key, str(value)])]
        subprocess.run(cmd, env=self.env, capture_output=True, check=True, timeout=10)

    def add_node(self, name: str, cls: str, description: str = "", stereo: bool = False) -> None:
        """A device plugged in, as the null sinks of the start: "Audio/Sink" (speakers), "Audio/Source/Virtual" (a
        microphone, as "mic"); with a `description` (a sound card's node has one: its JACK name, and what sound
        settings show) unlike those; `stereo`: two channels (FL, FR), not one. Returns once PipeWire's JACK shows
        its ports."""
        props = _NODE.format(name=name, cls=cls).replace("\n", " ")
        if stereo:
            props = props.replace("[ MONO ]", "[ FL FR ]")
        if description:
            props = props.replace("node.name =", f'node.description = "{description}" node.name =', 1)
        done = subprocess.run(
            ["pw-cli", "create-node", "adapter", props],
            env=self.env, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        assert done.returncode == 0 and "error" not in done.stdout.lower(), done.stdout + done.stderr
        deadline = time.monotonic() + 10
        port = f"{description or name}:{'monitor' if cls == 'Audio/Sink' else 'capture'}_{'FR' if stereo else 'MONO'}"
        while port not in subprocess.run(["pw-jack", "jack_lsp"], env=self.env, capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, f"{name}: no ports"
            time.sleep(0.2)

    def set_default(self, kind: str, name: str) -> None:
        """The node `name` made the default "source" (microphone) or "sink" (speakers), as a desktop's sound settings
        do: WirePlumber's configured default (what `wpctl set-default` writes, which refuses virtual sources), from
        which WirePlumber sets the default itself."""
        key, value = f"default.configured.audio.{kind}", json.dumps({"name": name})
        cmd = ["pw-metadata", "-n", "default", "0", key, value, "Spa:String:JSON"]
        subprocess.run(cmd, env=self.env, check=True, capture_output=True, timeout=10)

    def restart_wireplumber(self) -> None:
        """WirePlumber alone restarted (a crash, `systemctl --user restart wireplumber`): its "default" metadata made
        anew (with own_default=False); returns once it has named the default devices again."""
        assert self.proc is not None
        for pid in _group_alive(self.proc.pid):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "wireplumber":
                    os.kill(pid, 15)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while "WirePlumber" in subprocess.run(["pw-cli", "ls", "Client"], env=self.env, capture_output=True,
                                              text=True).stdout:  # fmt: skip
            assert time.monotonic() < deadline, "WirePlumber did not stop"
            time.sleep(0.1)
        self._wireplumbers.append(subprocess.Popen(
            ["dbus-run-session", "--", "wireplumber"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        ))  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            named = subprocess.run(["pw-metadata", "-n", "default", "0"], env=self.env, capture_output=True,
                                   text=True, timeout=10).stdout  # fmt: skip
            if "key:'default.audio.source'" in named:
                return
            assert time.monotonic() < deadline, "WirePlumber named no default devices after its restart"
            time.sleep(0.2)

    def force_quantum(self, quantum: int) -> None:
        self.setting("clock.force-quantum", quantum)

    def version(self) -> str:
        done = subprocess.run(["pipewire", "--version"], capture_output=True, text=True)
        return " ".join(done.stdout.split()[-1:])

    def stop(self) -> None:
        """PipeWire and WirePlumber stopped (as `systemctl --user stop pipewire wireplumber` on a desktop): returns
        once every process of theirs has ended (PipeWire outlived the session's own process on a loaded machine, and
        the next start, its lock file still held, failed)."""
        for wp in self._wireplumbers:
            if wp.poll() is None:
                os.killpg(wp.pid, 15)
            try:
                wp.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(wp.pid, 9)
                wp.wait()
        self._wireplumbers.clear()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        if self.proc is not None:
            deadline = time.monotonic() + 10
            while _group_alive(self.proc.pid):
                if time.monotonic() > deadline:
                    os.killpg(self.proc.pid, 9)
                    deadline = time.monotonic() + 10
                time.sleep(0.05)
        self.log.close()

    def restart(self) -> None:
        """PipeWire restarted, at the same socket (`systemctl --user restart pipewire`: a common cure for a desktop's
        sound trouble); returns once WirePlumber runs."""
        self.stop()
        try:
            self._start()
        except RuntimeError as e:  # (once in 13 restarts under rtvc, not reproduced: PipeWire's own start)
            print(f"PipeWire's restart, tried again: {e}", file=sys.stderr)
            self._start()

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _group_alive(pgid: int) -> list[int]:
    """The processes of process group `pgid` that have not ended (zombies, ended but not reaped, are not counted)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # (ended meanwhile)
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(stat.parent.name))
    return alive


def impulses(
    pw: PipeWire, warm: float, seconds: float, into: str = "mic:input_MONO", out_of: str = "speakers:monitor_MONO"
) -> list[int]:
    """Impulses into mic (`into`), recorded from speakers' monitor (`out_of`) for `seconds` after `warm`: each one's
    delay (frames)."""
    meter = subprocess.run(
        ["pw-jack", sys.executable, "-c", _IMPULSES, str(EVERY), str(warm), str(seconds), into, out_of],
        env=pw.env, capture_output=True, text=True, timeout=warm + seconds + 30,
    )  # fmt: skip
    lines = [ln for ln in meter.stdout.splitlines() if ln.startswith("impulses ")]
    if not lines:
        raise RuntimeError(f"the impulse clients gave nothing: {meter.stderr[-500:]}")
    return json.loads(lines[-1].removeprefix("impulses "))


class Served:
    """`rtvc serve` on PipeWire through its ALSA plugin (device `device`, the passthrough voice), and what its
    control API says of the latency. `via` "jack": under pw-jack instead, from mic to speakers; "voice-mic": into
    rtvc's virtual microphone (`out_of`: where the impulses are recorded)."""

    def __init__(self, pw: PipeWire, device: str = "pipewire", via: str = "alsa"):
        from daemon_harness import free_port

        self.pw = pw
        self.work = Path(tempfile.mkdtemp(prefix="rtvc-pw-serve-"))
        self.port = free_port()
        profile = ROOT / "profiles" / "passthrough.toml"
        audio = {
            "alsa": f'host_api = "ALSA"\ninput_device = "{device}"\noutput_device = "{device}"\n',
            "jack": 'host_api = "JACK"\ninput_device = "mic"\noutput_device = "speakers"\noutput_channels = 1\n',
            "voice-mic": "virtual_mic = true\n",  # (PipeWire's default microphone, no pw-jack)
        }[via]
        self.out_of = "rtvc voice:capture_MONO" if via == "voice-mic" else "speakers:monitor_MONO"
        (self.work / "config.toml").write_text(
            f'[voice]\nprofile = "{profile}"\n\n[control]\nport = {self.port}\n\n[gate]\nenabled = false\n'
            f"\n[audio]\n{audio}"
        )
        self.prefix = ["pw-jack"] if via == "jack" else []
        self.env = {**pw.env, "XDG_CONFIG_HOME": str(self.work / "xdg"), "PYTHONUNBUFFERED": "1"}
        self.log_path = self.work / "serve.log"
        self._read, self._partial, self._kept, self._noise = 0, b"", [], 0  # (log: what was read of it so far)
        self.proc: subprocess.Popen | None = None
        self.rpc = None

    def __enter__(self) -> Served:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "rtvc", "serve", "--config", str(self.work / "config.toml")],
                env=self.env, cwd=self.work, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            self.connect()
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def connect(self, timeout: float = 30) -> None:
        """(Again, after rtvc serve started anew: rtvc.restart.)"""
        from daemon_harness import RpcClient

        if self.rpc is not None:
            self.rpc.close()
            self.rpc = None
        deadline = time.monotonic() + timeout
        while self.rpc is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rtvc serve did not come up: {self.log()}")
            token = self.work / "xdg" / "rtvc" / "token"
            try:
                self.rpc = RpcClient(self.port, token.read_text().strip())
            except OSError:
                time.sleep(0.2)

    def heard_again(self, timeout: float, warm: float = 0.5) -> list[int]:
        """After a restart of PipeWire: reconnect as often as serve starts anew, until it runs and at least 3
        impulses come through it (each try a 2 s window after `warm`); their delays. RuntimeError after `timeout`."""
        from websockets.exceptions import ConnectionClosed

        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                server = (self.pw.dir / "server.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(
                    f"no sound through rtvc {timeout:g} s after the restart: {self.log()[-4000:]}"
                    f"\nPipeWire's log: {server}"
                )
            try:
                running = self.latency() is not None
            except (ConnectionClosed, OSError, TimeoutError):  # (serve started anew: rtvc.restart)
                self.connect()
                continue
            try:
                delays = impulses(self.pw, warm, 2.0, out_of=self.out_of) if running else []
            except RuntimeError:  # (a port not there yet: rtvc's virtual microphone is made again as it starts)
                delays = []
            if len(delays) >= 3:
                return delays
            time.sleep(0.5)

    def latency(self) -> dict | None:
        """The declared latency (rtvc.latency's to_dict) while rtvc runs; None before its first callback."""
        st = self.rpc.call("status.get")["engine"]
        return st["latency"] if st["state"] == "running" else None

    def log(self) -> str:
        """What serve printed, less PortAudio's own lines ("Expression '...' failed in '.../pa_linux_alsa.c'", several
        for each ALSA stream that fails: rtvc's own lines were lost behind them in a failure's tail), counted at its
        end; read on from where the last call stopped (PortAudio 19.6's ALSA thread, spinning in its xrun handling,
        writes about 100 MB of them a second, and a reading of the whole file at each look took gigabytes)."""
        with self.log_path.open("rb") as f:
            f.seek(self._read)
            chunk = f.read()
        self._read += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"Expression '"):
                self._noise += 1
            else:
                self._kept.append(line.decode(errors="replace"))
        text = "\n".join([*self._kept, self._partial.decode(errors="replace")])
        return text + (f"\n({self._noise} lines of PortAudio's left out)" if self._noise else "")

    def __exit__(self, *exc) -> None:
        if self.rpc is not None:
            self.rpc.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def run_once(
    pw: PipeWire, via: str, period: int, seconds: float, output: str = "speakers", out_of: str = "", into: str = ""
) -> dict:
    """One `rtvc run --headless` on PipeWire, impulses through it: every delay, and what rtvc declared. Under pw-jack
    (`via` "jack") rtvc plays into `output`, and the impulses are recorded from `out_of`; "jack-defaults": under
    pw-jack on PipeWire's default devices; "voice-mic": `--virtual-mic` (record from "rtvc voice:capture_MONO")."""
    out_of = out_of or ("rtvc voice:capture_MONO" if via == "voice-mic" else "speakers:monitor_MONO")
    work = Path(tempfile.mkdtemp(prefix="rtvc-pw-run-"))
    (work / "config.toml").write_text(f'[voice]\nprofile = "{ROOT / "profiles" / "passthrough.toml"}"\n')
    if via == "alsa":
        devices = ["--host-api", "ALSA", "--input-device", "pipewire", "--output-device", "pipewire"]
        prefix: list[str] = []
    elif via == "voice-mic":  # (rtvc's own virtual microphone, no pw-jack, no device named: PipeWire's defaults)
        devices, prefix = ["--virtual-mic"], []
    elif via == "jack-defaults":  # (under pw-jack, no device named: PipeWire's defaults)
        devices, prefix = ["--host-api", "JACK", "--output-channels", "1"], ["pw-jack"]
    else:
        devices = ["--host-api", "JACK", "--input-device", "mic", "--output-device", output]
        devices += ["--output-channels", "1"]
        prefix = ["pw-jack"]
    warm = 3.0
    rtvc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "rtvc", "run", "--config", str(work / "config.toml"), "--headless",
         "--no-gate", *devices, *(["--period", str(period)] if period else []),
         "--duration", str(warm + seconds + 2), "--report-json", str(work / "report.json")],
        env={**pw.env, "XDG_CONFIG_HOME": str(work / "xdg")}, cwd=work,
        stdout=(work / "rtvc.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        if via == "voice-mic":  # (the node rtvc makes: there before the impulse clients connect to it)
            deadline = time.monotonic() + 20
            lsp = ["pw-jack", "jack_lsp"]
            while out_of not in subprocess.run(lsp, env=pw.env, capture_output=True, text=True).stdout:
                if time.monotonic() > deadline or rtvc.poll() is not None:
                    raise RuntimeError(f"no {out_of}")
                time.sleep(0.2)
        delays = impulses(pw, warm, seconds, out_of=out_of, **({"into": into} if into else {}))
        rtvc.wait(60)
    except RuntimeError as e:
        log = (work / "rtvc.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{via} period {period}: no result ({e}; rtvc: {log})") from None
    finally:
        if rtvc.poll() is None:
            rtvc.kill()
            rtvc.wait()
    if not (work / "report.json").exists():
        log = (work / "rtvc.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{via} period {period}: no report ({log})")
    report = json.loads((work / "report.json").read_text())
    lat = report["latency"]
    if lat is None:  # (no callback came: WirePlumber did not link the streams?)
        log = (work / "rtvc.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{via} period {period}: rtvc never ran ({report['state']}: {report['detail']}); {log}")
    # rtvc's first status line, 5 s into its run (it prints one every 5 s where stdout is no terminal): the xruns
    # of the start (the harness's clients joining the graph) are not those of a steady run
    said = (work / "rtvc.log").read_text(errors="replace")
    first = re.search(r"^\S+ +latency .* xruns (\d+) ", said, re.M)
    shutil.rmtree(work, ignore_errors=True)
    own = lat["block"] + lat["converter"] + lat["prefill"]
    values, counts = np.unique(delays, return_counts=True) if delays else ([], [])
    return {
        "period": report["period"],
        "declared": lat["total"],
        "declared_ms": round(lat["ms"]["total"], 2),
        "device_in": lat["device_in"],
        "device_out": lat["device_out"],
        "rtvc_own": own,
        "measured": {int(v): int(c) for v, c in zip(values, counts, strict=True)},
        "xruns": report["xruns"]["total"],
        # xruns in the run's last 4 s (from the status line at 5 s to the end); None: no status line
        "xruns_late": report["xruns"]["total"] - int(first.group(1)) if first else None,
    }
