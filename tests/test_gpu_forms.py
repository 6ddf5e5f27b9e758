"""The GPU forms of layers (rtvc.backends.gpu_forms) compute what the layers compute, share their weights, and leave
the original module tree as it was. Checked on the CPU in fp32; the CUDA-graph parity test (GPU only) checks the
rewritten steps captured against plain eager on the GPU."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch", reason="RVC voices need the rvc extra (torch)")

from torch import nn  # noqa: E402

from rtvc.backends.gpu_forms import (  # noqa: E402
    DEFAULT_FORMS,
    FORMS,
    LAYER_FORMS,
    BranchesOnStreams,
    ChannelsLastConv1d,
    GroupedConv1dAsBmm,
    PointwiseConv1dAsMatmul,
    compile_missing,
    rewrite,
)
from rtvc.errors import ConfigError  # noqa: E402
from rtvc.rvc.steps import example_inputs  # noqa: E402
from rtvc.voices.rvc import RvcModelSettings, RvcVoice  # noqa: E402
from rtvc.voices.rvc_steps import stream_shape  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_two_threads")


MATMUL_FORMS = ("grouped-bmm", "pointwise-matmul")  # the forms that keep every weight tensor as it is


def rel(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref.double()).norm() / ref.double().norm())


@pytest.mark.parametrize(
    ("conv", "form"),
    [
        (nn.Conv1d(48, 48, 16, padding=8, groups=4), GroupedConv1dAsBmm),  # HuBERT's positional conv, small
        (nn.Conv1d(24, 12, 5, padding=4, dilation=2, groups=3), GroupedConv1dAsBmm),
        (nn.Conv1d(16, 16, 31, padding=15, groups=16), GroupedConv1dAsBmm),  # depthwise
        (nn.Conv1d(32, 64, 1), PointwiseConv1dAsMatmul),
        (nn.Conv1d(32, 8, 1, bias=False), PointwiseConv1dAsMatmul),
        (nn.Conv1d(16, 24, 7, padding=3), ChannelsLastConv1d),
        (nn.Conv1d(16, 16, 3, padding=5, dilation=5), ChannelsLastConv1d),
        (nn.Conv1d(1, 16, 8, stride=4, padding=2), ChannelsLastConv1d),  # the NSF's noise convolutions
        (nn.Conv1d(16, 1, 7, padding=3, bias=False), ChannelsLastConv1d),
        (nn.ConvTranspose1d(32, 16, 16, 8, padding=4), ChannelsLastConv1d),  # the NSF's upsampling
    ],
)
@pytest.mark.parametrize("batch", [1, 2])
def test_each_form_computes_its_layer(conv, form, batch):
    torch.manual_seed(0)
    x = torch.randn(batch, conv.in_channels, 37)
    new = rewrite(conv, LAYER_FORMS)
    assert type(new) is form
    with torch.no_grad():
        ref, got = conv(x), new(x)
    assert got.shape == ref.shape
    assert rel(got, ref) < 1e-6


def test_forms_leave_the_convolutions_they_do_not_name_alone():
    assert set(DEFAULT_FORMS) == set(LAYER_FORMS)  # (channels-last too since its H200 figures: README, GPU)
    for conv in (nn.Conv1d(16, 24, 7, padding=3), nn.Conv1d(8, 8, 1, stride=2)):
        assert rewrite(conv, MATMUL_FORMS) is conv
    same = nn.Conv1d(8, 8, 3, padding="same")
    assert rewrite(same, LAYER_FORMS) is same  # (padding given as a word: left as it is)
    assert set(FORMS) == {*LAYER_FORMS, "parallel-branches", "own-stream", "inductor"}
    with pytest.raises(ValueError, match=r"unknown GPU forms \['winograd'\]"):
        rewrite(nn.Conv1d(1, 1, 1), ("winograd",))


@pytest.fixture(scope="module")
def steps(tiny_v2_models):
    voice = RvcVoice(48000, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="fcpe"), tiny_v2_models)
    return voice.steps(stream_shape(voice, 20.0, 48000), "fp32")


def kinds(module: nn.Module) -> dict[str, int]:
    names = {}
    for m in module.modules():
        names[type(m).__name__] = names.get(type(m).__name__, 0) + 1
    return names


@pytest.mark.parametrize("forms", [MATMUL_FORMS, LAYER_FORMS])
def test_a_voices_steps_rewritten_compute_the_same_and_share_the_weights(steps, forms):
    """Content (HuBERT's positional conv is the grouped one), F0 (FCPE) and synth of a tiny v2 voice: every
    output within 1e-5 of the plain step; the plain steps still hold their nn.Conv1d layers; the rewritten
    ones use the same parameter tensors (channels-last keeps its own copy of a kernel's weight)."""
    for name, step in steps.items():
        before = kinds(step)
        new = rewrite(step, forms)
        assert new is not step and kinds(step) == before, name
        assert kinds(new).get("PointwiseConv1dAsMatmul", 0) > 0 or name == "content", (name, kinds(new))
        if name == "content":
            assert kinds(new)["GroupedConv1dAsBmm"] == 1
        shared = {p.data_ptr() for p in step.parameters()}
        if "channels-last" not in forms:
            assert {p.data_ptr() for p in new.parameters()} == shared, name
        args = example_inputs(step, seed=3)
        with torch.no_grad():
            ref, got = step(*args), new(*args)
        assert rel(got, ref) < 1e-5, (name, forms, rel(got, ref))


def test_a_step_compiled_by_inductor_computes_the_same(steps):
    """The "inductor" form: the F0 step (FCPE, the quickest to compile) in the default forms, compiled as one graph
    (fullgraph: a graph break, which would put Python back between kernels, is an error), on the CPU's Inductor
    backend (C++); on a GPU the same graph becomes Triton kernels."""
    step = steps["f0"]
    compiled = rewrite(step, (*DEFAULT_FORMS, "inductor"))
    args = example_inputs(step, seed=3)
    with torch.no_grad():
        ref, got = step(*args), compiled(*args)
    assert rel(got, ref) < 1e-5


class _Small(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x)) * 0.5


def test_compiling_step_after_step_never_meets_dynamos_limit():
    """A daemon loads voice after voice, each compiled (compile = true): one class's steps in other sizes, more than
    the 8 graphs Dynamo keeps per code object. Each compiled step has a code object of its own, so the 10th
    compiles as the first did (through the class's shared forward the 9th failed: FailOnRecompileLimitHit)."""
    for channels in range(1, 11):
        step = _Small(channels)
        x = torch.randn(1, channels, 16)
        with torch.no_grad():
            assert rel(rewrite(step, ("inductor",))(x), step(x)) < 1e-6, channels


def test_the_decoders_branches_side_by_side_compute_the_same(steps):
    """The "parallel-branches" form: the synth step's decoder gets its own BranchesOnStreams (on the CPU the plain
    sum; its streams are checked on a GPU, tests/test_backend_seam.py), the original decoder keeps the plain sum;
    with "inductor" the decoder's run stays Python between compiled pieces (head, each stage's upsampling, tail)
    and the rest of the step is compiled around it: the same output, compiled on the CPU's Inductor (C++)."""
    step = steps["synth"]
    args = example_inputs(step, seed=3)
    with torch.no_grad():
        ref = step(*args)
    for forms in ((*LAYER_FORMS, "parallel-branches"), (*LAYER_FORMS, "parallel-branches", "own-stream", "inductor")):
        new = rewrite(step, forms)
        decoders = [m for m in new.modules() if isinstance(m.__dict__.get("sum_branches"), BranchesOnStreams)]
        assert len(decoders) == 1 and decoders[0] is not step.net.dec, forms
        assert "sum_branches" not in step.net.dec.__dict__ and "run" not in step.net.dec.__dict__
        assert ("run" in decoders[0].__dict__) == ("inductor" in forms)
        with torch.no_grad():
            got = new(*args)
        assert rel(got, ref) < 1e-5, (forms, rel(got, ref))
    content = rewrite(steps["content"], ("parallel-branches",))  # (no decoder in it: left as it is)
    assert content is steps["content"]


def test_compile_missing_names_what_triton_lacks(monkeypatch, tmp_path):
    """What a profile's compile = true needs besides a GPU, checked before any loading: Triton, and a C compiler
    ($CC, else gcc or clang on PATH), as Triton itself looks for them."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert "is not a program on this machine" in compile_missing()
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(tmp_path))  # (an empty folder: no gcc, no clang)
    assert compile_missing().startswith("no C compiler (gcc or clang)")
    monkeypatch.setitem(sys.modules, "triton", None)  # (an import of it fails, as where it is not installed)
    assert compile_missing().startswith("Triton is not installed")


def test_compile_is_refused_for_a_backend_it_does_nothing_for(tiny_v2_models):
    settings = RvcModelSettings(path="v2.pth", content="hubert.pt", compile=True)  # (backend eager)
    with pytest.raises(ConfigError, match=r"p\.toml: \[model\] compile = true compiles .* but backend = 'eager'"):
        RvcVoice(48000, settings, tiny_v2_models, "p.toml: [model]")
    assert RvcVoice.cannot_run(settings, "p.toml: [model]").startswith("p.toml: [model] compile = true")
