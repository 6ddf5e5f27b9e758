"""SOLA: align each new tail against the previous one, then crossfade them.

`best_offset` finds where the new tail continues the old one best: normalised cross-correlation of the
pending overlap against every offset of the search window, with a faint pull towards the nominal
offset so that the latency does not wander between equally good (periodic) matches.

`crossfade` is equal-power for any correlation between the two signals: the gains a (new) and b (old)
satisfy a² + b² + 2ρab = 1, so correlated signals (ρ = 1, e.g. an unchanged voice) are joined with
gains summing to exactly one and uncorrelated ones (ρ = 0) with a² + b² = 1.
"""

from __future__ import annotations

import numpy as np

NOMINAL_PULL = 1e-3  # score penalty per search length away from the nominal offset
SILENT = 1e-12  # energy below which a segment counts as silence


def best_offset(prev: np.ndarray, tail: np.ndarray, search: int, nominal: int) -> tuple[int, float]:
    """prev: (X,) pending overlap; tail: (>= X + search,). Returns (offset k in [0, search], ρ at k)."""
    x = len(prev)
    if x == 0:
        return nominal, 1.0
    seg = tail[: x + search].astype(np.float64)
    p = prev.astype(np.float64)
    e_prev = float(p @ p)
    if e_prev < SILENT:
        return nominal, 1.0  # nothing to align with: keep the nominal latency
    num = np.correlate(seg, p, mode="valid")  # (search + 1,): num[k] = seg[k:k+x] · prev
    c = np.concatenate(([0.0], np.cumsum(seg * seg)))
    e_seg = c[x:] - c[:-x]
    ncc = num / np.sqrt(np.maximum(e_seg, SILENT) * e_prev)
    if search:
        score = ncc - NOMINAL_PULL * np.abs(np.arange(search + 1) - nominal) / search
        k = int(np.argmax(score))
    else:
        k = 0
    return k, float(np.clip(ncc[k], 0.0, 1.0))


def fade_shape(n: int) -> np.ndarray:
    """(n,) rising raised-cosine from ~0 to ~1, sampled at sample centres."""
    t = (np.arange(n) + 0.5) / n
    return np.sin(0.5 * np.pi * t) ** 2


def crossfade(old: np.ndarray, new: np.ndarray, shape: np.ndarray, rho: float) -> np.ndarray:
    """Fade from `old` into `new` (same length as `shape`), equal-power for correlation `rho`."""
    x = shape
    d = np.sqrt(x * x + (1 - x) ** 2 + 2 * rho * x * (1 - x))
    return ((x / d) * new + ((1 - x) / d) * old).astype(np.float32)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two blocks at lag 0, in [0, 1] (as `crossfade` takes it; 1 for silence)."""
    e = float(np.dot(a, a)) * float(np.dot(b, b))
    return float(np.clip(np.dot(a, b) / np.sqrt(e), 0.0, 1.0)) if e > SILENT * SILENT else 1.0
