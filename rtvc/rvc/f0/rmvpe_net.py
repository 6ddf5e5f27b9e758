"""The RMVPE network (Wei et al. 2023, "RMVPE: A Robust Model for Vocal Pitch Estimation in Polyphonic Music").

Log-mel (B, 128, T) -> pitch salience (B, T, 360) on the CREPE cents grid. A U-Net over the (time, mel) plane:
5 encoder levels (1 -> 16 -> 32 -> 64 -> 128 -> 256 channels, each 4 residual conv blocks then 2x2 average
pooling), 4 intermediate stages at 512 channels, 5 decoder levels (2x2 transposed conv, skip concat, 4 residual
blocks), a 3x3 conv to 3 channels, a bidirectional GRU over time (3·128 -> 2·256) and a linear layer to 360 bins.

Module and parameter names follow the public `rmvpe.pt` state dict (e.g. `unet.encoder.layers.0.conv.0.conv.0
.weight`, `fc.0.gru.weight_ih_l0`, `fc.1.weight`) so that file loads with `load_state_dict(strict=True)`.
The time axis must be a multiple of 32 frames (five 2x poolings); `RmvpeNet.forward` does not pad, its caller does.
"""

from __future__ import annotations

import torch
from torch import nn

N_MELS = 128
N_LEVELS = 5  # encoder/decoder levels: time and mel axes shrink by 2**5 = 32
N_INTER = 4  # intermediate stages
N_BLOCKS = 4  # residual blocks per stage
BASE_CHANNELS = 16
GRU_HIDDEN = 256
N_BINS = 360


class ResConv(nn.Module):
    """Two 3x3 conv + batch norm + ReLU, plus the input (through a 1x1 conv when the width changes)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + skip


class ResStack(nn.Module):
    """`n` residual blocks, the first changing the width c_in -> c_out."""

    def __init__(self, c_in: int, c_out: int, n: int = N_BLOCKS):
        super().__init__()
        self.conv = nn.ModuleList([ResConv(c_in if i == 0 else c_out, c_out) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        widths = [1] + [BASE_CHANNELS * 2**i for i in range(N_LEVELS)]  # 1, 16, 32, 64, 128, 256
        self.layers = nn.ModuleList([ResStack(widths[i], widths[i + 1]) for i in range(N_LEVELS)])
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.bn(x)
        skips = []
        for stack in self.layers:
            x = stack(x)
            skips.append(x)  # full resolution of this level, for the decoder
            x = self.pool(x)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.layers = nn.ModuleList([ResStack(c_in if i == 0 else 2 * c_in, 2 * c_in) for i in range(N_INTER)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stack in self.layers:
            x = stack(x)
        return x


class UpLevel(nn.Module):
    """Transposed conv doubling time and mel, concat with the encoder's skip, residual blocks."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )
        self.conv2 = ResStack(2 * c_out, c_out).conv  # a bare ModuleList: the file names it `conv2.<i>`

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.layers = nn.ModuleList([UpLevel(c_in // 2**i, c_in // 2 ** (i + 1)) for i in range(N_LEVELS)])

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for level, skip in zip(self.layers, reversed(skips), strict=True):
            x = level(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(self):
        super().__init__()
        deepest = BASE_CHANNELS * 2 ** (N_LEVELS - 1)  # 256
        self.encoder = Encoder()
        self.intermediate = Intermediate(deepest)
        self.decoder = Decoder(2 * deepest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGru(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3 * N_MELS, GRU_HIDDEN, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RmvpeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.unet = DeepUnet()
        self.cnn = nn.Conv2d(BASE_CHANNELS, 3, 3, padding=1)
        # The file's fc.2 (dropout) and fc.3 (sigmoid) hold no parameters; sigmoid is applied in forward.
        self.fc = nn.Sequential(BiGru(), nn.Linear(2 * GRU_HIDDEN, N_BINS))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 128, T) log-mel, T a multiple of 32 -> (B, T, 360) salience in [0, 1]."""
        x = mel.transpose(1, 2).unsqueeze(1)  # (B, 1, T, 128): time is the image's height, mel its width
        x = self.cnn(self.unet(x))  # (B, 3, T, 128)
        x = x.transpose(1, 2).flatten(2)  # (B, T, 384), channel-major per frame
        return torch.sigmoid(self.fc(x))
