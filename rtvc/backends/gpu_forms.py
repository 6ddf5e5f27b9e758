"""The same layers in forms that run faster as GPU kernels: a step's module rewritten before its CUDA-graph capture.

Each form computes the function of the layer it replaces, with the same weight tensors (no copy, except where a
form needs its own layout), so parity with eager holds as it did (tests/test_gpu_forms.py checks each against the
layer on the CPU). Why, from the profile of a full-size RVC v2 48k block on an H200 (bench/results/
gpu_profile_h200_before_forms.txt, CUDA graphs fp16, 4.5 ms of GPU time a block):
- "grouped-bmm": HuBERT's positional convolution (768 channels, 16 groups, kernel 128) ran as cuDNN's
  `conv2d_grouped_direct_kernel`, 0.41 ms a block for 0.5 GFLOP; as one batched matmul over the 16 groups
  (the taps unfolded) it is a single tensor-core GEMM.
- "pointwise-matmul": a kernel-1 Conv1d is a matmul. About half of a block's ~100 convolutions are (the text
  encoder's attention projections, the flow's WaveNet projections, the conditioning); cuDNN ran each between
  NCHW<->NHWC conversions (about 300 conversion kernels a block, 0.85 ms), a matmul needs none.
- "channels-last": the other convolutions as 2-D convolutions on channels-last (NHWC) tensors, so cuDNN's NHWC
  kernels get their layout without converting input and weight each call. Measured on the H200 with the two
  above: p50 per 20 ms block 6.36 -> 5.32 ms (the two above alone: 6.68 -> 6.36 ms; bench/results/rvc_gpu.json).
- "inductor": the whole step (after the forms above) compiled by torch.compile (TorchInductor, one graph, fixed
  shapes), which fuses the ~900 small kernels of a block (elementwise, norms) into fewer Triton kernels; the
  CUDA-graph runner then captures the compiled step. On the H200, after the three layer forms: p50/p99 per
  20 ms block 5.16/6.38 -> 3.92/5.00 ms, parity 1.1e-3 to 1.5e-3 in fp16 (bench/results/
  rvc_gpu_with_compiled.json). It costs a compile when the voice loads (seconds to a minute; Inductor caches it
  on disk) and needs Triton and a C compiler: a profile asks for it (compile = true), it is not a default.

FORMS lists them; DEFAULT_FORMS (the three layer forms) are what the CUDA-graph backend applies. `rewrite`
returns a new module tree that shares every parameter with the original and leaves the original as it was (the
eager path and the ONNX export keep the plain layers).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FORMS = ("grouped-bmm", "pointwise-matmul", "channels-last", "inductor")
LAYER_FORMS = FORMS[:3]  # (inductor compiles the whole step)
DEFAULT_FORMS = LAYER_FORMS  # (measured on an H200: README, GPU)


def compile_missing() -> str:
    """What the "inductor" form lacks on this machine to compile for a GPU, or "": Triton (its kernels) and a C
    compiler (Triton builds its launchers with $CC, else gcc or clang, as triton.runtime.build looks for them)."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (pip install triton; Linux x86-64 CUDA builds of torch bring it)"
    cc = os.environ.get("CC")
    if cc:
        return "" if shutil.which(cc) else f"CC = {cc!r} is not a program on this machine"
    if shutil.which("gcc") or shutil.which("clang"):
        return ""
    return "no C compiler (gcc or clang) on this machine, which Triton needs (apt-get install gcc, or set CC)"


def _plain_conv(conv: nn.Module) -> bool:
    return type(conv) is nn.Conv1d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


class GroupedConv1dAsBmm(nn.Module):
    """A grouped Conv1d (stride 1) as one batched matmul: the padded input's taps unfolded per group."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        c = self.conv
        g, (k,), (pad,), (d,) = c.groups, c.kernel_size, c.padding, c.dilation
        n, cin, _ = x.shape
        taps = F.pad(x, (pad, pad)).unfold(2, (k - 1) * d + 1, 1)[..., ::d]  # (n, cin, t, k)
        t = taps.shape[2]
        taps = taps.reshape(n, g, cin // g, t, k).permute(0, 1, 3, 2, 4).reshape(n, g, t, cin // g * k)
        w = c.weight.reshape(g, c.out_channels // g, cin // g * k)  # (g, out / g, in / g * k): a view
        y = torch.matmul(taps, w.transpose(1, 2)[None])  # (n, g, t, out / g)
        y = y.permute(0, 1, 3, 2).reshape(n, c.out_channels, t)
        return y if c.bias is None else y + c.bias[:, None]


class PointwiseConv1dAsMatmul(nn.Module):
    """A kernel-1 Conv1d (stride 1, no padding, one group) as W @ x + b."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.conv.weight, self.conv.bias
        if b is None:
            return torch.matmul(w[:, :, 0], x)
        if x.shape[0] == 1:  # the steps' case: one GEMM accumulating onto the bias, not a GEMM and then an add
            return torch.addmm(b[:, None], w[:, :, 0], x[0])[None]
        return torch.matmul(w[:, :, 0], x) + b[:, None]


class ChannelsLastConv1d(nn.Module):
    """A Conv1d as a 2-D convolution over (n, c, 1, t) channels-last tensors; its output stays time-major
    ((n, c, t) with channel stride 1), which the next such convolution takes without a conversion."""

    def __init__(self, conv: nn.Conv1d | nn.ConvTranspose1d):
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        w = conv.weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last)
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = conv.bias
        self.stride, self.padding, self.dilation = (1, conv.stride[0]), (0, conv.padding[0]), (1, conv.dilation[0])
        self.groups = conv.groups
        self.output_padding = (0, conv.output_padding[0]) if self.transposed else None

    def forward(self, x: Tensor) -> Tensor:
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        if self.transposed:
            y = F.conv_transpose2d(
                x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
            )
        else:
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y.squeeze(2)


def _form(child: nn.Module, forms: tuple[str, ...]) -> nn.Module | None:
    """The replacement for `child` under `forms`, or None to keep it."""
    if _plain_conv(child):
        pointwise = child.kernel_size == (1,) and child.stride == (1,) and child.padding == (0,) and child.groups == 1
        if pointwise and "pointwise-matmul" in forms:
            return PointwiseConv1dAsMatmul(child)
        if child.groups > 1 and child.stride == (1,) and "grouped-bmm" in forms:
            return GroupedConv1dAsBmm(child)
        if "channels-last" in forms:
            return ChannelsLastConv1d(child)
    elif type(child) is nn.ConvTranspose1d and child.padding_mode == "zeros" and "channels-last" in forms:
        return ChannelsLastConv1d(child)
    return None


def rewrite(module: nn.Module, forms: tuple[str, ...] = DEFAULT_FORMS) -> nn.Module:
    """`module` with its layers in `forms`, as a new tree sharing every parameter and buffer with `module`
    (only the modules on the way to a replaced layer are copied, shallowly); `module` itself is unchanged.
    With "inductor", that tree compiled (torch.compile: one graph, fixed shapes; it compiles at its first call)."""
    unknown = set(forms) - set(FORMS)
    if unknown:
        raise ValueError(f"unknown GPU forms {sorted(unknown)}; known: {', '.join(FORMS)}")
    out = _rewrite(module, tuple(f for f in forms if f in LAYER_FORMS))
    if "inductor" in forms:
        out = torch.compile(out, fullgraph=True, dynamic=False)
    return out


def _rewrite(module: nn.Module, forms: tuple[str, ...]) -> nn.Module:
    if not forms:
        return module
    new = _form(module, forms)
    if new is not None:
        return new
    children = {}
    for name, child in module.named_children():
        replaced = _rewrite(child, forms)
        if replaced is not child:
            children[name] = replaced
    if not children:
        return module
    out = copy.copy(module)
    out._modules = dict(module._modules)  # (copy.copy shares the dict itself)
    out._modules.update(children)
    return out
