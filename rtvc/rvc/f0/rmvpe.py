"""RMVPE F0 estimator: our implementation of the network, loading a user-supplied `rmvpe.pt`.

Pipeline (as RVC runs it): log-mel (128 HTK mels, 30-8000 Hz, 1024-point periodic-Hann STFT, hop 160, reflect
centre padding) -> pad the frame axis on the right to a multiple of 32 by reflection -> network -> salience of the
first T frames -> local weighted average of cents around the peak bin; a frame whose peak salience is ≤ 0.03
(RVC's threshold) is unvoiced. Values outside [f0_min, f0_max] are then unvoiced too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rtvc.errors import ModelError
from rtvc.rvc.f0.base import as_audio, keep_range, local_average_f0
from rtvc.rvc.f0.logmel import RMVPE_MEL, LogMel
from rtvc.rvc.f0.rmvpe_net import RmvpeNet
from rtvc.rvc.torch_pickle import load_torch_file

THRESHOLD = 0.03  # peak salience at or below this is unvoiced (RVC's pipeline uses 0.03)
TILE = 32  # frames: the U-Net pools time by 2 five times

# The network sees the whole input (the U-Net's receptive field is hundreds of frames, the GRU is bidirectional),
# so no finite lookahead makes frames exact. We declare the right edge of a frame's own STFT window, as for FCPE,
# whose convolutional context behaves so (measured there). RMVPE's own figure cannot be measured without its
# trained weights; RVC's real-time GUI uses RMVPE's frames right up to the end of its input.
LOOKAHEAD = RMVPE_MEL.left


def _fix(where: str) -> str:
    return (
        f"download rmvpe.pt (RVC's F0 model, ~181 MB) and set its path in {where} "
        "(`rtvc import rmvpe.pt` copies it to models/f0/)"
    )


def load_rmvpe_state(path: str | Path, where: str = "profile") -> dict[str, torch.Tensor]:
    """The checked state dict of an `rmvpe.pt`, float32; ModelError naming the file on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: RMVPE model file not found", _fix(where))
    state = load_torch_file(path, _fix(where))  # runs no code the file names; truncated files are named so
    if isinstance(state, dict) and "weight" in state and "config" in state:
        raise ModelError(f"{path}: this is an RVC voice, not an RMVPE model", _fix(where))
    if isinstance(state, dict) and "model" in state and ("cfg" in state or "args" in state):
        raise ModelError(
            f"{path}: this is a HuBERT / ContentVec content model (a fairseq checkpoint), not an RMVPE model",
            "set it as the profile's content model; " + _fix(where),
        )
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: not an RMVPE model (expected a bare state dict of tensors)", _fix(where))
    with torch.device("meta"):  # shapes only: no memory, no random init
        expected = {k: v.shape for k, v in RmvpeNet().state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{path}: not an RMVPE model: {len(missing)} keys missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})",
            _fix(where),
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(shape)}" for k, shape in expected.items() if state[k].shape != shape
    ]
    if wrong:
        raise ModelError(f"{path}: RMVPE tensors of the wrong shape: {'; '.join(wrong[:3])}", _fix(where))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def reflect_index(n: int, total: int) -> np.ndarray:
    """Indices 0..total-1 into a length-n axis, continuing past the end by reflection (edge not repeated)."""
    i = np.arange(total)
    if n == 1:
        return np.zeros(total, dtype=np.int64)
    period = 2 * (n - 1)
    i = i % period
    return np.where(i < n, i, period - i)


class RmvpeF0:
    """F0 by RMVPE from a user's rmvpe.pt; see the module docstring for the pipeline."""

    lookahead = LOOKAHEAD

    def __init__(self, model_path: str | Path, *, f0_min: float = 50.0, f0_max: float = 1100.0, where: str = "profile"):
        self.name = "rmvpe"
        self.f0_min = float(f0_min)
        self.f0_max = float(f0_max)
        self.path = Path(model_path)
        state = load_rmvpe_state(self.path, where)
        with torch.device("meta"):  # skip the random init: every tensor comes from the file (assign=True)
            self.net = RmvpeNet()
        self.net.load_state_dict(state, strict=True, assign=True)
        self.net.eval()
        self.mel = LogMel(RMVPE_MEL)

    @torch.inference_mode()
    def salience(self, audio16k: np.ndarray) -> np.ndarray:
        """(N,) audio -> (N // 160 + 1, 360) salience."""
        mel = self.mel(as_audio(audio16k))  # (128, T)
        t = mel.shape[1]
        tiles = -(-t // TILE) * TILE
        if tiles != t:  # right-pad by reflection to whole tiles, as RVC does
            mel = mel[:, torch.from_numpy(reflect_index(t, tiles))]
        return self.net(mel[None])[0, :t].numpy()  # (T, 360)

    def decode(self, salience: np.ndarray) -> np.ndarray:
        return keep_range(local_average_f0(salience, THRESHOLD), self.f0_min, self.f0_max)

    def estimate(self, audio16k: np.ndarray) -> np.ndarray:
        return self.decode(self.salience(audio16k))
