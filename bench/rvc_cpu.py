"""CPU time per 20 ms block of a full-size RVC v2 48k voice, by stage, against a whole-window-decode baseline.

The voice: RVC v2 48k at its real size (random weights, f0 = 1) with a full-size HuBERT base (12 layers, 768-d,
random weights), both written to a temp folder by the repo's factories; eager PyTorch on the CPU, `--threads`
intra-op threads. The stream: 48 kHz, 20 ms blocks, 3 ms crossfade, 8 ms SOLA search, 1 s context. Input: the
bundled espeak-ng speech clip, looped.

Two converters, two voices built from the same files: ours decodes only the tail the converter asks for (+
decoder_margin frames); the baseline is the same voice with the margin raised so the synthesizer decodes every frame
of the window each block: the "RVC-style" baseline of issue 4 (RVC's realtime GUI before it passed
skip_head/return_length; its current infer/lib/rtrvc.py decodes the tail, as ours). Content features and F0 are the
same work in both; only the synthesizer's differs. The two alternate block by block on the same input, so machine
noise hits both alike. Stages are timed by wrapping the callables on the instances (and SOLA's in rtvc.converter) in
this script only: input/output resampling, content (HuBERT), F0, synthesizer (`net.infer`, also split into text
encoder / flow / decoder), SOLA; "other" is the block's total minus those stages (window bookkeeping, the RMS mix,
pitch/phase arithmetic). Times are CPU time (thread time with 1 thread, process time otherwise) and wall time;
p50/p99 over the timed blocks; ratio = baseline p50 / ours p50. Rows for F0 = fcpe and F0 = yin.

    python bench/rvc_cpu.py [--blocks 60] [--warmup 10] [--threads 1]

Prints a table per F0 method and writes bench/results/rvc_cpu.json. A block pair (ours + baseline) takes ~3 s
on a 2-core CPU, so the default run takes ~8 minutes; with 60 blocks, p99 is close to the largest block.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import machine, write_result

import rtvc.converter as converter_mod
from rtvc.converter import StreamingConverter, StreamShape
from rtvc.rvc.factory import write_rvc_checkpoint
from rtvc.rvc.hubert_factory import write_fairseq_hubert
from rtvc.voices.rvc import RvcModelSettings, RvcParams, RvcVoice
from rtvc.wavio import bundled_speech, load_mono

ROOT = Path(__file__).resolve().parent.parent
SR = 48000
BLOCK = 960  # 20 ms
SHAPE = StreamShape(SR, block=BLOCK, crossfade=144, search=384, context=SR)  # 3 ms, 8 ms, 1 s
F0_METHODS = ["fcpe", "yin"]
# stages that partition a block (their sum + "other" = total); "synth" is split further below
STAGES = ["resample_in", "resample_out", "content", "f0", "synth", "sola"]
SYNTH_PARTS = ["synth.text_encoder", "synth.flow", "synth.decoder"]
LABELS = {
    "resample_in": "resample in (48k->16k)",
    "resample_out": "resample out",
    "content": "content (HuBERT)",
    "f0": "F0",
    "synth": "synthesizer (net.infer)",
    "synth.text_encoder": "  text encoder",
    "synth.flow": "  flow",
    "synth.decoder": "  decoder",
    "sola": "SOLA",
    "other": "other",
    "total": "total",
    "total_wall": "total (wall)",
}


class Recorder:
    """Per-block CPU and wall time per stage, for one converter."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.cpu: dict[str, list[float]] = {}
        self.wall: dict[str, list[float]] = {}
        self._cpu: dict[str, float] = {}
        self._wall: dict[str, float] = {}

    def start_block(self) -> None:
        self._cpu = dict.fromkeys(STAGES + SYNTH_PARTS, 0.0)
        self._wall = dict.fromkeys(STAGES + SYNTH_PARTS, 0.0)

    def add(self, stage: str, cpu: float, wall: float) -> None:
        self._cpu[stage] += cpu
        self._wall[stage] += wall

    def end_block(self, cpu: float, wall: float) -> None:
        self._cpu["total"], self._wall["total"] = cpu, wall
        for d in (self._cpu, self._wall):
            d["other"] = d["total"] - sum(d[s] for s in STAGES)
        for k, v in self._cpu.items():
            self.cpu.setdefault(k, []).append(v)
        for k, v in self._wall.items():
            self.wall.setdefault(k, []).append(v)


class Timing:
    """Routes the wrapped callables' times to the recorder of the converter now running a block."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.current: Recorder | None = None

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            rec = self.current
            if rec is None:
                return fn(*args, **kwargs)
            c0, w0 = self.clock(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                rec.add(stage, self.clock() - c0, time.perf_counter() - w0)

        return timed

    def block(self, rec: Recorder, conv: StreamingConverter, x: np.ndarray) -> np.ndarray:
        self.current = rec
        rec.start_block()
        c0, w0 = self.clock(), time.perf_counter()
        out = conv.process_block(x)
        rec.end_block(self.clock() - c0, time.perf_counter() - w0)
        self.current = None
        return out


def instrument(timing: Timing, conv: StreamingConverter, voice: RvcVoice) -> None:
    """Replace the stage callables on these instances with timing wrappers (nothing outside this run changes)."""
    if conv._rates.input is not None:
        conv._rates.input.process = timing.wrap("resample_in", conv._rates.input.process)
    voice.pipeline.content_frames = timing.wrap("content", voice.pipeline.content_frames)
    voice.f0.estimate = timing.wrap("f0", voice.f0.estimate)
    net = voice.rvc.net
    net.infer = timing.wrap("synth", net.infer)
    net.enc_p.forward = timing.wrap("synth.text_encoder", net.enc_p.forward)
    net.flow.reverse = timing.wrap("synth.flow", net.flow.reverse)
    net.dec.forward = timing.wrap("synth.decoder", net.dec.forward)


def instrument_module(timing: Timing) -> None:
    """SOLA and the output resampler are module functions of rtvc.converter: wrap them there, for this run."""
    converter_mod.resample_block = timing.wrap("resample_out", converter_mod.resample_block)
    converter_mod.best_offset = timing.wrap("sola", converter_mod.best_offset)
    converter_mod.crossfade = timing.wrap("sola", converter_mod.crossfade)


def stats(values: list[float]) -> dict:
    a = 1e3 * np.asarray(values)
    return {"p50_ms": round(float(np.median(a)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run(method: str, files: dict[str, Path], src: np.ndarray, args: argparse.Namespace, timing: Timing) -> dict:
    settings = RvcModelSettings(
        path=str(files["voice"]), content=str(files["content"]), f0=method, lookahead_ms=0, decoder_margin=4
    )
    t0 = time.perf_counter()
    ours_voice = RvcVoice(SR, settings, files["voice"].parent)
    load_s = time.perf_counter() - t0
    base_voice = RvcVoice(SR, settings, files["voice"].parent)
    base_voice.margin = 10**6  # convert() caps the decoded frames at the window's: every frame, every block
    params = RvcParams()
    ours = StreamingConverter(ours_voice, params, SHAPE)
    base = StreamingConverter(base_voice, params, SHAPE)
    instrument(timing, ours, ours_voice)
    instrument(timing, base, base_voice)
    recs = {"ours": Recorder(timing.clock), "baseline": Recorder(timing.clock)}
    convs = {"ours": ours, "baseline": base}
    for i in range(args.warmup):  # untimed: allocator, oneDNN/FFT plans, FCPE's first call
        b = src[i * BLOCK : (i + 1) * BLOCK]
        ours.process_block(b)
        base.process_block(b)
    for i in range(args.warmup, args.warmup + args.blocks):
        b = src[i * BLOCK : (i + 1) * BLOCK]
        # alternate which goes first, so neither always follows the other's cache footprint
        order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
        for name in order:
            timing.block(recs[name], convs[name], b)
    budget_ms = 1e3 * BLOCK / SR
    side: dict[str, dict] = {}
    for name, rec in recs.items():
        stages = {k: stats(rec.cpu[k]) for k in [*STAGES, *SYNTH_PARTS, "other", "total"]}
        stages["total_wall"] = stats(rec.wall["total"])
        side[name] = {
            "stages_cpu": stages,
            "stages_wall": {k: stats(rec.wall[k]) for k in [*STAGES, *SYNTH_PARTS, "other", "total"]},
            "rtf_p50": round(stages["total"]["p50_ms"] / budget_ms, 3),
            "rtf_p99": round(stages["total"]["p99_ms"] / budget_ms, 3),
            "rtf_wall_p50": round(stages["total_wall"]["p50_ms"] / budget_ms, 3),
        }
    side["ours"]["decoded_frames"] = ours_voice._tail_frames
    side["baseline"]["decoded_frames"] = base_voice._tail_frames
    ratio = {}
    for k in side["ours"]["stages_cpu"]:
        a, b = side["ours"]["stages_cpu"][k]["p50_ms"], side["baseline"]["stages_cpu"][k]["p50_ms"]
        ratio[k] = round(b / a, 3) if a > 0 else None
    net = ours_voice.rvc.net
    return {
        "f0": method,
        "blocks": args.blocks,
        "warmup_blocks": args.warmup,
        "window_frames": ours_voice._frames,
        "voice_load_s": round(load_s, 2),
        "label": ours_voice.label,
        "params": {
            "synthesizer": n_params(net),
            "synthesizer.decoder": n_params(net.dec),
            "content_hubert": n_params(ours_voice.pipeline.content.model),
        },
        "ours": side["ours"],
        "baseline": side["baseline"],
        "ratio_p50_baseline_over_ours": ratio,
    }


def print_table(row: dict) -> None:
    o, b, r = row["ours"]["stages_cpu"], row["baseline"]["stages_cpu"], row["ratio_p50_baseline_over_ours"]
    print(
        f"\nF0 = {row['f0']}: ours decodes {row['ours']['decoded_frames']} frames, the baseline "
        f"{row['baseline']['decoded_frames']} (the whole window); {row['blocks']} blocks of 20 ms, CPU ms"
    )
    head = f"{'stage':<26} {'f0':<5} {'ours p50':>9} {'ours p99':>9} {'base p50':>9} {'base p99':>9} {'base/ours':>9}"
    print(head)
    print("-" * len(head))
    for k in [*STAGES[:5], *SYNTH_PARTS, "sola", "other", "total", "total_wall"]:
        ratio = "-" if r.get(k) is None else f"{r[k]:.2f}x"
        note = "  (not used: model rate = 48 kHz)" if k == "resample_out" and o[k]["p99_ms"] == 0 else ""
        print(
            f"{LABELS[k]:<26} {row['f0']:<5} {o[k]['p50_ms']:>9.2f} {o[k]['p99_ms']:>9.2f} "
            f"{b[k]['p50_ms']:>9.2f} {b[k]['p99_ms']:>9.2f} {ratio:>9}{note}"
        )
    print(
        f"real-time factor (CPU p50 / 20 ms): ours {row['ours']['rtf_p50']:.2f}, "
        f"baseline {row['baseline']['rtf_p50']:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=60, help="timed blocks per converter and F0 method")
    ap.add_argument("--warmup", type=int, default=10, help="untimed blocks first")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--f0", nargs="+", default=F0_METHODS, choices=F0_METHODS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rvc_cpu.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.process_time
    timing = Timing(clock)
    instrument_module(timing)
    x = load_mono(bundled_speech(), SR)
    n = (args.warmup + args.blocks) * BLOCK
    src = np.tile(x, n // len(x) + 1)[:n]
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rtvc-bench-") as tmp:
        t0 = time.perf_counter()
        files = {
            "voice": write_rvc_checkpoint(Path(tmp) / "voice.pth", version="v2", sr="48k", f0=1, size="full", seed=0),
            "content": write_fairseq_hubert(Path(tmp) / "hubert_base.pt", seed=0),
        }
        write_s = time.perf_counter() - t0
        sizes = {k: p.stat().st_size for k, p in files.items()}
        rows = []
        for method in args.f0:
            rows.append(run(method, files, src, args, timing))
            print_table(rows[-1])
    p = rows[0]["params"]
    print(
        f"\nparams: synthesizer {p['synthesizer'] / 1e6:.1f}M (decoder {p['synthesizer.decoder'] / 1e6:.1f}M), "
        f"HuBERT {p['content_hubert'] / 1e6:.1f}M; voice load {rows[0]['voice_load_s']:.1f} s; "
        f"torch threads {args.threads}; GPU: none (CPU only)"
    )
    result = {
        "machine": machine(
            processor=platform.processor(),
            torch=torch.__version__,
            torch_threads=args.threads,
            gpu="none (CPU only)",
            note="shared machine: other processes were running on the same CPUs during the run",
            loadavg_1_5_15_before=[round(v, 2) for v in load_before],
            loadavg_1_5_15_after=[round(v, 2) for v in os.getloadavg()],
        ),
        "model": {
            "voice": "RVC v2 48k, size full, f0 = 1, random weights (rtvc.rvc.factory.write_rvc_checkpoint, seed 0)",
            "content": "fairseq HuBERT base, 12 layers, 768-d, random weights (write_fairseq_hubert, seed 0)",
            "file_bytes": sizes,
            "write_s": round(write_s, 2),
            "eager": True,
        },
        "stream": {
            "samplerate": SR,
            "block_ms": 1e3 * SHAPE.block / SR,
            "crossfade_ms": 1e3 * SHAPE.crossfade / SR,
            "search_ms": 1e3 * SHAPE.search / SR,
            "context_ms": 1e3 * SHAPE.context / SR,
            "decoder_margin": 4,
            "lookahead_ms": 0,
        },
        "clock": "thread_time" if args.threads == 1 else "process_time",
        "method": (
            "two converters (ours, baseline = margin 10**6: decode the whole window every block), alternating block "
            "by block on the same input; stage times from wrappers on the callables; other = total - stages; "
            "resample_out is unused for a 48 kHz model; ratio = baseline p50 / ours p50"
        ),
        "input": "rtvc/data/speech.wav (espeak-ng, 16 kHz) at 48 kHz, looped",
        "run_s": round(time.perf_counter() - t_start, 1),
        "rows": rows,
    }
    write_result(args.out, "rvc_cpu", result)


if __name__ == "__main__":
    main()
