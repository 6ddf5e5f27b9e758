"""Which backend runs a voice's steps: a registry that fails loudly, and the checks that a choice can be honoured.

A profile's [model] table names `backend`, `device` and `precision`. A choice this machine cannot honour
(no CUDA device, TensorRT absent, CUDA graphs on the CPU) is a ConfigError naming the reason and the fix;
there is no silent downgrade to eager. The voice's label shows what runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rtvc.backends.base import BACKENDS, StepRunner, check_choice
from rtvc.errors import ConfigError, ModelError, RtvcError


def _eager(name: str, module: torch.nn.Module, device: str) -> StepRunner:
    from rtvc.backends.eager import EagerRunner

    return EagerRunner(name, module, device)


def _cuda_graph(name: str, module: torch.nn.Module, device: str, forms: tuple[str, ...] | None = None) -> StepRunner:
    from rtvc.backends.cudagraph import CudaGraphRunner

    return CudaGraphRunner(name, module, device, forms=forms)  # forms: a profile's compile = true adds "inductor"


def _tensorrt(name: str, module: torch.nn.Module, device: str, **where) -> StepRunner:
    # rtvc.backends.tensorrt.step_runner also needs the engine request (model hashes, shape, the `rtvc build`
    # command) and the engines folder: the caller that knows the profile and config passes them
    if "request" not in where or "engines_dir" not in where:
        raise ModelError(
            f"step '{name}': the TensorRT backend needs the engine request and the engines folder",
            "run the voice from the daemon or `rtvc run`, which know the profile and config",
        )
    return tensorrt_module().step_runner(name, module, device, **where)


RUNNERS: dict[str, Callable[..., StepRunner]] = {  # (name, module, device, **backend-specific) -> runner
    "eager": _eager,
    "cuda-graph": _cuda_graph,
    "tensorrt": _tensorrt,
}
assert tuple(RUNNERS) == BACKENDS


def tensorrt_module():
    """rtvc.backends.tensorrt with the tensorrt package loaded, imported only when a profile asks for it
    (TensorRT is an optional install)."""
    try:
        from rtvc.backends import tensorrt

        tensorrt.import_tensorrt()
    except (ImportError, RtvcError) as e:
        hint = getattr(e, "fix", "") or "pip install tensorrt-cu13 or tensorrt-cu12, matching torch.version.cuda"
        raise ConfigError(
            f"[model] backend = 'tensorrt', but TensorRT cannot be loaded ({getattr(e, 'what', e)})",
            f"{hint}; run `rtvc doctor`, or set backend = 'cuda-graph'",
        ) from None
    return tensorrt


def check_backend(backend: str, device: str, precision: str, where: str = "profile") -> None:
    """Raise ConfigError if this machine cannot run (backend, device, precision) as asked."""
    check_choice(backend, device, precision, where)
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{where}: device = 'cuda', but torch sees no CUDA device (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda or 'none'})",
            "install a CUDA build of torch and an NVIDIA driver, or set device = 'cpu' and backend = 'eager'"
            + (" and precision = 'fp32'" if precision == "fp16" else ""),
        )
    if backend == "tensorrt":
        tensorrt_module()


def make_runner(backend: str, name: str, module: torch.nn.Module, device: str, **where) -> StepRunner:
    """The runner of step `name` on `backend` (call check_backend first: this only builds). `where`: what a
    backend needs beyond the module (tensorrt: request=EngineRequest, engines_dir=Path; cuda-graph: forms)."""
    return RUNNERS[backend](name, module, device, **where)
