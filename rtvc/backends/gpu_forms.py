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

- "parallel-branches" and "own-stream" run independent work side by side: each decoder stage's resblocks on
  streams of their own (BranchesOnStreams), each step's replay on a stream of its own (read by the CUDA-graph
  runner, so F0 runs beside content). Written for the launch-bound GPU block (about 1,000 kernels of a few
  microseconds each, one after another); not measured on a GPU yet, so not defaults.

FORMS lists them; DEFAULT_FORMS (the three layer forms) are what the CUDA-graph backend applies. `rewrite`
returns a new module tree that shares every parameter with the original and leaves the original as it was (the
eager path and the ONNX export keep the plain layers).
"""

from __future__ import annotations

import copy
import types

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYER_FORMS = ("grouped-bmm", "pointwise-matmul", "channels-last")
BRANCHES = "parallel-branches"  # the decoder's resblocks of a stage side by side (a module form)
OWN_STREAM = "own-stream"  # the step's graph on a stream of its own (read by the CUDA-graph runner, not `rewrite`)
FORMS = (*LAYER_FORMS, BRANCHES, OWN_STREAM, "inductor")
DEFAULT_FORMS = LAYER_FORMS  # (measured on an H200: README, GPU; the two concurrency forms not yet measured)


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


class BranchesOnStreams:
    """The "parallel-branches" form of a decoder's `sum_branches` (rtvc.rvc.nsf.sum_of_branches): on a CUDA device
    the first resblock runs on the current stream and each other one on a side stream of its own, forked from the
    current stream and joined back before the sum (in the same order, so the same numbers). A stage's three
    resblocks are each a chain of small convolutions (a few microseconds a kernel, a few of the GPU's SMs), so
    side by side they take about as long as one. Captured in a CUDA graph, the fork and join become the graph's
    branches: the replay runs them concurrently on whatever stream it is launched on. Elsewhere (CPU, meta) it is
    the plain sum. A block's tensors never cross streams but through the fork (the input) and the join (the
    outputs), so the caching allocator's per-stream reuse is safe without record_stream."""

    def __init__(self):
        self.streams: dict[torch.device, list] = {}

    def _side(self, device: torch.device, n: int) -> list:
        from rtvc.backends import streams

        have = self.streams.setdefault(device, [])
        while len(have) < n:  # (held for this decoder's life: a capture of it never shares one with a replay)
            have.append(streams.draw(device, owner=self))
        return have[:n]

    @torch.compiler.disable  # (Dynamo breaks its graph here: the streams are Python; the resblocks run uncompiled)
    def __call__(self, blocks, x: Tensor) -> Tensor:
        if not x.is_cuda:
            from rtvc.rvc.nsf import sum_of_branches

            return sum_of_branches(blocks, x)
        here = torch.cuda.current_stream(x.device)
        side = self._side(x.device, len(blocks) - 1)
        for s in side:
            s.wait_stream(here)
        outs = [blocks[0](x)]
        for s, block in zip(side, blocks[1:], strict=True):
            with torch.cuda.stream(s):
                outs.append(block(x))
        for s in side:
            here.wait_stream(s)
        xs = outs[0]
        for o in outs[1:]:
            xs = xs + o
        return xs


def _branch_form(module: nn.Module, forms: tuple[str, ...]) -> nn.Module:
    """`module` (already rewritten below it) with its branches side by side, if it has a `sum_branches` (the NSF
    decoder) and `forms` ask for it: a shallow copy holding its own BranchesOnStreams. With "inductor" the
    decoder's `run` stays Python (torch.compiler.disable: the step's compiled graph stops at it) and its pieces
    around the branches (head, each stage's upsampling, tail) are compiled one by one; the resblocks run as they
    are, side by side (a stage's three of them uncompiled take about a third of one stage's compiled chain)."""
    if BRANCHES not in forms or not hasattr(type(module), "sum_branches"):
        return module
    out = copy.copy(module)
    out._modules = dict(module._modules)
    out.sum_branches = BranchesOnStreams()
    if "inductor" in forms:
        out.run = torch.compiler.disable(types.MethodType(type(module).run, out))
        for piece in ("head", "stage_in", "tail"):  # (stage_in: a graph per stage)
            setattr(out, piece, compiled_method(out, piece))
    return out


def compiled_method(obj, name: str, fullgraph: bool = True):
    """`obj.<name>` compiled by torch.compile (fixed shapes), through a copy of its function with a code object of
    its own. Dynamo keeps its compiled graphs per code object, at most 8 of them (torch._dynamo.config.
    recompile_limit), and past that a fullgraph compile fails: a daemon that loads voice after voice (other sizes,
    precisions, block sizes; a decoder's 4 stages) would get there through a class's shared `forward`. Its own code
    object also takes its graphs with it when the module goes (Inductor's on-disk cache still serves a recompile)."""
    fn = getattr(type(obj), name)
    own = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    return torch.compile(types.MethodType(own, obj), fullgraph=fullgraph, dynamic=False)


class CompiledStep(nn.Module):
    """A step (its layers in their forms) compiled as a whole by "inductor": compiled_method of its forward."""

    def __init__(self, step: nn.Module, fullgraph: bool):
        super().__init__()
        self.step = step
        self.run = compiled_method(step, "forward", fullgraph)

    def forward(self, *args: Tensor):
        return self.run(*args)


def _has_branches(module: nn.Module) -> bool:
    return any(isinstance(m.__dict__.get("sum_branches"), BranchesOnStreams) for m in module.modules())


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
    out = _rewrite(module, tuple(f for f in forms if f != OWN_STREAM))
    if "inductor" in forms:
        # one graph, unless the branches' streams break it (the decoder's run then stays Python: _branch_form)
        out = CompiledStep(out, fullgraph=not _has_branches(out))
    return out


def _rewrite(module: nn.Module, forms: tuple[str, ...]) -> nn.Module:
    if not set(forms) - {"inductor"}:
        return module
    new = _form(module, forms)
    if new is not None:
        return new
    children = {}
    for name, child in module.named_children():
        replaced = _rewrite(child, forms)
        if replaced is not child:
            children[name] = replaced
    if children:
        out = copy.copy(module)
        out._modules = dict(module._modules)  # (copy.copy shares the dict itself)
        out._modules.update(children)
    else:
        out = module
    return _branch_form(out, forms)
