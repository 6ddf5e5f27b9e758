"""How long the voice stops when the microphone is switched under `rtvc serve` on JACK.

`rtvc serve --host-api JACK` (passthrough voice) on a JACK dummy server at 256 frames, with two programs as
microphones ("rtvc-mic" and "rtvc-mic2", tones at -12 and -6 dBFS) and one recording what rtvc plays, block by
block. Side by side in one run, --rounds of each:
- "switch": devices.select between the two microphones (rtvc's ports move to the new device: nothing stops);
- "reopen": devices.list with rescan, which stops and reopens the streams on the same devices (the way every switch
  went before rtvc moved its ports, and still goes where the streams' shape changes or off JACK).
Each round records 0.4 s before the call to 0.4 s after its reply; the gap is the longest run under -80 dBFS there
(a -12 dBFS tone is under it for one sample at a zero crossing: 0.02 ms); the reply time is the call's.

    python bench/device_switch.py [--rounds 10]

Prints a table (median, p99 and max) and writes bench/results/device_switch.json.
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

from common import machine, write_result  # noqa: E402
from jack_harness import JackServer  # noqa: E402
from test_device_switch import LATE_DB, TONE_DB, Mic, Served, longest_silence_ms, wait_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    server = JackServer(256, role="bench")
    server.start()
    mics = [Mic(server.name, "rtvc-mic"), Mic(server.name, "rtvc-mic2", LATE_DB)]
    ear = Mic(server.name, "rtvc-ear", -90.0)
    devices = ["--host-api", "JACK", "--input-device", "rtvc-mic", "--output-device", "system"]
    served = Served(server.name, Path(tempfile.mkdtemp(prefix="rtvc-bench-switch-")), devices=devices)
    rows: dict[str, dict[str, list[float]]] = {"switch": {"gap": [], "reply": []}, "reopen": {"gap": [], "reply": []}}
    try:
        rpc = served.connect()

        def peak() -> float:
            return rpc.call("status.get")["result"]["engine"]["levels"]["in_peak"]

        wait_for("the first tone", lambda: abs(peak() - TONE_DB) < 1.0, 30)
        ear.listen_to(ear.rtvc_out_port())
        wait_for("the tone at the ear", lambda: abs(ear.heard_db(0.2) - TONE_DB) < 1.0)
        underruns = rpc.call("status.get")["result"]["engine"]["xruns"]["output_underrun_events"]
        for k in range(args.rounds):
            for row in ("switch", "reopen"):
                ear.take()
                time.sleep(0.4)
                t0 = time.monotonic()
                if row == "switch":
                    got = rpc.call("devices.select", input="rtvc-mic2" if k % 2 == 0 else "rtvc-mic")
                else:
                    got = rpc.call("devices.list", rescan=True)
                took = time.monotonic() - t0
                assert "result" in got, (got, served.log())
                # (a reopen makes new ports: rtvc connects the ear again, as it was)
                wait_for("the ear connected", lambda: ear.rtvc_out_port() in [p.name for p in ear.inp.connections])
                time.sleep(0.4)
                rows[row]["gap"].append(longest_silence_ms(ear.take()))
                rows[row]["reply"].append(1e3 * took)
            print(f"  round {k + 1}: switch {rows['switch']['gap'][-1]:.2f} ms quiet,"
                  f" reopen {rows['reopen']['gap'][-1]:.2f} ms quiet", flush=True)  # fmt: skip
        after = rpc.call("status.get")["result"]["engine"]["xruns"]["output_underrun_events"]
    finally:
        served.stop()
        for m in (*mics, ear):
            m.close()
        server.stop()

    def stats(x: list[float]) -> dict[str, float]:
        return {"median": round(float(np.median(x)), 2), "p99": round(float(np.percentile(x, 99)), 2),
                "max": round(max(x), 2)}  # fmt: skip

    summary = {row: {what: stats(x) for what, x in got.items()} for row, got in rows.items()}
    head = f"{'way':<8} {'rounds':>6} {'silence ms: median':>19} {'p99':>7} {'max':>7}"
    print(f"\n{head} {'reply ms: median':>17} {'p99':>7}")
    for row, s in summary.items():
        g, r = s["gap"], s["reply"]
        print(f"{row:<8} {args.rounds:>6} {g['median']:>19.2f} {g['p99']:>7.2f} {g['max']:>7.2f} {r['median']:>17.1f}"
              f" {r['p99']:>7.1f}")  # fmt: skip
    print(f"output underruns counted by rtvc over the run: {after - underruns}")
    result = {
        "machine": machine(),
        "server": "jackd dummy, 48 kHz, 256 frames",
        "rounds": args.rounds,
        "silence_ms": {row: got["gap"] for row, got in rows.items()},
        "reply_ms": {row: [round(x, 1) for x in got["reply"]] for row, got in rows.items()},
        "summary": summary,
        "output_underrun_events": after - underruns,
        "before": "each switch reopened the streams (the 'reopen' row's path; 101 ms of silence in the test's switch)",
    }
    write_result(ROOT / "bench" / "results" / "device_switch.json", "device_switch", result)


if __name__ == "__main__":
    main()
