"""`rtvc latency` through a JACK loop: what it measures against what rtvc declares, per period and block.

For each device period: a JACK server on the dummy backend and a client "cable" in this process that copies its
input port to its output port; `rtvc latency` runs (its own process, as a user runs it) with the cable as input
and output device. JACK runs the cycle rtvc -> cable -> rtvc one period late, and the cable declares no latency,
so the measured round trip should be the declared one plus exactly one period, every sweep (the tool's accuracy;
on a sound card with a cable the difference is what its driver does not declare).

    python bench/loopback.py [--periods 64 128 256] [--blocks-ms 10 20] [--count 8]

Prints a table and writes bench/results/loopback_jack.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from jack_harness import JackServer, client_env  # noqa: E402

SR = 48000


def cable(server: str):
    import jack

    c = jack.Client("cable", servername=server, no_start_server=True)
    port_in, port_out = c.inports.register("in_1"), c.outports.register("out_1")

    @c.set_process_callback
    def _copy(frames):
        port_out.get_array()[:] = port_in.get_array()

    c.activate()
    return c


def measure(server: JackServer, block_ms: float, count: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "latency.json"
        run = subprocess.run(
            [sys.executable, "-m", "rtvc", "latency", "--host-api", "JACK", "--input-device", "cable",
             "--output-device", "cable", "--count", str(count), "--block-ms", f"{block_ms:g}", "--json", str(out)],
            env=client_env(server.name), capture_output=True, text=True, timeout=120, cwd=d,
        )  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"rtvc latency failed: {run.stdout}{run.stderr}")
        got = json.loads(out.read_text())
    declared = got["declared"]["total"]
    return {
        "period": server.period,
        "block_ms": block_ms,
        "declared_ms": got["declared"]["ms"]["total"],
        "measured_ms": got["measured_ms"],
        "measured_minus_declared_frames": got["measured_frames"] - declared,
        "heard": f"{got['heard']} of {got['sweeps']}",
        "delays_frames": got["delays_frames"],
        "spread_ms": got["spread_ms"],
        "xruns": got["xruns"],
        "exact": got["measured_frames"] - declared == server.period and got["spread_ms"] == 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--periods", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--blocks-ms", type=float, nargs="+", default=[10.0, 20.0])
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "loopback_jack.json")
    args = ap.parse_args()
    rows = []
    print(f"{'period':>6} {'block':>6} {'declared':>9} {'measured':>9} {'diff (frames)':>13} {'heard':>7} "
          f"{'spread':>7} {'xruns':>5}")  # fmt: skip
    for period in args.periods:
        server = JackServer(period, role="bench")
        server.start()
        try:
            c = cable(server.name)
            try:
                for block_ms in args.blocks_ms:
                    r = measure(server, block_ms, args.count)
                    rows.append(r)
                    print(f"{period:>6} {block_ms:>4g}ms {r['declared_ms']:>7.2f}ms {r['measured_ms']:>7.2f}ms "
                          f"{r['measured_minus_declared_frames']:>13} {r['heard']:>7} {r['spread_ms']:>5.2f}ms "
                          f"{r['xruns']:>5}")  # fmt: skip
            finally:
                c.deactivate()
                c.close()
        finally:
            server.stop()
    write_result(
        args.out,
        "loopback_jack",
        {
            "machine": machine(),
            "what": "rtvc latency through a JACK client copying its input to its output (dummy backend, 48 kHz); "
            "expected: measured = declared + one period (JACK's cycle), every sweep",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
