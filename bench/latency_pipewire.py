"""Measured vs declared latency of rtvc on PipeWire, the sound server of most Linux desktops, by both ways in.

On a private PipeWire (tests/pipewire_harness.py: dummy driver, 48 kHz, null sinks for the sound card, WirePlumber
linking as on a desktop), impulses go through rtvc port to port, its whole path, devices' part included:
- ALSA: PortAudio's ALSA host API, device "pipewire" (PipeWire's ALSA plugin: "default" on such a desktop); the
  declared devices' part is one period in (rtvc.audio.io) and PortAudio's figure out;
- JACK: PortAudio's JACK host API under pw-jack, devices "mic" and "speakers" (JACK's figures);
- voice-mic: `rtvc run --virtual-mic` (no pw-jack, no device named): into rtvc's virtual microphone "rtvc voice",
  recorded from it as a call program records a microphone.

Each row runs `rtvc run --headless` (passthrough voice, gate off) --repeats times: every run gives every impulse's
delay, the declared latency and the xruns. An xrun can move the ALSA plugin's buffering by a period for the rest
of a run (its recovery refills the buffer): the table gives every impulse's (frames: how many) and the xruns of all
runs. A quantum above 256 frames (a user's clock.min-quantum or clock.force-quantum) gets ALSA streams of one
quantum (rtvc.audio.pipewire); before, 512 underran about 13 times a second and 1024 let nothing through.

    python bench/latency_pipewire.py [--quanta 256 512 1024 2048] [--alsa-periods 0 256 512] [--repeats 3]
                                     [--ways alsa jack voice-mic]

Needs pipewire, wireplumber, pipewire-alsa, pipewire-jack and dbus-daemon. Prints a table and writes
bench/results/latency-pipewire.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from pipewire_harness import PipeWire, missing, run_once  # noqa: E402

WAYS = ("alsa", "jack", "voice-mic")


def rows_of(ways: list[str], alsa_periods: list[int]) -> list[tuple[str, int]]:
    return [(w, p) for w in ways for p in (alsa_periods if w == "alsa" else [0])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quanta", type=int, nargs="+", default=[256, 512, 1024, 2048], help="PipeWire's quantum (frames)")
    ap.add_argument(
        "--alsa-periods", type=int, nargs="+", default=[0, 256, 512], help="audio.period for ALSA (0: the host's)"
    )
    ap.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS), help="ways in (ALSA rows: --alsa-periods)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latency-pipewire.json")
    args = ap.parse_args()
    if missing():
        sys.exit(f"needs these packages: {' '.join(missing())} (apt-get install them)")
    rows, version = [], ""
    for quantum in args.quanta:
        with PipeWire(quantum) as pw:
            version = pw.version()
            for via, period in rows_of(args.ways, args.alsa_periods):
                for k in range(args.repeats):
                    r = {"quantum": quantum, "via": via, "audio_period": period, "run": k + 1}
                    r.update(run_once(pw, via, period, args.seconds))
                    rows.append(r)
                    diff = {d - r["declared"]: n for d, n in r["measured"].items()}
                    print(
                        f"quantum {quantum}  {via:9s} audio.period {period or '-':>4}  run {k + 1}: period "
                        f"{r['period']}, declared {r['declared']} frames ({r['declared_ms']:.2f} ms: in "
                        f"{r['device_in']}, rtvc {r['rtvc_own']}, out {r['device_out']}), measured - declared "
                        f"{diff} (frames: impulses), xruns {r['xruns']}",
                        flush=True,
                    )
    print()
    print(table(rows, args.quanta, rows_of(args.ways, args.alsa_periods)))
    result = {
        "machine": machine(),
        "pipewire": version,
        "measured": "port to port through null sinks (mic's monitor to speakers): rtvc's whole path, devices included",
        "rows": rows,
    }
    write_result(args.out, "latency-pipewire", result)


def table(rows: list[dict], quanta: list[int], ways: list[tuple[str, int]]) -> str:
    head = f"{'quantum':>7} {'via':>9} {'audio.period':>12} {'callbacks':>9} {'declared ms':>11} {'in':>5} {'out':>5}"
    head += f" {'xruns':>5}  measured - declared (frames: impulses)"
    lines = [head, "-" * len(head)]
    for quantum in quanta:
        for via, period in ways:
            mine = [r for r in rows if (r["quantum"], r["via"], r["audio_period"]) == (quantum, via, period)]
            off: dict[int, int] = {}
            for m in mine:
                for d, n in m["measured"].items():
                    off[int(d) - m["declared"]] = off.get(int(d) - m["declared"], 0) + n
            r = mine[0]
            lines.append(
                f"{quantum:>7} {via:>9} {period or '-':>12} {r['period']:>9} {r['declared_ms']:>11.2f} "
                f"{r['device_in']:>5} {r['device_out']:>5} {sum(m['xruns'] for m in mine):>5}  "
                + (", ".join(f"{d:+d}: {n}" for d, n in sorted(off.items())) or "no impulse came through")
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
