"""FCPE F0 estimator (torchfcpe's bundled `fcpe_c_v001` model).

We compute the log-mel ourselves (`logmel.FCPE_MEL`: the same Slaney mel basis, periodic Hann, magnitude with
+1e-9, log floor and framing as torchfcpe's extractor, which left-pads (1024 - 160) / 2 = 432 samples so that mel
frame t is centred on 160·t + 80). The network learned that half-hop offset: its output for frame t is the F0 at
sample 160·t (measured on a sweep, see logmel.py), which is our contract. Unlike torchfcpe's extractor we pad the
right end by reflection to a real last frame instead of repeating the previous one. The network's
`local_argmax` decoder (weighted cents of the 9 bins around the peak on FCPE's own 360-bin grid, 32.7-1975.5 Hz)
turns the salience into Hz; a peak at or below `threshold` is unvoiced. torchfcpe and RVC default to 0.006, which
calls 82 % of the frames of white noise at -20 dBFS voiced; 0.05 (the network class's own default) calls none
of them voiced and keeps Praat's speech voicing (tests/test_rvc_f0.py).

The network is convolutional only (this checkpoint has `conv_only`), but six depthwise convs of kernel 31 reach
±90 frames and its input GroupNorm normalises over the whole input, so every estimate depends on all the input
and no lookahead makes frames exact. We declare the right edge of a frame's own STFT window (1024 - 432 = 592
samples): on speech cut into 150 ms windows, frames at least that far from the window's end differ from the
whole-signal estimate by a median of ~2-3 cents, the same as frames in the window's middle; the last three frames
differ by 6-19 cents (tests/test_rvc_f0.py::test_fcpe_lookahead).
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import torch
from torch.nn.utils import parametrize

from rtvc.errors import ModelError
from rtvc.rvc.f0.base import as_audio, keep_range
from rtvc.rvc.f0.logmel import FCPE_MEL, LogMel

log = logging.getLogger(__name__)

THRESHOLD = 0.05
LOOKAHEAD = 1024 - FCPE_MEL.left  # samples: the right edge of a frame's STFT window; see the docstring


def load_fcpe() -> torch.nn.Module:
    """torchfcpe's bundled network (the CFNaiveMelPE inside its inference wrapper), eval mode, CPU."""
    try:
        import torchfcpe
    except ImportError as exc:
        raise ModelError("F0 method 'fcpe' needs the torchfcpe package", "pip install 'rtvc[rvc]'") from exc
    chatter = io.StringIO()  # torchfcpe prints [INFO]/[WARN] lines while loading; keep them out of our stdout
    try:
        with contextlib.redirect_stdout(chatter):
            wrapper = torchfcpe.spawn_bundled_infer_model(device="cpu")
    except Exception as exc:
        raise ModelError(f"torchfcpe's bundled FCPE model failed to load ({exc})", "reinstall torchfcpe") from exc
    if chatter.getvalue():
        log.debug("torchfcpe: %s", chatter.getvalue().strip())
    net = wrapper.model.eval()
    if parametrize.is_parametrized(net.output_proj, "weight"):  # weight norm: fold it once, not on every call
        parametrize.remove_parametrizations(net.output_proj, "weight", leave_parametrized=True)
    return net


class FcpeF0:
    lookahead = LOOKAHEAD

    def __init__(self, *, f0_min: float = 50.0, f0_max: float = 1100.0, threshold: float = THRESHOLD):
        self.name = "fcpe"
        self.f0_min = float(f0_min)
        self.f0_max = float(f0_max)
        self.threshold = float(threshold)
        self.net = load_fcpe()
        self.mel = LogMel(FCPE_MEL)

        # FCPE's own pitch grid (its `cent_table` buffer: 360 bins, 32.7-1975.5 Hz, float32 as torchfcpe made it)
        self.cents = self.net.cent_table.double().numpy()  # (360,)

    @torch.inference_mode()
    def salience(self, audio16k: np.ndarray) -> np.ndarray:
        """(N,) audio -> (N // 160 + 1, 360) the network's latent (the F0 step computes the same: rtvc.rvc.f0_steps)."""
        mel = self.mel(as_audio(audio16k)).T[None]  # (1, T, 128)
        return self.net(mel)[0].numpy()

    def decode(self, salience: np.ndarray) -> np.ndarray:
        """torchfcpe's `local_argmax` decoder: the salience-weighted mean of the cents of the 9 bins around the peak
        (indices clamped at the grid's edges, as torchfcpe does), unvoiced where the peak is at or below the
        threshold; then our f0 range."""
        sal = np.asarray(salience, dtype=np.float64)  # (T, 360)
        peak = np.argmax(sal, axis=1)  # (T,)
        near = np.clip(peak[:, None] + np.arange(-4, 5)[None, :], 0, sal.shape[1] - 1)  # (T, 9)
        weights = np.take_along_axis(sal, near, axis=1)
        total = weights.sum(axis=1)
        cents = (weights * self.cents[near]).sum(axis=1) / np.where(total > 0, total, 1.0)
        voiced = (sal[np.arange(len(sal)), peak] > self.threshold) & (total > 0)
        f0 = np.where(voiced, 10.0 * np.exp2(cents / 1200.0), 0.0)
        return keep_range(f0, self.f0_min, self.f0_max)

    def estimate(self, audio16k: np.ndarray) -> np.ndarray:
        return self.decode(self.salience(audio16k))
