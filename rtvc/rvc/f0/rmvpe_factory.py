"""Write an RMVPE checkpoint with random weights in the public `rmvpe.pt` format, for tests.

The public file is a bare state dict (no wrapper keys) of the full-size network with RVC's key names. Its
90,472,799 floating-point values (90,423,165 parameters + 49,634 batch-norm running statistics) take 362 MB in
float32 and 181 MB in float16; the published rmvpe.pt is ~181 MB, so it is stored in float16, which is what this
writes by default. Batch-norm statistics are randomised too, so a loader that skipped them would give different
numbers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtvc.rvc.f0.rmvpe_net import RmvpeNet


def random_rmvpe_state(*, seed: int = 0, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """Full-size RMVPE state dict: PyTorch's default initialisation under `seed`, random BN statistics."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG as it was
        torch.manual_seed(seed)
        net = RmvpeNet()
        state = net.state_dict()
        for key, value in state.items():
            if key.endswith("running_mean"):
                value.normal_(0.0, 0.1)
            elif key.endswith("running_var"):
                value.uniform_(0.5, 2.0)
    return {k: (v.to(dtype) if v.is_floating_point() else v).clone() for k, v in state.items()}


def write_rmvpe_checkpoint(path: str | Path, *, seed: int = 0, dtype: torch.dtype = torch.float16) -> Path:
    """Save a random-weight RMVPE state dict at `path` (the public format) and return the path."""
    path = Path(path)
    torch.save(random_rmvpe_state(seed=seed, dtype=dtype), path)
    return path
