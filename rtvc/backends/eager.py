"""The eager backend: a step module called as it is, on the CPU or a CUDA device (the reference)."""

from __future__ import annotations

import torch

from rtvc.backends.base import TensorSpec


class EagerRunner:
    def __init__(self, name: str, module: torch.nn.Module, device: str):
        self.name = name
        self.module = module.to(device).eval()
        self.device = torch.device(device)
        self.inputs: tuple[TensorSpec, ...] = module.inputs
        self.outputs: tuple[TensorSpec, ...] = module.outputs

    def __call__(self, **inputs) -> dict:
        args = [torch.as_tensor(inputs[s.name]).to(self.device, non_blocking=True) for s in self.inputs]
        with torch.inference_mode():
            out = self.module(*args)
        outs = out if isinstance(out, tuple) else (out,)
        return {s.name: t for s, t in zip(self.outputs, outs, strict=True)}
