"""RVC's text encoder ("enc_p"): content features (+ coarse pitch) -> prior mean and log-std per frame.

A VITS-style transformer: relative-position multi-head self-attention (window 10, one table shared by
all heads), a two-conv feed-forward block, and LayerNorm over channels after each, post-norm.

Layer and parameter names follow RVC's `infer/lib/infer_pack/attentions.py` and `models.py` so a
voice's state dict loads as is (`enc_p.encoder.attn_layers.0.conv_q.weight`, `...emb_rel_k`, ...).

We always run a batch of one with every frame valid, so RVC's sequence masks are all ones: multiplying
by them is exact and filling masked scores never triggers. We leave them out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WINDOW = 10  # relative positions -10..10; RVC's Encoder default (window_size=10)
LRELU_SLOPE = 0.1


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, T) tensor, eps 1e-5 (RVC `modules.LayerNorm`)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        # an fp32 island in fp16 models: the variance of fp16 activations loses too much (a no-op for fp32)
        y = F.layer_norm(x.transpose(1, -1).float(), (x.shape[1],), self.gamma.float(), self.beta.float(), self.eps)
        return y.to(x.dtype).transpose(1, -1)


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with learned relative-position key and value tables.

    score(i, j) = q_i . k_j / sqrt(d) + q_i . E_k[j - i] / sqrt(d), with E_k[r] = 0 for |r| > WINDOW;
    out_i = sum_j p(i, j) (v_j + E_v[j - i]). Both tables are (1, 2 * WINDOW + 1, d), shared by all heads.
    """

    def __init__(self, channels: int, n_heads: int):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"hidden channels {channels} are not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        scale = self.k_channels**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * WINDOW + 1, self.k_channels) * scale)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * WINDOW + 1, self.k_channels) * scale)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T)
        b, c, t = x.shape
        h, d = self.n_heads, self.k_channels
        q = self.conv_q(x).view(b, h, d, t).transpose(2, 3)  # (B, H, T, d)
        k = self.conv_k(x).view(b, h, d, t).transpose(2, 3)
        v = self.conv_v(x).view(b, h, d, t).transpose(2, 3)
        q = q / math.sqrt(d)
        to_rel, in_band, to_abs, in_seq = _band_indices(t, x.device)

        scores = torch.matmul(q, k.transpose(-2, -1))  # (B, H, T, T)
        rel_logits = torch.matmul(q, self.emb_rel_k.unsqueeze(0).transpose(-2, -1))  # (B, H, T, 2W+1)
        # relative -> absolute: entry (i, j) takes rel_logits[i, j - i + W]; zero outside the window
        local = torch.gather(rel_logits, -1, to_rel.expand(b, h, t, t))
        scores = scores + torch.where(in_band, local, 0.0)
        p = torch.softmax(scores, dim=-1)  # (B, H, T, T)

        out = torch.matmul(p, v)  # (B, H, T, d)
        # absolute -> relative: entry (i, r) takes p[i, i + r - W]; zero where that column is outside [0, T)
        rel_w = torch.gather(p, -1, to_abs.expand(b, h, t, 2 * WINDOW + 1))
        rel_w = torch.where(in_seq, rel_w, 0.0)  # (B, H, T, 2W+1)
        out = out + torch.matmul(rel_w, self.emb_rel_v.unsqueeze(0))
        out = out.transpose(2, 3).contiguous().view(b, c, t)
        return self.conv_o(out)


def _band_indices(t: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gather indices between the absolute (T, T) and relative (T, 2W+1) layouts (a few small int ops).

    Returns to_rel (T, T): the relative column of (i, j); in_band (T, T): |j - i| <= W;
    to_abs (T, 2W+1): the absolute column j = i + r - W of (i, r), clamped; in_seq (T, 2W+1): 0 <= j < T.
    """
    i = torch.arange(t, device=device)
    rel = i[None, :] - i[:, None]  # (T, T): j - i
    to_rel = (rel + WINDOW).clamp(0, 2 * WINDOW)
    in_band = rel.abs() <= WINDOW
    r = torch.arange(2 * WINDOW + 1, device=device)
    col = i[:, None] + r[None, :] - WINDOW  # (T, 2W+1)
    in_seq = (col >= 0) & (col < t)
    return to_rel, in_band, col.clamp(0, t - 1), in_seq


class FFN(nn.Module):
    """conv(k) -> relu -> conv(k), 'same' padding (left (k-1)//2, right k//2) as RVC pads it."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int):
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        x = torch.relu(self.conv_1(F.pad(x, self.pad)))
        return self.conv_2(F.pad(x, self.pad))


class Encoder(nn.Module):
    """n_layers x (attention, add & norm, FFN, add & norm)."""

    def __init__(self, hidden: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int):
        super().__init__()
        self.attn_layers = nn.ModuleList(RelativeSelfAttention(hidden, n_heads) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(hidden, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden) for _ in range(n_layers))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        for attn, norm1, ffn, norm2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm1(x + attn(x))
            x = norm2(x + ffn(x))
        return x


class TextEncoder(nn.Module):
    """enc_p: (1, T, phone_dim) features + (1, T) coarse pitch -> m_p, logs_p, each (1, inter, T - head)."""

    def __init__(
        self,
        phone_dim: int,
        inter_channels: int,
        hidden: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        f0: bool,
    ):
        super().__init__()
        self.inter_channels = inter_channels
        self.scale = math.sqrt(hidden)
        self.emb_phone = nn.Linear(phone_dim, hidden)
        # 256 coarse pitch ids (1..255 used, as `coarse_pitch` makes them)
        self.emb_pitch = nn.Embedding(256, hidden) if f0 else None
        self.encoder = Encoder(hidden, filter_channels, n_heads, n_layers, kernel_size)
        self.proj = nn.Conv1d(hidden, inter_channels * 2, 1)

    def forward(self, phone: Tensor, pitch: Tensor | None, head: int = 0) -> tuple[Tensor, Tensor]:
        x = self.emb_phone(phone)  # (1, T, H)
        if self.emb_pitch is not None:
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * self.scale, LRELU_SLOPE).transpose(1, -1)  # (1, H, T)
        x = self.encoder(x)
        # stream mode: the encoder sees every frame (context), the prior only the frames after `head`
        stats = self.proj(x[:, :, head:])  # (1, 2 * inter, T - head)
        m_p, logs_p = torch.split(stats, self.inter_channels, dim=1)
        return m_p, logs_p
