"""How far content features computed over a stream's window lie from the whole-file pass, by stage and by
distance from the window's newest frame: what bounds "streamed vs offline" for an RVC voice.

A HuBERT/ContentVec (random weights, fairseq format, as the tests write it) reads a 5 s espeak-ng clip two
ways: whole, as the offline conversion does, and through 3 s windows ending every 0.4 s, as a stream does.
For frames D frames (20 ms each) before a window's end it prints the relative difference ||w - f|| / ||f||
after three stages: the conv stack (its first layer's GroupNorm normalises each channel over the whole
input), the positional convolution (kernel 128 frames: it reads 64 frames, 1.28 s, either side) and the last
transformer layer (global attention). A second pass gives the window the whole file's GroupNorm statistics,
which isolates the positional convolution and the attention. A stream that returns audio within tens of ms
sees at most its lookahead past a frame (80 ms: D = 4); the offline pass sees the whole file.

    python bench/content_window.py [--size tiny|base]

Prints a table and writes bench/results/content_window_SIZE.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import machine, write_result  # noqa: E402

from rtvc.resample import resample_block  # noqa: E402
from rtvc.rvc.content import ContentEncoder  # noqa: E402
from rtvc.rvc.hubert_factory import write_fairseq_hubert  # noqa: E402
from rtvc.wavio import bundled_speech, load_mono  # noqa: E402

SIZES = {  # tiny: the tests' model (tests/test_rvc_voice.py); base: HuBERT base's full size
    "tiny": dict(layers=2, dim=768, heads=12, ffn=512),
    "base": dict(layers=12, dim=768, heads=12, ffn=3072),
}
WINDOW = 48000  # 3 s at 16 kHz
STEP = 6400  # a window every 0.4 s
DISTANCES = (2, 4, 16, 32, 63, 65, 80)  # frames before the window's end
STAGES = ("conv stack", "positional conv", "last layer")


def stages(enc: ContentEncoder, audio: np.ndarray, gn_stats=None) -> tuple[dict[str, torch.Tensor], tuple]:
    """Each stage's (F, D) output; the first conv layer's GroupNorm uses `gn_stats` (mean, var) if given."""
    m = enc.model
    x = torch.from_numpy(audio)[None]
    if enc.normalize:
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + enc.normalize_eps)
    h = x[:, None]
    out: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for i, layer in enumerate(m.feature_extractor.conv_layers):
            if i:
                h = layer(h)
                continue
            c = layer.conv(h)
            own = (c.mean(-1, keepdim=True), c.var(-1, unbiased=False, keepdim=True))
            mu, var = gn_stats if gn_stats is not None else own
            gn = layer.layer_norm
            h = layer.activation((c - mu) / torch.sqrt(var + gn.eps) * gn.weight[:, None] + gn.bias[:, None])
        out["conv stack"] = h.transpose(1, 2)[0]
        h = m.feature_projection(h.transpose(1, 2))
        h = m.encoder.layer_norm(h + m.encoder.pos_conv_embed(h))
        out["positional conv"] = h[0]
        for block in m.encoder.layers:
            r = block(h)
            h = r[0] if isinstance(r, tuple) else r
        out["last layer"] = h[0]
    return out, own


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--out", type=Path, help="default: bench/results/content_window_SIZE.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        write_fairseq_hubert(Path(d) / "hubert.pt", seed=0, **SIZES[args.size])
        enc = ContentEncoder.load(Path(d) / "hubert.pt", "v2")
    x = load_mono(bundled_speech(), 48000)[: 5 * 48000]
    x16 = resample_block(x, 48000, 16000, len(x) // 3).astype(np.float32)
    whole, whole_stats = stages(enc, x16)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for variant, stats in (("window's own statistics", None), ("whole file's GroupNorm statistics", whole_stats)):
        rows: dict[int, dict[str, list[float]]] = {dist: {s: [] for s in STAGES} for dist in DISTANCES}
        for end in range(WINDOW, len(x16) + 1, STEP):
            got, _ = stages(enc, x16[end - WINDOW : end], stats)
            k0, n = (end - WINDOW) // 320, len(got["conv stack"])
            for dist in DISTANCES:
                for s in STAGES:
                    a, b = got[s][n - 1 - dist], whole[s][k0 + n - 1 - dist]
                    rows[dist][s].append(float((a - b).norm() / b.norm()))
        table[variant] = {
            f"D={dist}": {s: round(float(np.median(v)), 4) for s, v in r.items()} for dist, r in rows.items()
        }
    print(f"\nHuBERT ({args.size}, random weights): windowed vs whole-file features, median ||w - f|| / ||f||")
    print(f"{'GroupNorm statistics':<36}{'frames before the end':>22}  " + "".join(f"{s:>18}" for s in STAGES))
    for variant, rows_ in table.items():
        for dist, vals in rows_.items():
            ms = f"{dist} ({int(dist[2:]) * 20} ms)"
            print(f"{variant:<36}{ms:>22}  " + "".join(f"{vals[s]:>18.4f}" for s in STAGES))
    result = {
        "machine": machine(),
        "model": f"fairseq HuBERT, random weights, {SIZES[args.size]}",
        "clip": "bundled espeak-ng speech, first 5 s, 16 kHz",
        "window_s": WINDOW / 16000,
        "relative_difference": table,
    }
    out = args.out or ROOT / "bench" / "results" / f"content_window_{args.size}.json"
    write_result(out, "content_window", result)


if __name__ == "__main__":
    main()
