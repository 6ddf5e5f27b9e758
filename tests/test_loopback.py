"""`rtvc latency`: sweeps played through the engine come back through a loop after exactly the round trip
(rtvc.loopback). The loop is the test's: the virtual device's output fed back to its input after a known delay
(the engine's own figure plus that delay, to the frame), and on JACK a client that copies its input to its output
(JACK runs such a cycle one period late: the engine's figure plus one period)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rtvc.converter import StreamingConverter, StreamShape
from rtvc.engine import Engine
from rtvc.errors import RtvcError
from rtvc.gate import GateSettings
from rtvc.latency import LatencyBreakdown
from rtvc.loopback import EVERY_S, LoopProbe, ProbeParams, analyse, check_heard, find_arrivals

SR = 48000


def run_loop(block: int, period: int, delay: int, gain: float = 1.0, noise_db: float | None = None, count: int = 3):
    """The probe on an engine whose output comes back to its input `delay` frames later (times `gain`, plus white
    noise at `noise_db` dBFS RMS), callback by callback in lockstep with the worker (as `rtvc convert` runs)."""
    assert delay >= period, "a callback's input cannot hold its own output"
    probe = LoopProbe(SR, count, -20.0)
    conv = StreamingConverter(probe, ProbeParams(), StreamShape(SR, block, crossfade=0, search=0))
    engine = Engine(conv, SR, headroom=round(0.008 * SR), gate=GateSettings(on=False))
    engine.realtime, engine.watch_load = False, False
    engine.set_device(0, 0, separate_streams=False)
    engine.prepare(period)
    rng = np.random.default_rng(7)
    played = np.zeros(probe.length + 4 * SR, np.float32)
    out = np.zeros((period, 1), np.float32)
    engine.start()
    try:
        pos = 0
        while not probe.done:
            x = np.zeros(period, np.float32)
            a = pos - delay
            if a + period > 0:
                lo = max(a, 0)
                x[lo - a :] = gain * played[lo : a + period]
            if noise_db is not None:
                x += (10 ** (noise_db / 20) * rng.standard_normal(period)).astype(np.float32)
            engine.on_duplex(x, out, period, None)
            played[pos : pos + period] = out[:, 0]
            engine.wait_for_worker()
            pos += period
    finally:
        engine.stop()
    return analyse(probe, engine.latency()), engine.latency()


@pytest.mark.parametrize(
    "block, period, delay, gain, noise_db",
    [
        (960, 256, 256, 1.0, None),  # a cable on a card that declares nothing: the loop's one period
        (480, 64, 1000, 0.03, -60.0),  # through the air: 30 dB down, a room's noise
        (240, 256, 4801, -0.1, -50.0),  # 100 ms of hidden buffers; a loop that inverts polarity
        (441, 147, 30000, 0.5, None),  # blocks and periods that do not line up; over half a second
    ],
)
def test_the_sweeps_come_back_after_the_declared_latency_plus_the_loops_own_delay(block, period, delay, gain, noise_db):
    result, declared = run_loop(block, period, delay, gain, noise_db)
    assert len(result.delays) == 3, result.arrivals
    assert result.delays == [declared.total + delay] * 3  # every sweep, to the frame
    assert result.measured == declared.total + delay
    assert result.own == declared.block + declared.prefill  # (the probe has no converter delay of its own)
    d = result.to_dict()
    assert d["unreported_ms"] == pytest.approx(1e3 * delay / SR, abs=1e-3)
    assert d["spread_ms"] == 0.0


def declared(total_dev_in: int = 0, dev_out: int = 0) -> LatencyBreakdown:
    return LatencyBreakdown(SR, device_in=total_dev_in, block=960, converter=0, prefill=448, device_out=dev_out)


def looped(probe: LoopProbe, delay: int, paths=((0, 1.0),)) -> None:
    """What a loop `delay` frames long (and its echoes: (lag, gain) after it) brings back, into probe.heard."""
    for lag, gain in paths:
        at = delay + lag
        probe.heard[at:] += gain * probe.signal[: len(probe.heard) - at]


def test_an_echo_weaker_than_the_sound_and_noise_do_not_move_the_arrival():
    probe = LoopProbe(SR, 4, -20.0)
    looped(probe, 2000, ((0, 0.05), (170, 0.035), (900, 0.02)))  # direct, then two reflections
    probe.heard += (0.001 * np.random.default_rng(1).standard_normal(len(probe.heard))).astype(np.float32)
    found = analyse(probe, declared()).arrivals
    assert [a.delay for a in found] == [2000] * 4
    assert all(a.over_db > 20 for a in found)


def test_noise_alone_is_not_taken_for_a_sweep():
    probe = LoopProbe(SR, 8, -20.0)
    every = round(EVERY_S * SR)
    for seed in range(5):
        heard = (0.05 * np.random.default_rng(seed).standard_normal(len(probe.heard))).astype(np.float32)
        assert find_arrivals(heard, probe.sweeps, probe.starts, every, SR) == [None] * 8


@pytest.mark.parametrize("delay_s", [1.2, 1.9])
def test_a_round_trip_longer_than_the_sweeps_spacing_is_not_taken_for_a_short_one(delay_s):
    # each sweep's second would hold the one played before it, a second earlier: same direction, it was taken for
    # it (a 1.23 s loop measured 234.67 ms, 3 of 4 heard); the sweeps alternate up and down, so it is none
    probe = LoopProbe(SR, 4, -20.0)
    looped(probe, round(delay_s * SR))
    result = analyse(probe, declared())
    assert result.arrivals == [None] * 4
    with pytest.raises(RtvcError, match=r"heard 0 of the 4 .*A round trip over 0.95 s .* cannot be measured"):
        check_heard(result)


def test_a_round_trip_near_the_spacing_is_measured_in_every_sweep():
    probe = LoopProbe(SR, 4, -20.0)
    looped(probe, 45600)  # 950 ms: the last sweep comes back after the probe's last full second
    assert analyse(probe, declared()).delays == [45600] * 4


def test_a_loop_that_brings_nothing_back_is_an_error_that_says_what_to_do():
    probe = LoopProbe(SR, 3, -20.0)  # nothing heard: digital silence
    with pytest.raises(RtvcError, match=r"stayed silent .*loop the output back to the input"):
        check_heard(analyse(probe, declared()))
    probe.heard[:] = (0.01 * np.random.default_rng(3).standard_normal(probe.length)).astype(np.float32)
    with pytest.raises(RtvcError, match=r"heard 0 of the 3 test sweeps .*dB over the noise; 20 needed.*--level-db"):
        check_heard(analyse(probe, declared()))
    # one of three heard is no median: refused too
    s = probe.starts[0] + 3000
    probe.heard[s : s + len(probe.sweeps[0])] += probe.sweeps[0]
    with pytest.raises(RtvcError, match=r"heard 1 of the 3 .*too few for a measure .*of those missed the clearest"):
        check_heard(analyse(probe, declared()))


def test_a_sweep_that_never_came_back_is_not_taken_for_the_next_ones_return():
    """The loop made by hand after rtvc started (its JACK ports exist only once it runs): the first sweeps played
    into nothing. The first frames of a later sweep's return, entering the end of an earlier sweep's second, stood
    against a silent floor and counted as that sweep heard at ~1 s; two of three "heard" 47967 and 1664 frames
    apart, and their mean, 517 ms, was "measured" (a review)."""
    probe = LoopProbe(SR, 3, -20.0)
    s = probe.starts[2]
    probe.heard[s + 1664 : s + 1664 + len(probe.sweeps[2])] = probe.sweeps[2]
    result = analyse(probe, declared())
    assert [a and a.delay for a in result.arrivals] == [None, None, 1664]
    with pytest.raises(RtvcError, match=r"heard 1 of the 3"):
        check_heard(result)
    # heard in an even number, the figure is a round trip a sweep took, not the mean of two
    probe = LoopProbe(SR, 5, -20.0)
    for i, delay in ((1, 1664), (2, 1664), (3, 1920), (4, 1920)):
        s = probe.starts[i] + delay
        probe.heard[s : s + len(probe.sweeps[i])] = probe.sweeps[i]
    assert analyse(probe, declared()).measured == 1664


@pytest.mark.parametrize(
    "extra, says",
    [
        (0, "rtvc's declared latency is right on these devices"),
        (240, "the devices take 5.00 ms more than they declare"),
        (-96, "the devices take 2.00 ms less than they declare"),
    ],
)
def test_the_report_compares_the_round_trip_with_the_declared_latency(extra, says):
    d = declared(256, 512)
    probe = LoopProbe(SR, 3, -20.0)
    looped(probe, d.total + extra)
    result = analyse(probe, d)
    check_heard(result)
    text = result.report()
    assert f"measured   {1e3 * (d.total + extra) / SR:.2f} ms ({d.total + extra} frames; median of 3 of 3" in text
    assert f"devices    measured {1e3 * (768 + extra) / SR:.2f} ms, declared 16.00 ms" in text
    assert says in text


def test_a_loop_through_jack_programs_alone_is_not_said_as_a_devices_latency_to_add():
    """rtvc's output connected to its own input (README's way under JACK): no device declares anything, and the
    period JACK's loop adds was said as "the devices take 5.33 ms more than they declare: add it"."""
    d = declared(0, 0)
    probe = LoopProbe(SR, 3, -20.0)
    looped(probe, d.total + 256)
    text = analyse(probe, d).report()
    assert "5.33 ms more than declared, and no device declares any latency here" in text, text
    assert "JACK runs such a loop a period late" in text and "add it" not in text, text


@pytest.mark.jack
@pytest.mark.timeout(120)
def test_rtvc_latency_on_jack_measures_a_connection_from_its_output_to_its_input(jack_bare, tmp_path):
    import jack

    from tests.jack_harness import client_env

    env = client_env(jack_bare.name)
    cable = jack.Client("cable", servername=jack_bare.name, no_start_server=True)
    port_in, port_out = cable.inports.register("in_1"), cable.outports.register("out_1")

    @cable.set_process_callback
    def _copy(frames):
        port_out.get_array()[:] = port_in.get_array()

    cable.activate()
    (tmp_path / "profiles").symlink_to(Path(__file__).resolve().parent.parent / "profiles")
    try:
        report = tmp_path / "latency.json"
        run = subprocess.run(
            [sys.executable, "-m", "rtvc", "latency", "--host-api", "JACK", "--input-device", "cable",
             "--output-device", "cable", "--count", "3", "--json", str(report)],
            env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        got = json.loads(report.read_text())
        assert got["heard"] >= 2, got
        # JACK runs the cycle rtvc -> cable -> rtvc one period late: the loop's own delay, all the cable adds
        assert got["measured_frames"] == got["declared"]["total"] + jack_bare.period, got
        assert "round trip (microphone to speaker through rtvc" in run.stdout
        assert "this measurement's JACK ports: rtvc:in_0 and rtvc:out_0" in run.stdout, run.stdout
        assert "another program holds the JACK name" not in run.stdout
        assert f"devices    measured {1e3 * jack_bare.period / SR:.2f} ms, declared 0.00 ms" in run.stdout
        # config.toml's voice (the default: pitch and formant, SOLA's crossfade 3 ms + half the 16 ms search) on top
        # of the declared figure (the measure, a period late here, is JACK's loop's, not a microphone's to a speaker)
        assert got["jack_loop"] is True
        total = 1e3 * got["declared"]["total"] / SR + 11.0
        assert f"with voice 'default' (Deeper): {total:.2f} ms declared, its converter adding 11.00 ms" in run.stdout
        voice = {"voice": "voice 'default' (Deeper)", "converter_ms": 11.0, "total_ms": round(total, 3)}
        assert got["with_voice"] == voice
        # the dummy backend's own ports bring back nothing: said, with what to do, and no report written
        # (rtvc serve on the same server holds the name "rtvc": the measurement's ports are another client's, said, so
        # that a loop made by hand does not rewire the live voice: a review)
        report.unlink()
        daemon = jack.Client("rtvc", servername=jack_bare.name, no_start_server=True)
        try:
            none = subprocess.run(
                [sys.executable, "-m", "rtvc", "latency", "--host-api", "JACK", "--count", "3", "--json", str(report)],
                env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
            )  # fmt: skip
        finally:
            daemon.close()
        assert "JACK ports: rtvc-01:in_0 and rtvc-01:out_0 (once the sweeps start)" in none.stdout
        assert "jack_connect rtvc-01:out_0 rtvc-01:in_0" in none.stdout, none.stdout
        assert "another program holds the JACK name 'rtvc', rtvc serve most likely" in none.stdout, none.stdout
        assert none.returncode == 2, none.stdout + none.stderr
        assert "the input stayed silent (digital zero) the whole run" in none.stderr
        assert not report.exists()
        # the loop made by hand once rtvc's ports are there, its own output into its input (the system ports off):
        # the devices' part declared is that loop's (none), not the system ports' it was connected to at start
        # (5.3 and 10.7 ms declared, "the devices take 10.67 ms less than they declare": a review); and not what
        # JACK says of rtvc's own ports in a loop (their ranges stay as they were before it: 10.7 ms out). With
        # --period, PortAudio's own buffering of a period is declared, and the loop's period late was said as "the
        # devices take 5.33 ms more than they declare: add it" (a review)
        late = subprocess.Popen(
            [sys.executable, "-m", "rtvc", "latency", "--host-api", "JACK", "--count", "4", "--json", str(report),
             "--period", str(jack_bare.period)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(  # (ports made, then connected to the system's)
                cable.get_ports(p) and cable.get_all_connections(p) for p in ("rtvc:in_0", "rtvc:out_0", "rtvc:out_1")
            ):
                time.sleep(0.05)
            for port in ("rtvc:in_0", "rtvc:out_0", "rtvc:out_1"):
                for peer in cable.get_all_connections(port):
                    cable.disconnect(*((peer, port) if port.startswith("rtvc:in") else (port, peer)))
            cable.connect("rtvc:out_0", "rtvc:in_0")
            said, _ = late.communicate(timeout=60)
        finally:
            late.kill()
        assert late.returncode == 0, said
        got = json.loads(report.read_text())
        assert (got["declared"]["device_in"], got["declared"]["device_out"]) == (0, jack_bare.period), got
        assert got["measured_frames"] == got["declared"]["total"] + jack_bare.period, got
        assert got["jack_loop"] is True and "declared latency is right" not in said, said
        assert "JACK runs such a loop a period late" in said and "add it" not in said, said
    finally:
        cable.deactivate()
        cable.close()


@pytest.mark.parametrize(
    "flag, says",
    [
        (["--count", "2"], "2 sweeps: give 3 to 60"),
        (["--count", "many"], "'many' is not a whole number"),
        (["--level-db", "0"], "0 dBFS: give -60 to -6"),
        (["--level-db", "nan"], "nan dBFS: give -60 to -6"),
    ],
)
def test_rtvc_latency_refuses_a_bad_flag_before_it_plays_anything(flag, says, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "rtvc", "latency", *flag], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert run.returncode == 2
    assert says in run.stderr


def test_rtvc_latency_refuses_what_rtvc_run_refuses_and_its_own_config_as_the_json(tmp_path):
    (tmp_path / "config.toml").write_text("[audio]\nperiod = 1024\n")
    cases = [
        (["--block-ms", "5"], "stream.block_ms = 5.0 (240 frames) is shorter than audio.period (1024 frames)"),
        (["--json", "config.toml"], "--json config.toml is the config file: writing it would destroy that"),
    ]
    for flags, says in cases:
        run = subprocess.run(
            [sys.executable, "-m", "rtvc", "latency", *flags], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert run.returncode == 2 and says in run.stderr, run.stdout + run.stderr
        assert "playing" not in run.stdout
    assert (tmp_path / "config.toml").read_text() == "[audio]\nperiod = 1024\n"
