"""rtvc on PipeWire (the sound server of most Linux desktops), measured: the declared latency is what impulses take
through it, frame for frame, by its ALSA plugin (device "pipewire", "default" on such a desktop) and by its JACK
library (pw-jack). tests/pipewire_harness.py runs a private PipeWire with WirePlumber and null sinks for the sound
card; port to port is rtvc's whole path there, the devices' part included.

Through the ALSA plugin PortAudio declared each side's buffer less one period; the capture's part is one period
(it is read as soon as a period is in), and rtvc declared 10.7 ms more than it took at period 128 (rtvc.audio.io).

An xrun can move the ALSA plugin's buffering by a period for the rest of a run (its recovery refills the buffer; the
harness's clients joining the graph as rtvc starts can cause one): most impulses of every run must come out on time,
and every impulse of one run in RUNS.
CI installs the packages (.ci/run); elsewhere the test says which are missing (pipewire-alsa makes PipeWire the
ALSA default, so `make test` does not install it on a desktop that has another sound server).
"""

from __future__ import annotations

import pytest
from pipewire_harness import ROOT, PipeWire, missing, run_once

pytestmark = [
    pytest.mark.pipewire,
    pytest.mark.skipif(bool(missing()), reason=f"needs the packages {' '.join(missing())} (CI installs them)"),
]
RUNS = 3


@pytest.fixture(scope="module")
def pipewire():
    with PipeWire(256) as pw:
        yield pw


@pytest.mark.parametrize("via", ["alsa", "jack"])
def test_the_declared_latency_is_what_impulses_take_on_pipewire(pipewire, via):
    tried = []
    for _ in range(RUNS):
        r = run_once(pipewire, via, 0, 4.0)
        tried.append(r)
        assert sum(r["measured"].values()) >= 6, r  # (an impulse every 0.5 s for 4 s)
        most = max(r["measured"], key=r["measured"].get)
        assert most == r["declared"], f"most impulses took {most} frames, {r['declared']} were declared: {r}"
        if set(r["measured"]) == {r["declared"]}:
            break
    assert set(tried[-1]["measured"]) == {tried[-1]["declared"]}, f"no run had every impulse on time: {tried}"
    if via == "alsa":
        # the capture's part is one period (PortAudio said its buffer less one period: three here)
        assert r["device_in"] == r["period"], r


def test_pipewire_jack_has_no_default_device_to_loop_through(pipewire, tmp_path):
    """Under pw-jack PortAudio's default JACK device was the first sink, in and out: rtvc recorded its own output
    from the sink's monitor (an impulse came back every 34.67 ms without end; a howl with a pitch voice). PipeWire's
    JACK has no 'system' ports, so rtvc names the devices to choose from instead."""
    import subprocess
    import sys

    done = subprocess.run(
        ["pw-jack", sys.executable, "-m", "rtvc", "run", "--headless", "--host-api", "JACK", "--duration", "2",
         "--profile", str(ROOT / "profiles" / "passthrough.toml")],
        env={**pipewire.env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-2000:]
    assert "no default input device on this JACK server" in said, said[-2000:]
    assert "'speakers'" in said and "'mic'" in said, said[-2000:]


def test_mixers_show_rtvc_by_name_through_the_alsa_plugin(pipewire, tmp_path):
    """pavucontrol, qpwgraph and wpctl showed rtvc's streams as "PipeWire ALSA [python3.11]"."""
    import subprocess
    import sys
    import time

    rtvc = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "run", "--headless", "--host-api", "ALSA", "--input-device", "pipewire",
         "--output-device", "pipewire", "--duration", "4", "--profile", str(ROOT / "profiles" / "passthrough.toml")],
        env={**pipewire.env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline, names = time.monotonic() + 10, []
        while time.monotonic() < deadline and names.count('application.name = "rtvc"') < 2:
            time.sleep(0.3)
            nodes = subprocess.run(["pw-cli", "ls", "Node"], env=pipewire.env, capture_output=True, text=True).stdout
            names = [ln.strip() for ln in nodes.splitlines() if "application.name" in ln]
        assert names.count('application.name = "rtvc"') == 2, names  # (the capture and the playback stream)
    finally:
        rtvc.wait(30)


def test_doctor_on_pipewire_points_at_pw_jack_not_at_starting_jackd(pipewire, tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "rtvc", "doctor"], env={**pipewire.env, "XDG_CONFIG_HOME": str(tmp_path)},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    jack = [ln for ln in done.stdout.splitlines() if " jack " in f" {ln} "]
    assert jack and "PipeWire runs" in jack[0] and "pw-jack" in jack[0], done.stdout[-2000:]
