"""ONNX export of an RVC voice's fixed-shape steps: each exported step runs in onnxruntime (CPU) and matches
eager torch on the same inputs (fp32: relative L2 <= 1e-4; the fp16 variant against the fp32 reference:
<= 1e-2). The fp16 files must really hold fp16 weights, with the sine source and the norms left in fp32."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="RVC voices need the rvc extra (torch)")
ort = pytest.importorskip("onnxruntime", reason="the parity check needs onnxruntime (the test extra)")
onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (the rvc extra)")

from rtvc.backends.base import TensorSpec  # noqa: E402
from rtvc.backends.export import export_step, export_steps, tensorrt_refuses  # noqa: E402
from rtvc.errors import ModelError  # noqa: E402
from rtvc.rvc.checkpoint import load_rvc  # noqa: E402
from rtvc.rvc.f0 import make_f0  # noqa: E402
from rtvc.rvc.f0.rmvpe_factory import write_rmvpe_checkpoint  # noqa: E402
from rtvc.rvc.f0_steps import f0_step  # noqa: E402
from rtvc.rvc.factory import write_rvc_checkpoint  # noqa: E402
from rtvc.rvc.hubert_factory import write_fairseq_hubert  # noqa: E402
from rtvc.rvc.steps import SynthShape, SynthStep, example_inputs  # noqa: E402
from rtvc.voices.rvc import RvcModelSettings, RvcVoice  # noqa: E402
from rtvc.voices.rvc_steps import stream_shape  # noqa: E402

PARITY = {"fp32": 1e-4, "fp16": 1e-2}
pytestmark = pytest.mark.usefixtures("torch_two_threads")


@pytest.fixture(scope="module")
def voice(tmp_path_factory):
    d = tmp_path_factory.mktemp("export-models")
    write_rvc_checkpoint(d / "v2.pth", version="v2", sr="48k", f0=1, size="tiny", seed=1)
    write_fairseq_hubert(d / "hubert.pt", seed=0, layers=2, dim=768, heads=12, ffn=512)
    return RvcVoice(48000, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="crepe-tiny"), d)


def rel_l2(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - ref) / np.linalg.norm(ref))


def run_onnx(path, module, args) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [s.name for s in module.inputs]
    feed = {s.name: a.numpy() for s, a in zip(module.inputs, args, strict=True)}
    (out,) = session.run(None, feed)
    assert out.shape == module.outputs[0].shape and out.dtype == np.float32
    return out


def fp16_share(path) -> float:
    """Fraction of the file's weight elements stored as fp16."""
    model = onnx.load(str(path))
    sizes = {}
    for init in model.graph.initializer:
        n = int(np.prod(init.dims)) if init.dims else 1
        sizes[init.data_type] = sizes.get(init.data_type, 0) + n
    return sizes.get(onnx.TensorProto.FLOAT16, 0) / sum(sizes.values())


def test_each_step_of_a_v2_voice_matches_eager_in_onnxruntime(voice, tmp_path, capsys):
    shape = stream_shape(voice, 20.0, 48000)
    assert (shape.samplerate, shape.out_samplerate, shape.block) == (16000, 48000, 320)
    ref_modules = voice.steps(shape, "fp32")
    assert set(ref_modules) == {"content", "f0", "f0_window", "synth"}
    refs = {}
    for name, module in ref_modules.items():
        args = example_inputs(module, seed=3)
        with torch.no_grad():
            refs[name] = (args, module(*args).numpy().astype(np.float64))
    errors = {}
    for precision in ("fp32", "fp16"):
        exported = export_steps(voice, shape, tmp_path, precision)
        assert [e.name for e in exported] == ["content", "f0", "f0_window", "synth"]
        for e in exported:
            assert e.path.name == f"{e.name}-{precision}.onnx" and e.precision == precision
            model = onnx.load(str(e.path))
            assert model.opset_import[0].version >= 17
            assert all(d.dim_value > 0 for i in model.graph.input for d in i.type.tensor_type.shape.dim)  # fixed
            args, ref = refs[e.name]
            got = run_onnx(e.path, ref_modules[e.name], args)
            errors[f"{e.name} {precision}"] = err = rel_l2(got, ref)
            assert err <= PARITY[precision], f"{e.name} {precision}: relative L2 {err:.2e}"
            assert tensorrt_refuses(e.path) == [], e.name
            share = fp16_share(e.path)
            assert share > 0.5 if precision == "fp16" else share == 0.0, f"{e.name} {precision}: fp16 share {share}"
    # an fp16 step that computes anything at all differently from fp32 shows it
    assert errors["synth fp16"] > 10 * errors["synth fp32"]
    with capsys.disabled():
        print("\nONNX (onnxruntime CPU) vs eager fp32, relative L2:", {k: f"{v:.1e}" for k, v in errors.items()})


@pytest.mark.parametrize(("version", "sr", "f0"), [("v1", "40k", 1), ("v2", "32k", 0)])
def test_the_synth_step_of_v1_and_no_f0_voices(tmp_path, version, sr, f0):
    path = write_rvc_checkpoint(tmp_path / "m.pth", version=version, sr=sr, f0=f0, size="tiny", seed=2)
    module = SynthStep(load_rvc(path).net, SynthShape(frames=40, ret=9), "fp32")
    names = [s.name for s in module.inputs]
    with_f0 = ["phone", "pitch", "pitchf", "sid", "flow_noise", "sine_noise", "phase0"]
    assert names == (with_f0 if f0 else ["phone", "sid", "flow_noise"])
    args = example_inputs(module, seed=4)
    with torch.no_grad():
        ref = module(*args).numpy().astype(np.float64)
    export_step(module, tmp_path / "synth-fp32.onnx")
    assert rel_l2(run_onnx(tmp_path / "synth-fp32.onnx", module, args), ref) <= PARITY["fp32"]


def test_the_synth_step_is_the_pipelines_decode(voice):
    """The step with a tensor phase0 and baked-in skip computes what Synthesizer.infer computes."""
    net = voice.rvc.net
    module = SynthStep(net, SynthShape(frames=50, ret=10), "fp32")
    phone, pitch, pitchf, sid, flow_noise, sine_noise, phase0 = example_inputs(module, seed=5)
    with torch.no_grad():
        got = module(phone, pitch, pitchf, sid, flow_noise, sine_noise, phase0)
    ref = net.infer(phone, pitch, pitchf, 0, flow_noise, sine_noise, 40, 10, phase0=float(phase0))
    assert torch.equal(got.reshape(-1), ref.reshape(-1))


def test_a_bad_opset_and_precision_are_refused(voice, tmp_path):
    module = SynthStep(voice.rvc.net, SynthShape(frames=30, ret=5), "fp32")
    with pytest.raises(ModelError, match="opset 13"):
        export_step(module, tmp_path / "x.onnx", opset=13)
    with pytest.raises(ModelError, match="precision 'int8'"):
        export_steps(voice, stream_shape(voice, 20.0, 48000), tmp_path, "int8")


@pytest.mark.parametrize("method", ["fcpe", "rmvpe"])
def test_the_f0_steps_of_fcpe_and_rmvpe_match_eager_in_onnxruntime(method, tmp_path):
    """(CREPE's is in the voice's test above.) Measured: fcpe 1.2e-5 / 5.9e-4, rmvpe 5.3e-8 / 2.2e-4 (fp32 / fp16).
    RMVPE's bidirectional GRU exports as ONNX GRU, which TensorRT takes."""
    path = write_rmvpe_checkpoint(tmp_path / "rmvpe.pt", seed=1) if method == "rmvpe" else None
    est = make_f0(method, model_path=path)
    ref_module = f0_step(est, 1920, "fp32")
    args = example_inputs(ref_module, seed=3)
    with torch.no_grad():
        ref = ref_module(*args).numpy().astype(np.float64)
    for precision in ("fp32", "fp16"):
        module = f0_step(est, 1920, precision)
        export_step(module, tmp_path / f"f0-{precision}.onnx")
        assert tensorrt_refuses(tmp_path / f"f0-{precision}.onnx") == []
        err = rel_l2(run_onnx(tmp_path / f"f0-{precision}.onnx", module, args), ref)
        assert err <= PARITY[precision], f"{method} {precision}: relative L2 {err:.2e}"


def test_an_operator_tensorrt_cannot_parse_is_named_at_export(tmp_path):
    """torch.fft exports as ONNX DFT, which TensorRT's parser does not take: the export says so, at once."""

    class Spectrum(torch.nn.Module):
        inputs = (TensorSpec("audio", (1, 1024), "float32"),)
        outputs = (TensorSpec("magnitude", (1, 513), "float32"),)

        def forward(self, audio):
            return torch.fft.rfft(audio).abs()

    with pytest.raises(ModelError, match="operators TensorRT cannot parse: DFT") as e:
        export_step(Spectrum(), tmp_path / "spectrum.onnx")
    assert "cuda-graph" in e.value.fix


def test_local_functions_are_judged_by_their_bodies(tmp_path):
    """An exporter may keep local functions (TensorRT inlines them): what counts is what they hold; an operator
    of another domain that is not one of them (onnxruntime's contrib ops) is one TensorRT cannot parse."""
    from onnx import TensorProto, helper

    def model(body_op: str, extra=()):
        fn = helper.make_function(
            "rtvc.local", "Step", ["x"], ["y"], [helper.make_node(body_op, ["x", "x"], ["y"])],
            [helper.make_opsetid("", 17)],
        )  # fmt: skip
        nodes = [helper.make_node("Step", ["x"], ["y"], domain="rtvc.local"), *extra]
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("x", "y")]
        graph = helper.make_graph(nodes, "g", [io[0]], [io[1]])
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("rtvc.local", 1)]
        m = helper.make_model(graph, functions=[fn], opset_imports=opsets)
        path = tmp_path / f"{body_op}-{len(extra)}.onnx"
        onnx.save(m, str(path))
        return path

    assert tensorrt_refuses(model("Add")) == []
    assert tensorrt_refuses(model("DFT")) == ["DFT"]
    contrib = helper.make_node("FusedMatMul", ["x", "x"], ["z"], domain="com.microsoft")
    assert tensorrt_refuses(model("Add", [contrib])) == ["com.microsoft::FusedMatMul"]


def test_a_block_that_is_not_whole_10_ms_frames_has_no_stream_shape(voice):
    """`rtvc build --block-ms 15` exported and built engines for a stream the voice then refused."""
    from rtvc.errors import ConfigError

    with pytest.raises(ConfigError, match=r"block 720 frames \(15\.00 ms\).*10 ms frames.*block_ms = 20 \(multiples"):
        stream_shape(voice, 15.0, 48000)
