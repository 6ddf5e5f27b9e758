"""The backend seam: a profile's backend / device / precision reach the RVC voice and its label; a choice this
machine cannot honour is an error naming the reason and the fix (never a silent eager fallback); the
fixed-shape step path streams what the eager path streams; CUDA graphs equal eager (GPU only)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="RVC voices need the rvc extra (torch)")

from rtvc.backends.gpu_forms import LAYER_FORMS, rewrite  # noqa: E402
from rtvc.backends.registry import check_backend  # noqa: E402
from rtvc.converter import StreamingConverter, StreamShape  # noqa: E402
from rtvc.errors import ConfigError  # noqa: E402
from rtvc.profiles import load_profile, make_voice  # noqa: E402
from rtvc.rvc.steps import example_inputs  # noqa: E402
from rtvc.voices.rvc import RvcModelSettings, RvcParams, RvcVoice  # noqa: E402
from rtvc.voices.rvc_steps import stream_shape  # noqa: E402
from rtvc.wavio import bundled_speech, load_mono  # noqa: E402

SR = 48000
NO_CUDA = not torch.cuda.is_available()
pytestmark = pytest.mark.usefixtures("torch_two_threads")


@pytest.fixture(scope="module")
def models(tiny_v2_models):
    return tiny_v2_models


def profile(d, **model) -> str:
    table = {"path": "v2.pth", "content": "hubert.pt", "f0": "yin", **model}
    lines = ['voice = "rvc"', "[model]"] + [f'{k} = "{v}"' for k, v in table.items()]
    (d / "p.toml").write_text("\n".join(lines) + "\n")
    return str(d / "p.toml")


def test_the_profile_choice_reaches_the_voice(models):
    voice = make_voice(load_profile(profile(models), models), SR)
    assert voice.label.endswith("[eager cpu fp32]") and not voice.fixed
    with pytest.raises(ConfigError, match=r"'model\.backend' = 'vulkan' is not allowed") as e:
        load_profile(profile(models, backend="vulkan"), models)
    assert "cuda-graph" in e.value.fix and "tensorrt" in e.value.fix


@pytest.mark.skipif(not NO_CUDA, reason="checks the errors of a machine without CUDA")
@pytest.mark.parametrize("backend", ["eager", "cuda-graph", "tensorrt"])
def test_cuda_choices_without_cuda_are_errors_not_fallbacks(models, backend):
    p = load_profile(profile(models, backend=backend, device="cuda"), models)
    with pytest.raises(ConfigError, match="device = 'cuda', but torch sees no CUDA device") as e:
        make_voice(p, SR)
    assert "device = 'cpu'" in e.value.fix


@pytest.mark.parametrize(
    ("backend", "device", "precision", "says"),
    [
        ("cuda-graph", "cpu", "fp32", "backend = 'cuda-graph' runs on a CUDA device"),
        ("tensorrt", "cpu", "fp32", "backend = 'tensorrt' runs on a CUDA device"),
        ("eager", "cpu", "fp16", "precision = 'fp16' needs device = 'cuda'"),
    ],
)
def test_impossible_combinations_name_the_fix(models, backend, device, precision, says):
    p = load_profile(profile(models, backend=backend, device=device, precision=precision), models)
    with pytest.raises(ConfigError, match=says):
        make_voice(p, SR)


def test_tensorrt_missing_is_an_error_naming_the_install(monkeypatch):
    import rtvc.backends

    monkeypatch.delattr(rtvc.backends, "tensorrt", raising=False)  # (set once anything imported it)
    monkeypatch.setitem(sys.modules, "rtvc.backends.tensorrt", None)  # what an absent module looks like to import
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # get past the device check on this machine
    with pytest.raises(ConfigError, match="TensorRT cannot be loaded") as e:
        check_backend("tensorrt", "cuda", "fp16")
    assert "pip install tensorrt" in e.value.fix and "cuda-graph" in e.value.fix
    monkeypatch.delitem(sys.modules, "rtvc.backends.tensorrt")  # the module is there; the tensorrt package is not
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(ConfigError, match=r"TensorRT cannot be loaded .*TensorRT is not installed") as e:
        check_backend("tensorrt", "cuda", "fp16")
    assert "pip install tensorrt-cu" in e.value.fix


def test_the_fixed_shape_step_path_streams_what_the_eager_path_streams(models):
    """The step path (what cuda-graph / tensorrt run) through eager runners on the CPU, against the eager
    reference path: after the first second they differ only by the fixed window (a few frames less left
    context, up to 10 ms of zeros past the newest audio): measured 33.7 dB SNR with 20 ms blocks."""
    x = load_mono(bundled_speech(), SR)[: 2 * SR]
    outs = {}
    for fixed in (False, True):
        voice = RvcVoice(SR, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="yin"), models)
        voice.fixed = fixed  # on this CPU-only machine the settings cannot select the step path
        conv = StreamingConverter(voice, RvcParams(), StreamShape(SR, 960, 144, 384))
        outs[fixed] = np.concatenate([conv.process_block(x[i : i + 960]) for i in range(0, len(x) - 959, 960)])
        if fixed:
            assert set(voice.runners) == {"content", "synth"}
            assert voice.runners["content"].inputs[0].shape == (1, voice._plan.content)
    ref, got = outs[False][SR:], outs[True][SR:]
    assert np.sqrt(np.mean(ref**2)) > 0.01
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2))
    assert snr >= 25.0, f"step path vs eager path: {snr:.1f} dB"


@pytest.mark.skipif(not NO_CUDA, reason="checks the runner's error on a machine without CUDA")
@pytest.mark.parametrize("compile_", [False, True])
def test_the_voice_asks_the_cuda_graph_backend_for_what_it_can_build(models, compile_):
    """The voice's runners for backend = 'cuda-graph' (compile = true adds the "inductor" form) reach the CUDA-graph
    runner, whose first act is to look for CUDA: here its error, not a TypeError on the way (compile = true was
    passed to a factory that took no forms, and only a GPU would have shown it)."""
    from dataclasses import replace

    from rtvc.errors import ModelError

    voice = RvcVoice(SR, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="fcpe"), models)
    voice.model = replace(voice.model, backend="cuda-graph", device="cuda", precision="fp16", compile=compile_)
    voice.fixed = True  # (what those settings give, past the CUDA check that a CPU-only machine fails first)
    with pytest.raises(ModelError, match="step 'content': CUDA graphs need a CUDA device"):
        StreamingConverter(voice, RvcParams(), StreamShape(SR, 960, 144, 384))


@pytest.mark.skipif(NO_CUDA, reason="no CUDA device")
@pytest.mark.parametrize(("precision", "tol"), [("fp32", 1e-4), ("fp16", 1e-2)])
def test_cuda_graphs_equal_eager(models, precision, tol):
    from rtvc.backends.cudagraph import graph_vs_eager

    voice = RvcVoice(SR, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="fcpe"), models)
    shape = stream_shape(voice, 20.0, SR)
    ref_steps = voice.steps(shape, "fp32")
    assert set(ref_steps) == {"content", "f0", "f0_window", "synth"}
    for name, module in voice.steps(shape, precision).items():
        err = graph_vs_eager(name, module, ref_steps[name])
        assert err <= tol, f"{name} {precision}: {err:.2e}"


@pytest.mark.skipif(NO_CUDA, reason="no CUDA device")
def test_cuda_graphs_equal_eager_with_steps_and_branches_side_by_side(models, monkeypatch):
    """The concurrency forms (rtvc.backends.gpu_forms: each step on its own stream, the decoder's resblocks side by
    side): the voice streamed through CUDA graphs with them against eager on the GPU, fp32, without TF32 in either
    (the default forms' parity is checked per step above). A missing wait between streams shows here: a block read
    before its step ran, or a step's input overwritten while it runs."""
    from rtvc.backends import gpu_forms

    x = load_mono(bundled_speech(), SR)[:SR]
    outs: dict[str, list] = {}
    cudnn = torch.backends.cudnn
    for backend, forms in (
        ("eager", None),
        ("cuda-graph", (*gpu_forms.LAYER_FORMS, "parallel-branches", "own-stream")),
    ):
        if forms:
            monkeypatch.setattr(gpu_forms, "DEFAULT_FORMS", forms)
        settings = RvcModelSettings(path="v2.pth", content="hubert.pt", f0="fcpe", backend=backend, device="cuda")
        with cudnn.flags(enabled=True, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False):
            voice = RvcVoice(SR, settings, models)
            conv = StreamingConverter(voice, RvcParams(), StreamShape(SR, 480, 144, 384))
            outs[backend] = [conv.process_block(x[i : i + 480]) for i in range(0, len(x) - 479, 480)]
        if forms:
            assert {tuple(r.forms) for r in voice.runners.values()} == {forms}
            assert all(r.stream is not None for r in voice.runners.values())
    # per block: a discrete choice (an F0 peak, a SOLA offset) that rounding tips differently changes a block or two
    # (a few % of them at most); a race between streams spoils most blocks
    ref = np.concatenate(outs["eager"])
    assert np.sqrt(np.mean(ref**2)) > 0.01
    errs = [
        float(np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-9))
        for r, g in zip(outs["eager"], outs["cuda-graph"], strict=True)
    ]
    off = [e for e in errs[5:] if e > 1e-3]  # (the first blocks: silence before the stream's start)
    assert len(off) <= len(errs) // 20, f"{len(off)} of {len(errs)} blocks differ by > 1e-3: {sorted(off)[-5:]}"
    assert float(np.median(errs[5:])) <= 1e-4, f"median block error {np.median(errs[5:]):.2e}"


@pytest.mark.parametrize("f0", ["fcpe", "crepe-tiny", "rmvpe"])
def test_every_step_runs_off_the_cpu_without_a_host_sync(models, f0):
    """What a GPU path needs of a step, checked here without a GPU: each step runs on the meta device, where a
    tensor made on the CPU inside the step meets the inputs' device and fails, and so does anything that reads
    values back to the host (.item(), a branch on a tensor), which would also break CUDA-graph capture."""
    if f0 == "rmvpe":
        from rtvc.rvc.f0.rmvpe_factory import write_rmvpe_checkpoint

        if not (models / "rmvpe.pt").exists():
            write_rmvpe_checkpoint(models / "rmvpe.pt", seed=1)
    extra = {"f0_model": "rmvpe.pt"} if f0 == "rmvpe" else {}
    voice = RvcVoice(SR, RvcModelSettings(path="v2.pth", content="hubert.pt", f0=f0, **extra), models)
    for block_ms in (20.0, 10.0):
        shape = stream_shape(voice, block_ms, SR)
        for precision in ("fp32", "fp16"):
            steps = voice.steps(shape, precision)
            assert set(steps) == {"content", "f0", "f0_window", "synth"}
            for name, module in steps.items():
                args = [a.to("meta") for a in example_inputs(module)]
                module.to("meta")
                for form in (module, rewrite(module, LAYER_FORMS)):  # (as captured: rtvc.backends.gpu_forms)
                    with torch.no_grad():
                        out = form(*args)
                    spec = module.outputs[0]
                    assert (tuple(out.shape), str(out.dtype)) == (spec.shape, f"torch.{spec.dtype}"), (name, precision)


def test_a_tensorrt_voice_hands_its_runners_its_own_modules_not_fp16_copies(models, monkeypatch):
    """A TensorRT runner reads only a step's I/O specs (the engine carries its weights), so the voice must not
    build fp16 copies of HuBERT, F0 and the synthesizer for it: they cost seconds and memory at every load."""
    from dataclasses import replace

    from rtvc.backends import registry
    from rtvc.voices.rvc import EngineContext

    got = {}

    def runner(name, module, device, **where):
        got[name] = module
        assert where["request"].precision == "fp16" and where["engines_dir"] == models / "engines"
        return registry.RUNNERS["eager"](name, module, "cpu")

    monkeypatch.setitem(registry.RUNNERS, "tensorrt", runner)
    voice = RvcVoice(SR, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="fcpe"), models)
    voice.model = replace(voice.model, backend="tensorrt", device="cuda", precision="fp16")
    voice.fixed = True  # (what those settings give, past the CUDA check that a CPU-only machine fails first)
    voice.engine_context = EngineContext(models / "engines", "rtvc build p")
    StreamingConverter(voice, RvcParams(), StreamShape(SR, 960, 144, 384))
    assert set(got) == {"content", "f0", "f0_window", "synth"}
    for name, module in got.items():
        assert module.inputs and module.outputs, name
        halves = [n for n, p in module.named_parameters() if p.dtype != torch.float32]
        assert halves == [], f"{name}: fp16 copies {halves[:3]}"
    assert got["content"].model is voice.pipeline.content.model
    assert got["synth"].net is voice.rvc.net


def test_an_overloaded_rvc_voice_is_offered_only_what_runs_faster_here():
    """The overload's fix said "run it on a GPU (device = cuda)" on machines where torch sees none, and that
    profile is then refused (a review)."""
    import torch

    from rtvc.voices.rvc import RvcModelSettings, faster_here

    cpu = faster_here(RvcModelSettings(path="v.pth"))
    assert cpu == ('run it on the GPU (the profile\'s device = "cuda")' if torch.cuda.is_available() else ""), cpu
    eager = faster_here(RvcModelSettings(path="v.pth", device="cuda"))
    assert eager == 'replay it as CUDA graphs (the profile\'s backend = "cuda-graph")', eager
    assert faster_here(RvcModelSettings(path="v.pth", device="cuda", backend="cuda-graph")) == ""
