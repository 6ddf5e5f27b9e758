"""Voice switches and voice on/off, measured: the level dip and the largest step around each, through the live engine.

A voice switch (voices.select) joins the new voice to the old by SOLA, or crossfades the two over a block; voice
on/off (bypass) ramps the voice into the dry signal over a block. Where the two play different pitches they are
uncorrelated, and a linear ramp dips -3 dB half-way; where they play the same sound at different delays they
can cancel. For each pair, on a 150 Hz harmonic tone (a voice-like spectrum) and a 220 Hz sine (the worst case):
- dip: the lowest RMS over 10 ms (and 20 ms) windows around the switch, against the lower of the two voices' own
  levels, in dB (0: no dip); each switch made at `--phases` times (other phases of the signal), the worst and the
  median said;
- step: the largest second difference around the switch against either voice's own largest (1: no click).

Switches to and from RVC voices (`--rvc`: tiny random-weight models in RVC's real file formats, a 2-layer HuBERT,
F0 by yin; on speech): the dip, the switch block's time against the old and the new voice's own (a switch that
rendered two RVC voices took two blocks' time, and the live output underran), and what an RVC voice switched to hears:
its content features on its first block, after 100 ms and 500 ms, against a voice that ran all along (relative
error; 0: the same). A voice switched to takes
the engine's input history (StreamingConverter.continue_from); before, an RVC voice started from an empty window.

    python bench/voice_switch.py [--rvc]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import machine, write_result

SR = 48000
DEFAULT = (-4.0, -1.5)


def signal(kind: str, seconds: int = 1) -> np.ndarray:
    if kind == "speech":
        from rtvc.wavio import bundled_speech, load_mono

        return (0.5 * load_mono(bundled_speech(), SR)[: seconds * SR]).astype(np.float32)
    t = np.arange(seconds * SR) / SR
    if kind == "sine":
        x = np.sin(2 * np.pi * 220 * t)
    else:
        x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


RVC_DIR: Path | None = None  # the tiny RVC models (--rvc)


def rvc_models() -> Path:
    import tempfile

    from rtvc.rvc.factory import write_rvc_checkpoint
    from rtvc.rvc.hubert_factory import write_fairseq_hubert

    d = Path(tempfile.mkdtemp(prefix="rtvc-bench-switch-"))
    write_rvc_checkpoint(d / "a.pth", version="v2", sr="48k", f0=1, size="tiny", seed=1)
    write_rvc_checkpoint(d / "b.pth", version="v2", sr="40k", f0=1, size="tiny", seed=2)
    write_fairseq_hubert(d / "hubert.pt", seed=0, layers=2, dim=768, heads=12, ffn=512)
    return d


def converter(voice, shape):
    from rtvc.converter import StreamingConverter
    from rtvc.voices.passthrough import PassthroughParams, PassthroughVoice
    from rtvc.voices.pitch import PitchParams, PitchVoice

    if isinstance(voice, str) and voice.startswith("rvc "):
        from rtvc.run import rehearse
        from rtvc.voices.rvc import RvcModelSettings, RvcParams, RvcVoice

        model = RvcModelSettings(path=f"{voice[4:]}.pth", content="hubert.pt", f0="yin")
        conv = StreamingConverter(RvcVoice(SR, model, RVC_DIR), RvcParams(), shape)
        rehearse(conv, RVC_DIR)  # (as the daemon's loader does: the first block's warm-up is not the switch's)
        return conv
    if voice == "passthrough":
        return StreamingConverter(PassthroughVoice(SR), PassthroughParams(), shape)
    return StreamingConverter(PitchVoice(SR), PitchParams(pitch=voice[0], formant=voice[1]), shape)


def measure(y: np.ndarray, at: int) -> dict[str, float]:
    def low(a: int, b: int, w: int) -> float:
        return min(float(np.sqrt(np.mean(y[i : i + w] ** 2))) for i in range(a, b, 60))

    out = {}
    for w in (480, 960):
        ref = min(low(at - 9600, at - 4800, w), low(at + 4800, at + 9600, w))
        out[f"dip_{w // 48}ms_db"] = round(20 * np.log10(low(at - 2400, at + 2400, w) / ref), 2)
    d2 = np.abs(np.diff(y.astype(np.float64), 2))
    steady = max(d2[at - 9600 : at - 2400].max(), d2[at + 4800 : at + 12000].max())
    out["step"] = round(float(d2[at - 1200 : at + 2400].max() / steady), 2)
    return out


def switch(old, new, kind: str, at: int = SR // 2) -> dict[str, float]:
    from rtvc.converter import StreamShape
    from rtvc.engine import Engine

    shape = StreamShape(SR, 960, crossfade=144, search=768)
    x = signal(kind, -(-(at + SR // 2) // SR))
    engine = Engine(converter(old, shape), SR, headroom=192, voice_label="old")
    engine.realtime, engine.watch_load = False, False
    engine.set_device(0, 0, separate_streams=False)
    engine.prepare(240)
    engine.start()
    y, out = np.zeros(len(x), np.float32), np.zeros((240, 1), np.float32)
    conv, heard, seen = converter(new, shape), [], -1
    try:
        for pos in range(0, len(x), 240):
            if pos == at:
                switch_block = engine.timer.count  # (the next block takes the new voice: it is its time)
                engine.swap_converter(conv, "new")
            engine.on_duplex(x[pos : pos + 240], out, 240, None)
            y[pos : pos + 240] = out[:, 0]
            engine.wait_for_worker()
            if engine.converter is conv and hasattr(conv.voice, "_content") and engine.blocks_done != seen:
                heard.append(conv.voice._content[-3:].copy())  # (the newest 60 ms of features, each block)
                seen = engine.blocks_done
    finally:
        engine.stop()
    result = measure(y, at + engine.latency().total)
    times = engine.timer.since(0)
    # the switch's block against the old voice's own (the new one may be lighter or heavier: both shown)
    result["switch_block_ms"] = round(1e3 * float(times[switch_block]), 2)
    result["old_block_p50_ms"] = round(1e3 * float(np.median(times[switch_block - 20 : switch_block])), 2)
    result["new_block_p50_ms"] = round(1e3 * float(np.median(times[switch_block + 1 : switch_block + 21])), 2)
    if heard:  # the same voice run alone from the start: the features it had at those blocks
        ref, want = converter(new, shape), []
        for b in range(0, at + 960 * len(heard), 960):
            ref.process_block(x[b : b + 960])
            if b >= at:
                want.append(ref.voice._content[-3:])
        for k, ms in ((0, 0), (5, 100), (25, 500)):
            err = np.linalg.norm(heard[k] - want[k]) / np.linalg.norm(want[k]) if heard[k].shape == want[k].shape else 1
            result[f"content_err_{ms}ms"] = round(float(err), 3)
    return result


def bypass(voice, kind: str, off: bool) -> dict[str, float]:
    from rtvc.converter import StreamShape

    conv = converter(voice, StreamShape(SR, 960, crossfade=144, search=768))
    conv.bypass = not off
    x = signal(kind)
    blocks = []
    for b in range(0, SR, 960):
        if b == SR // 2:
            conv.bypass = off
        blocks.append(conv.process_block(x[b : b + 960]))
    return measure(np.concatenate(blocks), SR // 2)


def name(v) -> str:
    return v if isinstance(v, str) else f"pitch {v[0]:+g}/{v[1]:+g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "voice_switch.json")
    ap.add_argument("--rvc", action="store_true", help="switches to and from RVC voices only (tiny models, torch)")
    ap.add_argument("--phases", type=int, default=12, help="switch times per pair (the worst and the median said)")
    args = ap.parse_args()
    rows = []
    if args.rvc:
        global RVC_DIR
        import torch

        torch.set_num_threads(2)
        RVC_DIR = rvc_models()
        print(f"{'what':<40} {'dip 10ms':>9} {'dip 20ms':>9} {'step':>6}  {'switch block / old / new, ms':<29} "
              "content error at 0 / 100 / 500 ms")  # fmt: skip
        for old, new in ((DEFAULT, "rvc a"), ("passthrough", "rvc a"), ("rvc a", "rvc b"), ("rvc a", DEFAULT)):
            # (past an RVC voice's 1 s window, so that what it hears is all signal; the dip on the tone, what the
            # voice hears on speech)
            r = {"what": f"switch {name(old)} -> {name(new)}", "signal": "tone", **switch(old, new, "tone", 2 * SR)}
            heard = switch(old, new, "speech", 2 * SR)
            r.update({k: v for k, v in heard.items() if k.startswith("content")})
            rows.append(r)
            errs = " / ".join(f"{r[f'content_err_{ms}ms']:.3f}" for ms in (0, 100, 500) if f"content_err_{ms}ms" in r)
            cost = f"{r['switch_block_ms']:.1f} / {r['old_block_p50_ms']:.1f} / {r['new_block_p50_ms']:.1f}"
            dips = f"{r['dip_10ms_db']:9.1f} {r['dip_20ms_db']:9.1f} {r['step']:6.2f}"
            print(f"{r['what']:<40} {dips}  {cost:<29} {errs}")
        import shutil

        shutil.rmtree(RVC_DIR, ignore_errors=True)  # (the tiny models: made for this run)
        out = args.out.with_name(args.out.stem + "_rvc.json")
        write_result(out, "voice_switch_rvc", {"machine": machine(), "models": "tiny, random weights", "rows": rows})
        return
    pairs = [(DEFAULT, "passthrough"), ("passthrough", DEFAULT), ("passthrough", (12.0, -1.5)), (DEFAULT, (5.0, 2.5)),
             ((0.0, 3.0), "passthrough")]  # fmt: skip
    print(f"switches at {args.phases} times each (other phases of the signal and of the device period): the worst,"
          " and the median")  # fmt: skip
    print(f"{'what':<48} {'signal':<6} {'dip 10ms':>15} {'dip 20ms':>15} {'step':>6}")
    for old, new in pairs:
        for kind in ("tone", "sine"):
            # (one switch time read one phase of the two voices' beat: the sine's -4 -> passthrough said -0.9 dB,
            # its worst over twelve times -3.9)
            each = [switch(old, new, kind, (SR // 2 + k * 1680) // 240 * 240) for k in range(args.phases)]
            r = {"what": f"switch {name(old)} -> {name(new)}", "signal": kind, "switches": len(each)}
            for key in ("dip_10ms_db", "dip_20ms_db"):
                r[key] = min(e[key] for e in each)
                r[key.replace("_db", "_median_db")] = round(float(np.median([e[key] for e in each])), 2)
            r["step"] = max(e["step"] for e in each)
            rows.append(r)
            d10, d20 = (f"{r[k]:6.1f} ({r[k[:-3] + '_median_db']:5.1f})" for k in ("dip_10ms_db", "dip_20ms_db"))
            print(f"{r['what']:<48} {kind:<6} {d10:>15} {d20:>15} {r['step']:6.2f}")
    for voice in (DEFAULT, (5.0, 2.5), (12.0, 0.0)):
        for off in (True, False):
            for kind in ("tone", "sine"):
                what = f"voice {'off' if off else 'on'} ({name(voice)})"
                r = {"what": what, "signal": kind, **bypass(voice, kind, off)}
                rows.append(r)
                print(f"{r['what']:<48} {kind:<6} {r['dip_10ms_db']:9.1f} {r['dip_20ms_db']:9.1f} {r['step']:6.2f}")
    write_result(args.out, "voice_switch", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
