"""RVC on a GPU: per-block time of eager vs CUDA graphs (fp32, fp16) vs a whole-window baseline, in one run.

Full-size RVC v2 48k voice and HuBERT base (random weights, as bench/rvc_cpu.py builds them), 20 ms and 10 ms
blocks at 48 kHz, 1 s context. Nine converters (by default; `--rows` chooses) on the same input, alternating block by
block (the order rotates) so that clocks, boosts and other tenants hit them alike:
- eager:        the fixed-shape steps in torch eager on CUDA, fp32 (the reference);
- cuda-graph:   the same steps captured once and replayed, fp32 and fp16 (fp32 islands), the layers in the
                backend's GPU forms (rtvc.backends.gpu_forms); fp16 also with plain layers and without the
                channels-last form, to measure the forms side by side, and compiled ("cuda-graph fp16, compiled":
                torch.compile, the "inductor" form, what a profile's compile = true asks for; a compile of tens
                of seconds first); "concurrent" rows add the forms that run work side by side (the decoder's
                resblocks of a stage on streams of their own, each step replayed on its own stream, so the F0
                step runs beside the content step), with and without the compile;
- baseline:     eager fp32 on CUDA, decoding the whole window every block: the "RVC-style" baseline issue 4
                names (RVC's realtime GUI before its skip_head/return_length change; its current code decodes
                only the tail, as the eager row does).
Before the timings, each step's CUDA graph (fp32, fp16) is checked against eager fp32 on the full-size models.
A block's time is the converter's whole `process_block` (resampling, content, F0, synth, SOLA) with
torch.cuda.synchronize() before and after. F0 (FCPE by default, the profiles' default) is a step on the GPU
in every row (rtvc.rvc.f0_steps); `--f0 yin` runs YIN's numpy on the CPU instead. Resampling and SOLA are
numpy on the CPU in every row. Without CUDA it says so and exits with code 2.

    python bench/rvc_gpu.py [--blocks 300] [--warmup 30] [--f0 fcpe] [--rows ROW...] [--no-parity]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from common import machine, write_result

from rtvc.backends import gpu_forms
from rtvc.converter import StreamingConverter, StreamShape
from rtvc.errors import words
from rtvc.rvc.factory import write_rvc_checkpoint
from rtvc.rvc.hubert_factory import write_fairseq_hubert
from rtvc.voices.rvc import RvcModelSettings, RvcParams, RvcVoice
from rtvc.wavio import bundled_speech, load_mono

ROOT = Path(__file__).resolve().parent.parent
SR = 48000
CONCURRENT = (gpu_forms.BRANCHES, gpu_forms.OWN_STREAM)  # the forms that run work side by side (not yet defaults)
ROWS = {  # name -> (backend, precision, whole-window decode, GPU forms of the layers: None = the backend's default)
    "eager fp32": ("eager", "fp32", False, None),
    "cuda-graph fp32": ("cuda-graph", "fp32", False, None),
    "cuda-graph fp16": ("cuda-graph", "fp16", False, None),
    "cuda-graph fp16, plain layers": ("cuda-graph", "fp16", False, ()),
    "cuda-graph fp16, no channels-last": ("cuda-graph", "fp16", False, ("grouped-bmm", "pointwise-matmul")),
    "baseline: whole-window decode fp32": ("eager", "fp32", True, None),
    "cuda-graph fp16, compiled": ("cuda-graph", "fp16", False, (*gpu_forms.DEFAULT_FORMS, "inductor")),
    "cuda-graph fp16, concurrent": ("cuda-graph", "fp16", False, (*gpu_forms.DEFAULT_FORMS, *CONCURRENT)),
    "cuda-graph fp16, compiled concurrent": (
        "cuda-graph",
        "fp16",
        False,
        (*gpu_forms.DEFAULT_FORMS, *CONCURRENT, "inductor"),
    ),
}
DEFAULT_ROWS = list(ROWS)
BASELINE = "baseline: whole-window decode fp32"
PARITY_LIMIT = {"fp32": 1e-4, "fp16": 1e-2}  # relative L2 against eager fp32 (issue 5)


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.median(a)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def parity(files: dict[str, Path], args: argparse.Namespace) -> dict:
    """Each step of the full-size voice captured as a CUDA graph (fp32, fp16) against eager fp32 on the same
    inputs (random, in range; seed 7), relative L2 of its output: what tests/test_backend_seam.py checks on tiny
    models, here on the sizes the timings are for."""
    from rtvc.backends.cudagraph import graph_vs_eager
    from rtvc.voices.rvc_steps import stream_shape

    settings = RvcModelSettings(path=str(files["voice"]), content=str(files["content"]), f0=args.f0)
    voice = RvcVoice(SR, settings, files["voice"].parent)
    out: dict[str, dict] = {}
    for ms in args.blocks_ms:
        shape = stream_shape(voice, float(ms), SR)
        ref_steps = voice.steps(shape, "fp32")
        # the backend's default forms, fp32 and fp16 (unless --parity-rows-only: a run that did them already)
        checks = [] if args.parity_rows_only else [(p, None) for p in PARITY_LIMIT.items()]
        if ms == args.blocks_ms[0]:  # the rows' other forms at one block size (a compile takes tens of seconds)
            checks += [(("fp16", 1e-2), ROWS[r][3]) for r in args.rows if ROWS[r][0] == "cuda-graph" and ROWS[r][3]]
        for (precision, limit), forms in checks:
            for name, module in voice.steps(shape, precision).items():
                key = f"{ms} ms {name} {precision}" + (f" forms {'+'.join(forms)}" if forms else "")
                try:
                    err = graph_vs_eager(name, module, ref_steps[name], forms=forms)
                    out[key] = {"rel_l2": float(f"{err:.3g}"), "limit": limit, "ok": err <= limit}
                except Exception as e:  # (one step's failure must not cost the other figures)
                    out[key] = {"error": words(e)}
                print(f"parity {key:<26} {out[key]}", flush=True)
    return out


def run_block_size(block_ms: int, files: dict[str, Path], src: np.ndarray, args: argparse.Namespace) -> dict:
    block = SR * block_ms // 1000
    shape = StreamShape(SR, block, crossfade=144, search=384, context=SR)  # 3 ms, 8 ms, 1 s
    convs, voices, failed, forms_of = {}, {}, {}, {}
    for name in args.rows:
        backend, precision, whole, forms = ROWS[name]
        settings = RvcModelSettings(
            path=str(files["voice"]), content=str(files["content"]), f0=args.f0,
            backend=backend, device="cuda", precision=precision,
        )  # fmt: skip
        want = gpu_forms.DEFAULT_FORMS if forms is None else tuple(forms)
        try:
            # the runners are built (captured) when the converter prepares the stream: this row's forms from here
            with mock.patch.object(gpu_forms, "DEFAULT_FORMS", want):
                voice = RvcVoice(SR, settings, files["voice"].parent)
                if whole:
                    voice.margin = 10**6  # the plan caps the decoded frames at the window's: every frame, every block
                conv = StreamingConverter(voice, RvcParams(), shape)
                conv.process_block(src[:block])
            got = {tuple(r.forms) for r in voice.runners.values() if hasattr(r, "forms")}
            if backend == "cuda-graph" and got != {want}:
                raise RuntimeError(f"the runners were built with forms {sorted(got)}, not {want}")
            if backend == "cuda-graph":
                forms_of[name] = list(want)
        except Exception as e:  # a row that cannot run is reported; the others still are
            failed[name] = words(e)
            print(f"{block_ms} ms {name}: {failed[name]}", flush=True)
            continue
        voices[name], convs[name] = voice, conv
    times: dict[str, list[float]] = {name: [] for name in convs}
    names = list(convs)
    for i in range(args.warmup + args.blocks):
        x = src[i * block : (i + 1) * block]
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            convs[name].process_block(x)
            torch.cuda.synchronize()
            if i >= args.warmup:
                times[name].append(1e3 * (time.perf_counter() - t0))
    rows: dict[str, dict] = {name: stats(t) for name, t in times.items()}
    for name, v in voices.items():
        rows[name]["label"] = v.label
        if name in forms_of:
            rows[name]["forms"] = forms_of[name]
        rows[name]["decoded_frames"] = v._plan.synth.ret
        rows[name]["window_frames"] = v._plan.synth.frames
    rows.update({name: {"error": e} for name, e in failed.items()})

    def ratio(a: str, b: str) -> float | None:
        if "p50_ms" not in rows.get(a, {}) or "p50_ms" not in rows.get(b, {}):
            return None
        return round(rows[a]["p50_ms"] / rows[b]["p50_ms"], 2)

    return {
        "block_ms": block_ms,
        "rows": rows,
        "speedup_p50": {
            "cuda-graph fp16 vs eager": ratio("eager fp32", "cuda-graph fp16"),
            "cuda-graph fp16 vs baseline": ratio(BASELINE, "cuda-graph fp16"),
            "cuda-graph fp32 vs eager": ratio("eager fp32", "cuda-graph fp32"),
            "default forms vs plain layers (fp16)": ratio("cuda-graph fp16, plain layers", "cuda-graph fp16"),
            "default forms vs no channels-last (fp16)": ratio("cuda-graph fp16, no channels-last", "cuda-graph fp16"),
            "compiled vs default forms (fp16)": ratio("cuda-graph fp16", "cuda-graph fp16, compiled"),
            "concurrent vs default forms (fp16)": ratio("cuda-graph fp16", "cuda-graph fp16, concurrent"),
            "compiled concurrent vs compiled (fp16)": ratio(
                "cuda-graph fp16, compiled", "cuda-graph fp16, compiled concurrent"
            ),
            "fastest cuda-graph row vs baseline": max(
                (r for r in (ratio(BASELINE, n) for n in rows if n.startswith("cuda-graph")) if r is not None),
                default=None,
            ),
        },
    }


def show(r: dict, blocks: int) -> None:
    print(f"\n{r['block_ms']} ms blocks, ms per block ({blocks} blocks)")
    print(f"{'row':<36} {'p50':>8} {'p99':>8} {'decoded':>8}")  # (names up to 36 characters)
    for name, s in r["rows"].items():
        if "error" in s:
            print(f"{name:<36} failed: {s['error']}")
        else:
            print(f"{name:<36} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['decoded_frames']:>8}")
    print("speedups (p50):", r["speedup_p50"], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=300, help="timed blocks per row and block size")
    ap.add_argument("--warmup", type=int, default=30, help="untimed blocks first")
    ap.add_argument("--f0", default="fcpe", choices=["fcpe", "yin", "crepe-tiny", "crepe"])
    ap.add_argument("--blocks-ms", type=int, nargs="+", default=[20, 10], help="block sizes to measure")
    ap.add_argument(
        "--rows",
        nargs="+",
        choices=list(ROWS),
        default=DEFAULT_ROWS,
        metavar="ROW",
        help=f"rows to run, by name (default: all); of: {', '.join(ROWS)}",
    )
    ap.add_argument("--no-parity", action="store_true", help="skip the parity checks (the timings only)")
    ap.add_argument(
        "--parity-rows-only", action="store_true", help="check only the rows' own forms (not the default forms)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rvc_gpu.json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        cuda = torch.version.cuda or "none"
        print(f"rvc_gpu: no CUDA device (torch {torch.__version__}, built for CUDA {cuda}); nothing to run")
        sys.exit(2)
    x = load_mono(bundled_speech(), SR)
    n = (args.warmup + args.blocks + 1) * SR // 50
    src = np.tile(x, n // len(x) + 1)[:n]
    gpu = torch.cuda.get_device_name()
    tf32 = {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
    result: dict = {
        "machine": machine(gpu=gpu, torch=torch.__version__, cuda=torch.version.cuda, tf32=tf32),
        "model": "RVC v2 48k size full + fairseq HuBERT base, random weights (seed 0)",
        "f0": f"{args.f0} ({'numpy on the CPU' if args.f0 == 'yin' else 'a step on the GPU'}, all rows)",
        "method": f"{len(args.rows)} converters alternating block by block (rotating order), synchronize around each",
        "baseline": "the whole window decoded every block, as issue 4 defines RVC-style; RVC's own realtime code "
        "(infer/lib/rtrvc.py, skip_head/return_length) now decodes only the tail, as the eager row does",
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="rtvc-bench-") as tmp:
        files = {
            "voice": write_rvc_checkpoint(Path(tmp) / "voice.pth", version="v2", sr="48k", f0=1, size="full", seed=0),
            "content": write_fairseq_hubert(Path(tmp) / "hubert_base.pt", seed=0),
        }
        result["parity_vs_eager_fp32"] = {} if args.no_parity else parity(files, args)
        write_result(args.out, "rvc_gpu", result)
        for ms in args.blocks_ms:  # written after each block size: a run cut short keeps what it measured
            result["results"].append(run_block_size(ms, files, src, args))
            show(result["results"][-1], args.blocks)
            write_result(args.out, "rvc_gpu", result)


if __name__ == "__main__":
    main()
