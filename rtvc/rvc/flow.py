"""RVC's normalising flow ("flow"): 4 x (mean-only residual coupling layer + channel flip), run in reverse.

At inference the flow maps a sample of the text encoder's prior, z_p (1, inter, T), to the decoder's
latent z. Each coupling layer keeps one half of the channels (x0) and shifts the other (x1) by a mean
predicted from x0 with a WaveNet-like stack (WN) conditioned on the speaker embedding:
reverse: x1 <- x1 - m(x0, g). "Mean-only" means no scale term (RVC builds it with mean_only=True, so
its exp(-logs) factor is exactly 1).

Names follow RVC's `ResidualCouplingBlock` / `ResidualCouplingLayer` / `WN` (modules.py): couplings
sit at `flow.flows.0, 2, 4, 6`, flips (no parameters) at the odd indices. The weight-normed convs
(`in_layers`, `res_skip_layers`, `cond_layer`) are plain convs here: the loader folds weight norm.
As in the text encoder, every frame is valid, so RVC's all-ones masks are left out (exact).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

N_FLOWS = 4
WN_KERNEL = 5  # RVC: ResidualCouplingBlock(inter, hidden, 5, 1, 3, gin_channels=gin)
WN_DILATION_RATE = 1
WN_LAYERS = 3


class WN(nn.Module):
    """Gated dilated conv stack: per layer tanh(a) * sigmoid(b) of in_layer(x) + cond, residual + skip sum."""

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int):
        super().__init__()
        self.hidden = hidden
        self.n_layers = n_layers
        self.cond_layer = nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=dilation, padding=(kernel_size - 1) * dilation // 2)
            )
            # the last layer only feeds the skip sum
            self.res_skip_layers.append(nn.Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1))

    def forward(self, x: Tensor, g: Tensor) -> Tensor:  # x (1, H, T), g (1, gin, 1) -> (1, H, T)
        h = self.hidden
        cond = self.cond_layer(g)  # (1, 2 * H * n_layers, 1)
        out = torch.zeros_like(x)
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            a = in_layer(x) + cond[:, 2 * h * i : 2 * h * (i + 1)]  # (1, 2H, T)
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = res_skip(acts)
            if i < self.n_layers - 1:
                x = x + rs[:, :h]
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out


class CouplingLayer(nn.Module):
    """Mean-only residual coupling: x1 <- x1 - post(WN(pre(x0), g)) in reverse."""

    def __init__(self, channels: int, hidden: int, gin_channels: int):
        super().__init__()
        if channels % 2:
            raise ValueError(f"inter_channels must be even for the flow's coupling layers, got {channels}")
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, WN_KERNEL, WN_DILATION_RATE, WN_LAYERS, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x: Tensor, g: Tensor) -> Tensor:  # (1, C, T)
        x0, x1 = torch.split(x, [self.half, self.half], dim=1)
        m = self.post(self.enc(self.pre(x0), g))  # (1, C/2, T)
        return torch.cat([x0, x1 - m], dim=1)


class Flip(nn.Module):
    """Reverses the channel order (its own inverse); holds the odd slots of `flows` as in RVC."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.flip(x, [1])


class Flow(nn.Module):
    def __init__(self, channels: int, hidden: int, gin_channels: int):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(N_FLOWS):
            self.flows.append(CouplingLayer(channels, hidden, gin_channels))
            self.flows.append(Flip())

    def reverse(self, z_p: Tensor, g: Tensor) -> Tensor:  # (1, inter, T), g (1, gin, 1) -> (1, inter, T)
        x = z_p
        for layer in reversed(self.flows):
            x = layer(x) if isinstance(layer, Flip) else layer.reverse(x, g)
        return x
