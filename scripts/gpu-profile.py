"""Where a GPU voice's block goes: host (cProfile) and device (torch.profiler) hot spots, printed.

A full-size RVC v2 48k voice with HuBERT base and FCPE (random weights), CUDA graphs in fp16 on `cuda`, streamed
at 10 ms blocks with a 1 s context: 30 blocks to settle, 200 under cProfile (each with a synchronize), then 50
under torch.profiler. For a lent GPU machine, with .whl carried as for gpu-check.sh:

    python3 -m pip install -q --no-index --no-deps --target /tmp/rtvc-site .whl/*.whl
    PYTHONPATH=/tmp/rtvc-site:$PWD python3 scripts/gpu-profile.py > $OUT/prof.txt

What it found on an H200 is in bench/results/gpu_profile_h200.txt (README, GPU).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from rtvc.converter import StreamingConverter, StreamShape
from rtvc.rvc.factory import write_rvc_checkpoint
from rtvc.rvc.hubert_factory import write_fairseq_hubert
from rtvc.voices.rvc import RvcModelSettings, RvcParams, RvcVoice
from rtvc.wavio import bundled_speech, load_mono

SR = 48000


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rtvc-gpu-profile-"))
    voice = write_rvc_checkpoint(tmp / "voice.pth", version="v2", sr="48k", f0=1, size="full", seed=0)
    content = write_fairseq_hubert(tmp / "hubert_base.pt", seed=0)
    src = np.tile(load_mono(bundled_speech(), SR), 3)
    block = SR // 100
    shape = StreamShape(SR, block, crossfade=144, search=768, context=SR)  # 3 ms, 16 ms, 1 s
    settings = RvcModelSettings(
        path=str(voice), content=str(content), f0="fcpe", backend="cuda-graph", device="cuda", precision="fp16"
    )
    conv = StreamingConverter(RvcVoice(SR, settings, tmp), RvcParams(), shape)

    def run(i: int) -> None:
        conv.process_block(src[i * block : (i + 1) * block])
        torch.cuda.synchronize()

    for i in range(30):
        run(i)
    took, prof = [], cProfile.Profile()
    for i in range(30, 230):
        t = time.perf_counter()
        prof.enable()
        run(i)
        prof.disable()
        took.append(time.perf_counter() - t)
    print(f"block ms p50 {np.median(took) * 1e3:.2f} p99 {np.percentile(took, 99) * 1e3:.2f} (under cProfile)")
    for key, n in (("tottime", 30), ("cumtime", 45)):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(n)
        print(out.getvalue())
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for i in range(230, 280):
            run(i)
    for key, n in (("self_cpu_time_total", 25), ("self_cuda_time_total", 15)):
        print(p.key_averages().table(sort_by=key, row_limit=n, max_name_column_width=60))


if __name__ == "__main__":
    main()
