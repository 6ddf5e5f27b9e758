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
from pipewire_harness import PipeWire, missing, run_once

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
