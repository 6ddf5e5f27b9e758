"""The backend seam: what a voice's fixed-shape model step looks like to the thing that runs it.

A voice's per-block work is a few model steps (resampling, content encoder, F0, synthesizer) whose
shapes are fixed once the stream is configured (block, context, sample rates). Each step is a torch
module with named tensor inputs and outputs; a backend turns it into something callable with the same
names: torch eager (the reference), a replayed CUDA graph, or a TensorRT engine built from the step's
ONNX export. Noise enters as explicit inputs, so every backend computes the same function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

BACKENDS = ("eager", "cuda-graph", "tensorrt")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16")  # fp16 = fp16 with fp32 islands (sine phase, normalisation after attention)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "float32" | "float16" | "int64" | "int32"


@dataclass(frozen=True)
class StreamShape:
    """What fixes every step's shapes: the same shape -> the same graphs and engines."""

    samplerate: int  # the voice's input rate (16 kHz for RVC)
    out_samplerate: int  # the voice's output rate (the model's)
    block: int  # input frames per block, at `samplerate`
    context: int  # input frames of the analysed window, at `samplerate`
    tail: int  # output frames decoded per block, at `out_samplerate`

    def key(self) -> str:
        return f"{self.samplerate}-{self.out_samplerate}-b{self.block}-c{self.context}-t{self.tail}"


@dataclass(frozen=True)
class ExportedStep:
    """One step written as ONNX, with the fixed shapes it was exported for."""

    name: str  # "content", "f0", "synth", ...
    path: Path  # the .onnx file
    precision: str  # one of PRECISIONS
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class StepRunner(Protocol):
    """A step made runnable by a backend. Inputs and outputs by name; tensors on the backend's device.
    Outputs may be the runner's own static buffers, valid until the next call (copy to keep them)."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __call__(self, **inputs) -> dict: ...


def check_choice(backend: str, device: str, precision: str, where: str = "profile") -> None:
    """ConfigError for a (backend, device, precision) that cannot go together on any machine. Needs no torch: a
    voice listing checks this much without importing it (rtvc.backends.registry.check_backend checks the rest)."""
    from rtvc.errors import ConfigError

    if backend not in BACKENDS:
        raise ConfigError(f"{where}: unknown backend {backend!r}", f"choose one of: {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise ConfigError(f"{where}: unknown device {device!r}", f"choose one of: {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: unknown precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    if backend != "eager" and device != "cuda":
        raise ConfigError(
            f"{where}: backend = '{backend}' runs on a CUDA device, but device = '{device}'",
            "set device = 'cuda', or backend = 'eager' for the CPU",
        )
    if precision == "fp16" and device != "cuda":
        raise ConfigError(
            f"{where}: precision = 'fp16' needs device = 'cuda' (the CPU has no fast fp16 kernels)",
            "set precision = 'fp32', or device = 'cuda'",
        )


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
