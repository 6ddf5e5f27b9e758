"""Measured vs declared latency of the live engine over JACK (dummy backend, 48 kHz).

For each device period and block size: rtvc runs on real PortAudio callbacks; two JACK clients in this
process stand in for the sound card, one playing impulses into rtvc's input port, one recording its output
port on JACK's clock (no feedback loop: JACK runs them and rtvc in order within each cycle). The declared
latency is the sound card's ports' (JACK's capture latency before rtvc, its playback latency after: the
devices' part) plus rtvc's own; the impulses measure rtvc's own, port to port. Reports every impulse's delay
against it (an impulse a missed cycle dropped is counted lost, not measured), the worker's block time
(p50/p99) and the xruns seen in a steady-state window (with the clients jackd blamed: on this 2-vCPU VM, 64- and
128-frame periods miss JACK deadlines even with one C client alone).

    python bench/latency.py [--periods 64 128 256] [--blocks-ms 5 10 20] [--seconds 5]

Prints a table and writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import jack_config, machine, write_result  # noqa: E402
from jack_harness import Harness, JackServer, portaudio_on  # noqa: E402

SR = 48000


def jack(period: int):
    server = JackServer(period)
    server.start()
    return portaudio_on(server)


def measure(server: JackServer, block_ms: float, seconds: float, profile: Path) -> dict:
    from rtvc.audio.io import DeviceStreams, choose_devices
    from rtvc.run import build_engine

    cfg = jack_config(profile, block_ms=block_ms)
    engine = build_engine(cfg)
    streams = DeviceStreams(choose_devices(cfg.audio), engine, SR, 0)
    engine.start()
    streams.start()
    try:
        with Harness(server.name) as h:
            while engine.status().state != "running":
                time.sleep(0.02)
            h.wire()
            time.sleep(0.5)
            # impulses at several phases against the block and the period
            spacing = SR // 5 + 37
            at = [2000 + i * spacing for i in range(8)]
            sig = np.zeros(at[-1] + SR, dtype=np.float32)
            sig[at] = 0.5
            before = engine.status()
            blamed_before = len(server.late_clients())
            rec = h.play_and_record(sig, len(sig) / SR + seconds)
            after = engine.status()
            blamed = server.late_clients()[blamed_before:]
        lat = engine.latency()
        measured, lost = [], 0
        for a in at:
            win = np.abs(rec[a : a + spacing])  # up to the next impulse, ~200 ms
            if win.max() < 0.25:  # played at 0.5: a cycle missed (an xrun) dropped it
                lost += 1
                continue
            measured.append(int(np.argmax(win)))
    finally:
        streams.stop()
        engine.stop()
        streams.close()
    x0, x1 = before.xruns, after.xruns
    own = lat.total - lat.device_in - lat.device_out  # rtvc's own part: port to port
    return {
        "period": server.period,
        "block_ms": block_ms,
        "declared_frames": lat.total,
        "declared_ms": round(lat.ms(lat.total), 3),
        "devices_ms": round(lat.ms(lat.device_in + lat.device_out), 3),
        "declared_port_to_port_frames": own,
        "declared_port_to_port_ms": round(lat.ms(own), 3),
        "breakdown_ms": lat.to_dict()["ms"],
        "measured_frames": measured,
        "measured_ms_median": round(1e3 * float(np.median(measured)) / SR, 3) if measured else None,
        "measured_minus_declared": sorted({m - own for m in measured}),
        "impulses_lost": lost,
        "block_p50_ms": round(after.timing.p50_ms, 4),
        "block_p99_ms": round(after.timing.p99_ms, 4),
        "worker_slack_ms": round(after.worker_slack_ms, 3),
        "window_s": round(len(rec) / SR, 2),
        "rtvc_underruns": x1.output_underrun_events - x0.output_underrun_events,
        "portaudio_xrun_flags": sum(x1.portaudio.values()) - sum(x0.portaudio.values()),
        "jackd_blamed": {c: blamed.count(c) for c in sorted(set(blamed))},
    }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:6.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--periods", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--blocks-ms", type=float, nargs="+", default=[5.0, 10.0, 20.0])
    ap.add_argument("--seconds", type=float, default=5.0, help="steady-state window after the impulses")
    ap.add_argument(
        "--voice",
        choices=["passthrough", "pitch"],
        default="passthrough",
        help="pitch: the default voice's kind and path, at 0 semitones so that an impulse stays one",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or ROOT / "bench" / "results" / f"latency-{args.voice}.json"
    if args.voice == "passthrough":
        profile = ROOT / "profiles" / "passthrough.toml"
    else:  # the default profile's voice and converter at pitch 0 (a pitch below -4.9 semitones widens the search:
        # PitchVoice.least_search)
        profile = Path(tempfile.mkdtemp()) / "pitch-zero.toml"
        profile.write_text('voice = "pitch"\n[params]\npitch = 0.0\nformant = 0.0\n')

    rows = []
    for period in args.periods:
        with jack(period) as server:
            for block_ms in args.blocks_ms:
                rows.append(measure(server, block_ms, args.seconds, profile))
                r = rows[-1]
                print(
                    f"period {period:4d}  block {block_ms:5.1f} ms  declared {r['declared_ms']:6.2f} ms"
                    f" (devices {r['devices_ms']:.2f}, port to port {r['declared_port_to_port_ms']:.2f})"
                    f"  measured {_ms(r['measured_ms_median'])} ms  diff {r['measured_minus_declared']}"
                    f"  lost {r['impulses_lost']} of 8"
                    f"  block p50/p99 {r['block_p50_ms']:.3f}/{r['block_p99_ms']:.3f} ms"
                    f"  rtvc underruns {r['rtvc_underruns']}  PA flags {r['portaudio_xrun_flags']}"
                    f"  jackd blamed {r['jackd_blamed']}",
                    flush=True,
                )
    print()
    head = (
        f"{'period':>6} {'block ms':>8} {'declared ms':>11} {'devices ms':>10} {'rtvc ms':>8} {'measured ms':>11} "
        f"{'diff (frames)':>14} {'lost':>4} {'p50 ms':>7} {'p99 ms':>7} {'underruns':>9} {'PA flags':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['period']:>6} {r['block_ms']:>8.1f} {r['declared_ms']:>11.2f} {r['devices_ms']:>10.2f} "
            f"{r['declared_port_to_port_ms']:>8.2f} {_ms(r['measured_ms_median']):>11} "
            f"{','.join(map(str, r['measured_minus_declared'])):>14} {r['impulses_lost']:>4} {r['block_p50_ms']:>7.3f} "
            f"{r['block_p99_ms']:>7.3f} {r['rtvc_underruns']:>9} {r['portaudio_xrun_flags']:>8}"
        )
    result = {
        "machine": machine(),
        "voice": args.voice,
        "jackd": "dummy backend, 48 kHz, --no-realtime",
        "measured": "port to port (rtvc's own part); declared = devices (JACK's port latencies) + rtvc's own",
        "rows": rows,
    }
    write_result(out, "latency", result)


if __name__ == "__main__":
    main()
