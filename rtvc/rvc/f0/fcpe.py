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

    @torch.inference_mode()
    def estimate(self, audio16k: np.ndarray) -> np.ndarray:
        mel = self.mel(as_audio(audio16k)).T[None]  # (1, T, 128)
        f0 = self.net.infer(mel, decoder="local_argmax", threshold=self.threshold)  # (1, T, 1) Hz
        return keep_range(f0[0, :, 0].numpy(), self.f0_min, self.f0_max)
