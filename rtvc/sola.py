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


def crossfade(old: np.ndarray, new: np.ndarray, shape: np.ndarray, rho: float | np.ndarray) -> np.ndarray:
    """Fade from `old` into `new` (same length as `shape`), equal-power for correlation `rho` (one figure, or one
    per sample: local_correlation)."""
    x = shape
    d = np.sqrt(x * x + (1 - x) ** 2 + 2 * rho * x * (1 - x))
    return ((x / d) * new + ((1 - x) / d) * old).astype(np.float32)


LOCAL_S = 0.005  # local_correlation's window (Hann)
LOCAL_LOWEST, LOCAL_KNEE = -0.8, 0.15  # and how low the correlation it gives goes, reached smoothly (a knee this wide)


def local_correlation(a: np.ndarray, b: np.ndarray, samplerate: int) -> np.ndarray:
    """The correlation of two blocks around each sample (a Hann window of LOCAL_S, centred), for `crossfade`: one
    figure for a whole block took two pitches as uncorrelated where, 45 Hz apart, they beat about once a block, and
    the fade dipped to -3.9 dB over 10 ms where they met out of phase (default -> passthrough on a sine, at some
    switch times). Where they cancel the fade lifts them, up to +4 dB mid-way (no lower than LOCAL_LOWEST, reached
    through a smooth knee: a hard floor kinked the gains' curve, a click on a sine). Silence: 1."""
    n = len(a)
    w = max(3, min(n, round(LOCAL_S * samplerate)))
    kernel = np.hanning(w + 2)[1:-1]

    def smooth(v: np.ndarray) -> np.ndarray:
        return np.convolve(np.pad(v, (w // 2, w - 1 - w // 2), mode="reflect"), kernel, mode="valid")

    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ab, aa, bb = smooth(a64 * b64), smooth(a64 * a64), smooth(b64 * b64)
    e = aa * bb
    rho = np.minimum(np.where(e > SILENT * SILENT, ab / np.sqrt(np.maximum(e, SILENT * SILENT)), 1.0), 1.0)
    return _KNEE_SCALE * (_knee(rho) - LOCAL_LOWEST) + LOCAL_LOWEST  # (1 stays 1: silence joins linearly)


def _knee(rho: np.ndarray | float) -> np.ndarray | float:
    """max(rho, LOCAL_LOWEST), smoothly (a little above both near the floor and near 1)."""
    return 0.5 * (rho + LOCAL_LOWEST + np.sqrt((rho - LOCAL_LOWEST) ** 2 + LOCAL_KNEE**2))


_KNEE_SCALE = (1.0 - LOCAL_LOWEST) / (_knee(1.0) - LOCAL_LOWEST)
