"""The TensorRT backend: `rtvc build` and the runner. Where TensorRT or a CUDA device is absent (CI, this
machine) the engine tests skip with that reason; what does not need them (the refusals with their install
hints, the CUDA runtime's error path, the progress output) runs everywhere."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtvc.backends.base import ExportedStep, StreamShape, TensorSpec
from rtvc.build import ProgressPrinter
from rtvc.errors import RtvcError

ROOT = Path(__file__).resolve().parent.parent
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def rtvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rtvc", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def _profiles(tmp_path: Path) -> Path:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "alice.toml").write_text(
        'voice = "rvc"\n[model]\npath = "alice.pth"\ncontent = "hubert_base.pt"\nf0 = "yin"\n'
        'backend = "tensorrt"\ndevice = "cuda"\n'
    )
    (tmp_path / "profiles" / "eager.toml").write_text(
        'voice = "rvc"\n[model]\npath = "alice.pth"\ncontent = "hubert_base.pt"\nf0 = "yin"\n'
    )
    (tmp_path / "profiles" / "deep.toml").write_text('voice = "pitch"\n[params]\npitch = -4.0\n')
    return tmp_path


@pytest.mark.skipif(HAVE_TRT and _cuda(), reason="TensorRT and a CUDA device are present: the build would run")
def test_build_without_tensorrt_or_cuda_exits_2_with_the_fix(tmp_path: Path):
    _profiles(tmp_path)
    for name in ("alice.pth", "hubert_base.pt"):  # (the profile's files there: only the machine lacks something)
        (tmp_path / "profiles" / name).write_bytes(b"")
    res = rtvc("build", "alice", "--block-ms", "10", cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rtvc: error: rtvc build needs TensorRT and a CUDA GPU: ")
    if not HAVE_TRT:
        assert "TensorRT is not installed" in lines[0] and "pip install tensorrt-cu" in lines[0]
    if not _cuda():
        assert "torch sees no CUDA device" in lines[0] and "NVIDIA GPU" in lines[0]
    assert not (tmp_path / "engines").exists()  # refused before touching anything


def test_build_refuses_a_profile_that_would_not_use_the_engines(tmp_path: Path):
    """It built them (minutes on a GPU) and said "done" for a profile that runs eager, or CUDA graphs."""
    res = rtvc("build", "eager", "--block-ms", "10", cwd=_profiles(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert "profile 'eager' runs backend = 'eager' (device 'cpu'): it would not use TensorRT engines" in lines[0]
    assert 'set backend = "tensorrt" and device = "cuda"' in lines[0]
    assert not (tmp_path / "engines").exists()


def test_build_says_the_wrong_backend_with_the_profiles_other_faults(tmp_path: Path):
    """`rtvc build` on an eager profile with a 15 ms block and another precision said only the backend; the block,
    the precision and the missing model files came one build at a time. All are said together in one line."""
    res = rtvc("build", "eager", "--block-ms", "15", "--precision", "fp16", cwd=_profiles(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    for said in (
        "profile 'eager' runs backend = 'eager' (device 'cpu'): it would not use TensorRT engines",
        "--precision fp16, but profile 'eager' runs precision = 'fp32'",
        f"path = 'alice.pth' ({tmp_path / 'profiles' / 'alice.pth'}): no such file",
        "stream.block_ms = 15 at audio.samplerate = 48000: not whole 10 ms frames",
        'set backend = "tensorrt" and device = "cuda"',
        "leave out --precision",
        "put the files there or point the profile at them",
        "set stream.block_ms = 20",
    ):
        assert said in lines[0], (said, lines[0])
    assert "needs TensorRT and a CUDA GPU" not in lines[0]
    assert not (tmp_path / "engines").exists()


def test_build_refuses_a_precision_the_profile_would_not_look_up_and_a_device_it_cannot_run_on(tmp_path: Path):
    """`--precision fp16` for a profile that runs fp32 built engines, said "done", and the voice then found none; a
    profile with backend tensorrt on device cpu heard only of the missing GPU (its own fault said later)."""
    res = rtvc("build", "alice", "--precision", "fp16", cwd=_profiles(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--precision fp16, but profile 'alice' runs precision = 'fp32'" in lines[0], lines
    assert "leave out --precision" in lines[0] and 'set precision = "fp16"' in lines[0]
    (tmp_path / "profiles" / "cpu.toml").write_text(
        'voice = "rvc"\n[model]\npath = "alice.pth"\ncontent = "hubert_base.pt"\nf0 = "yin"\nbackend = "tensorrt"\n'
    )
    res = rtvc("build", "cpu", cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "backend = 'tensorrt' runs on a CUDA device, but device = 'cpu'" in res.stderr, res.stderr
    assert "needs TensorRT and a CUDA GPU" not in res.stderr
    assert not (tmp_path / "engines").exists()


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: it would import")
def test_a_tensorrt_installed_whose_libraries_do_not_load_is_not_called_absent(tmp_path: Path):
    """doctor said "absent (OSError) -> pip install tensorrt-cu13" and rtvc build "TensorRT is not installed" for a
    wheel that is installed and whose libnvinfer does not load: installing it again is not the fix."""
    site = tmp_path / "site"
    (site / "tensorrt").mkdir(parents=True)
    (site / "tensorrt" / "__init__.py").write_text(
        'raise OSError("libnvinfer.so.10: cannot open shared object file: No such file or directory")\n'
    )
    (site / "tensorrt-10.13.3.9.dist-info").mkdir()
    (site / "tensorrt-10.13.3.9.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tensorrt\nVersion: 10.13.3.9\n"
    )
    code = (
        "from rtvc.doctor import check_tensorrt\n"
        "from rtvc.backends.tensorrt import import_tensorrt\n"
        "from rtvc.errors import RtvcError\n"
        "(c,) = check_tensorrt(); print(c.ok, '|', c.found, '|', c.fix)\n"
        "try:\n    import_tensorrt()\nexcept RtvcError as e:\n    print(e.what, '|', e.fix)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    doctor_line, build_line = res.stdout.splitlines()
    assert doctor_line.startswith("False | TensorRT 10.13.3.9 is installed but does not load (OSError: libnvinfer"), (
        doctor_line
    )
    assert "--force-reinstall" in doctor_line and "absent" not in doctor_line
    assert build_line.startswith("TensorRT 10.13.3.9 is installed but does not load"), build_line
    assert "not installed" not in build_line


def test_build_names_the_profiles_own_faults_before_the_gpus(tmp_path: Path):
    """A TensorRT profile whose model files are not there, built with a block that is not whole 10 ms frames (which
    the voice refuses), on a machine without TensorRT or a GPU: build said only "needs TensorRT and a CUDA GPU", and
    the profile's faults came one at a time once the GPU was there. They come first now, all in one line."""
    res = rtvc("build", "alice", "--block-ms", "15", cwd=_profiles(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    profile = tmp_path / "profiles" / "alice.toml"
    assert f"{profile}: [model] path = 'alice.pth' ({tmp_path / 'profiles' / 'alice.pth'}): no such file" in lines[0]
    assert (
        "content = 'hubert_base.pt'" in lines[0]
        and ("stream.block_ms = 15 at audio.samplerate = 48000: not whole 10 ms frames of the RVC voice's 16 kHz input")
        in lines[0]
    )
    assert "put the files there or point the profile at them; set stream.block_ms = 20 (multiples of 10 ms)" in lines[0]
    # at 22050 Hz a 10 ms block is off the voice's grid (steps of 20 ms): the run's fix, not "a multiple of 10"
    (tmp_path / "config.toml").write_text("[audio]\nsamplerate = 22050\n")
    res = rtvc("build", "alice", "--block-ms", "10", cwd=tmp_path)
    assert "set stream.block_ms = 20 (multiples of 20 ms), or audio.samplerate = 48000" in res.stderr, res.stderr
    assert "needs TensorRT and a CUDA GPU" not in lines[0]
    assert not (tmp_path / "engines").exists()


@pytest.mark.parametrize(
    "args, said",
    [
        (["alice", "--workspace-mb", "99999999999"], "--workspace-mb 99999999999 is more memory than any GPU has"),
        (["alice", "--workspace-mb", "63"], "--workspace-mb 63 is too small (give at least 64 (MiB))"),
        ([""], "the profile name is empty (name one of the profiles in "),
    ],
)
def test_build_refuses_a_workspace_no_gpu_has_and_an_empty_profile_name(tmp_path: Path, args, said):
    """--workspace-mb 99999999999 was taken (and handed to TensorRT as bytes); `rtvc build ''` said "no file
    profiles/.toml"."""
    res = rtvc("build", *args, cwd=_profiles(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and said in lines[0], lines
    if not args[0]:
        assert "alice, deep, eager" in lines[0] and ".toml" not in lines[0]


def test_build_of_a_voice_without_engines_says_so(tmp_path: Path):
    res = rtvc("build", "deep", cwd=_profiles(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "uses the 'pitch' voice, which runs without engines: nothing to build" in res.stdout


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_runner_without_tensorrt_names_the_package(tmp_path: Path):
    from rtvc.backends.manifest import EngineRequest
    from rtvc.backends.tensorrt import import_tensorrt, step_runner

    with pytest.raises(RtvcError) as info:
        import_tensorrt()
    assert "TensorRT is not installed" in info.value.what and "pip install tensorrt-cu" in info.value.fix
    shape = StreamShape(16000, 48000, 160, 16320, 1200)
    want = EngineRequest("synth", {"voice": "0" * 64}, {"voice": "a.pth"}, shape, "fp16", "rtvc build alice")
    (tmp_path / "manifest.json").write_text("{corrupt")
    with pytest.raises(RtvcError, match="TensorRT is not installed"):  # named before the manifest is read
        step_runner("synth", None, "cuda", request=want, engines_dir=tmp_path)
    with pytest.raises(RtvcError, match="runs on the GPU, but device = 'cpu'"):
        step_runner("synth", None, "cpu", request=want, engines_dir=tmp_path)


def test_cuda_runtime_errors_name_the_call():
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")
    from rtvc.backends.cudart import GraphStream, driver_version

    if driver_version() == 0:
        with pytest.raises(RtvcError) as info:
            GraphStream("TensorRT engine 'synth'")
        assert str(info.value).startswith("TensorRT engine 'synth': cudaStreamCreateWithFlags failed with cudaError")
        if "cudaErrorInsufficientDriver" in str(info.value):  # (no NVIDIA driver at all: the driver is what to fix)
            assert info.value.fix.startswith("no NVIDIA driver, or one older than these CUDA bindings need")
    else:
        gs = GraphStream("a test stream")
        assert gs.handle != 0
        gs.synchronize()
        gs.close()
        dropped = GraphStream("a stream dropped without close()")  # (its __del__ gives it back, quietly)
        del dropped


def test_cuda_errors_say_what_to_do_about_them():
    from rtvc.backends.cudart import _fix_for

    assert "install or update it" in _fix_for("cudaErrorInsufficientDriver")
    assert "out of memory" in _fix_for("cudaErrorMemoryAllocation") and "nvidia-smi" in _fix_for("cudaErrorNoDevice")
    for capture in ("cudaErrorStreamCaptureInvalidated", "cudaErrorStreamCaptureUnsupported"):
        assert _fix_for(capture).startswith("this engine cannot be captured as a CUDA graph")
    assert "rtvc doctor" in _fix_for("cudaErrorLaunchFailure")


def test_progress_output():
    out = io.StringIO()
    p = ProgressPrinter("synth", out, tty=False)
    p.phase_start("Building engine", None, 3)
    for i in range(3):
        p.phase_start("Timing", "Building engine", 2)
        p.step_complete("Timing", 0)
        p.phase_finish("Timing")
        p.step_complete("Building engine", i)
    p.phase_finish("Building engine")
    assert out.getvalue().splitlines() == ["  synth: Building engine (3 steps)", "  synth: Building engine done"]
    out = io.StringIO()
    p = ProgressPrinter("synth", out, tty=True)
    p.phase_start("Building engine", None, 4)
    p.step_complete("Building engine", 1)
    assert out.getvalue().endswith("\r\033[K  synth [" + "#" * 15 + "." * 15 + "] 2/4 Building engine")
    p.phase_finish("Building engine")
    assert out.getvalue().endswith("\r\033[K  synth: Building engine done\n")


# ---- on a machine with TensorRT and a CUDA device ----


@pytest.fixture
def trt_gpu():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    if not _cuda():
        pytest.skip("no CUDA device")
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (torch's ONNX exporter needs it)")
    import torch

    torch.manual_seed(0)
    return torch


def _tiny_step(torch, folder: Path) -> tuple[object, ExportedStep]:
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 5, padding=2), torch.nn.Tanh()).eval()
    path = folder / "tiny-fp32.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(1, 1, 480),), dynamo=True, input_names=["x"], output_names=["y"]).save(
            str(path)
        )
    step = ExportedStep(
        "tiny", path, "fp32", (TensorSpec("x", (1, 1, 480), "float32"),), (TensorSpec("y", (1, 4, 480), "float32"),)
    )
    return model, step


def test_engine_runs_like_torch(trt_gpu, tmp_path: Path):
    torch = trt_gpu
    from rtvc.backends.manifest import EngineRequest, Manifest
    from rtvc.backends.tensorrt import TensorRTStep, build_engine, current_target, import_tensorrt, load_engines
    from rtvc.build import _entry

    model, step = _tiny_step(torch, tmp_path)
    out = io.StringIO()
    built = build_engine(
        step, tmp_path / "tiny.engine", tmp_path / "timing.cache", 256 << 20, ProgressPrinter("tiny", out, False)
    )
    assert built.path.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
    assert "tiny: " in out.getvalue()  # TensorRT reported its phases
    runner = TensorRTStep("tiny", built.path, step.inputs)
    model = model.cuda()
    results = []
    for _ in range(2):  # the replayed graph reads each call's new input
        x = torch.randn(1, 1, 480, device="cuda")
        y = runner(x=x)["y"].clone()
        with torch.no_grad():
            ref = model(x)
        torch.testing.assert_close(y, ref, rtol=2e-3, atol=2e-3)  # TF32 kernels are allowed for fp32
        results.append(y)
    assert not torch.equal(results[0], results[1])
    runner.close()
    # the same engine through the manifest, as the voice's seam loads it
    target = current_target(import_tensorrt())
    shape = StreamShape(16000, 16000, 480, 480, 480)
    models, paths = {"voice": "a" * 64}, {"voice": "tiny.pth"}
    m = Manifest(tmp_path)
    m.record(_entry(step, "tiny.engine", built, models, paths, shape, "fp32", target))
    m.save()
    runners = load_engines([EngineRequest("tiny", models, paths, shape, "fp32", "rtvc build tiny")], tmp_path)
    x = torch.randn(1, 1, 480, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(runners["tiny"](x=x)["y"], model(x), rtol=2e-3, atol=2e-3)
    assert runners["tiny"].outputs == (TensorSpec("y", (1, 4, 480), "float32"),)
    xn = np.random.default_rng(1).standard_normal((1, 1, 480)).astype(np.float32)  # as the voice hands them over
    with torch.no_grad():
        torch.testing.assert_close(runners["tiny"](x=xn)["y"], model(torch.from_numpy(xn).cuda()), rtol=2e-3, atol=2e-3)
    runners["tiny"].close()


def test_an_engines_folder_that_cannot_take_files_is_said_before_the_build(tmp_path: Path):
    """A file named engines (or a read-only folder) was a FileExistsError / OSError traceback, the latter after
    the ONNX export."""
    from rtvc.build import _check_writable
    from rtvc.errors import RtvcError

    (tmp_path / "engines").write_text("x")
    with pytest.raises(RtvcError, match=r"cannot write engines in .*engines \(File exists\)"):
        _check_writable(tmp_path / "engines")
    _check_writable(tmp_path / "fresh" / "engines")  # made, and left empty
    assert list((tmp_path / "fresh" / "engines").iterdir()) == []


def test_an_enqueue_that_fails_inside_the_capture_is_the_error_raised(monkeypatch):
    """A failed execute_async_v3 invalidates the capture, and ending it then fails too: that second error
    (cudaStreamEndCapture ... cudaErrorStreamCaptureInvalidated) was the one raised, hiding what TensorRT said.
    The CUDA runtime here is the real module's enums with calls that behave as such a capture does (and, last,
    as one that went well)."""
    rt = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")
    from rtvc.backends import cudart

    ok, ended = rt.cudaError_t.cudaSuccess, []

    class CaptureInvalidated:
        invalid = True
        cudaError_t, cudaStreamCaptureMode = rt.cudaError_t, rt.cudaStreamCaptureMode
        cudaStreamNonBlocking, cudaGetErrorName = rt.cudaStreamNonBlocking, staticmethod(rt.cudaGetErrorName)

        @staticmethod
        def cudaStreamCreateWithFlags(flags):
            return ok, rt.cudaStream_t(1)

        @staticmethod
        def cudaStreamBeginCapture(stream, mode):
            return (ok,)

        @classmethod
        def cudaStreamEndCapture(cls, stream):
            ended.append(stream)
            return (rt.cudaError_t.cudaErrorStreamCaptureInvalidated, rt.cudaGraph_t(0)) if cls.invalid else (ok, 7)

        @staticmethod
        def cudaGraphInstantiate(graph, flags):
            return ok, ("exec of", graph)

    monkeypatch.setattr(cudart, "runtime", lambda: CaptureInvalidated)
    gs = cudart.GraphStream("TensorRT engine 'synth'")

    def enqueue() -> None:
        raise RtvcError("TensorRT engine 'synth': execute_async_v3 failed: what TensorRT said", "rebuild it")

    with pytest.raises(RtvcError, match="execute_async_v3 failed: what TensorRT said"):
        gs.capture(enqueue)
    assert len(ended) == 1 and gs.graph is None and gs.exec is None  # the capture was ended, nothing kept
    CaptureInvalidated.invalid = False
    gs.capture(lambda: None)
    assert (gs.graph, gs.exec) == (7, ("exec of", 7))


class _StandInTensorRT:
    """TensorRT's documented names, as far as loading an engine reads them: an engine of the I/O given, whose
    `set_input_shape` takes `accepts` only (a real engine: its optimisation profile's shapes)."""

    __version__ = "10.13.3.9"

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    class DataType:
        FLOAT = "float"

    class ILogger:
        class Severity:
            ERROR, INTERNAL_ERROR = "error", "internal"

        def __init__(self) -> None:
            pass

    def __init__(self, inputs: dict, outputs: dict, accepts: tuple = ()):
        io = {**{n: ("input", s) for n, s in inputs.items()}, **{n: ("output", s) for n, s in outputs.items()}}

        class Context:
            def __init__(self):
                self.shapes = {n: s for n, (_, s) in io.items()}

            def set_input_shape(self, name, shape):
                if tuple(shape) not in accepts:
                    return False
                self.shapes[name] = tuple(shape)
                return True

            def get_tensor_shape(self, name):
                return self.shapes[name]

        class Engine:
            num_io_tensors = len(io)

            def get_tensor_name(self, i):
                return list(io)[i]

            def get_tensor_mode(self, name):
                return io[name][0]

            def get_tensor_shape(self, name):
                return io[name][1]

            def get_tensor_dtype(self, name):
                return "float"

            def create_execution_context(self):
                return Context()

        class Runtime:
            def __init__(self, log):
                pass

            def deserialize_cuda_engine(self, data):
                return Engine()

        self.Runtime = Runtime


@pytest.mark.parametrize(
    ("engine", "said"),
    [
        (({"audio": (1, 16000), "extra": (1, 4)}, {"features": (1, 49, 768)}), "takes ['audio', 'extra'], the step"),
        (({"audio": (1, 16000)}, {"feats": (1, 49, 768)}), "gives ['feats'], the step reads ['features']"),
        (({"audio": (1, -1)}, {"features": (1, 49, 768)}), "does not take 'audio' as (1, 16000)"),
    ],
)  # fmt: skip
def test_an_engine_that_does_not_fit_its_step_is_refused_at_load_naming_the_build(monkeypatch, tmp_path, engine, said):
    """An engine from an rtvc whose step took or gave other tensors loaded, and the first block raised "a backend
    bug" in the audio worker; an input shape outside the engine's profile went on to a -1 output shape (a review).
    Both are refused when the voice loads, as a stale engine, with the command that rebuilds it."""
    from rtvc.backends import tensorrt
    from rtvc.backends.manifest import EngineError

    monkeypatch.setattr(tensorrt, "import_tensorrt", lambda: _StandInTensorRT(*engine))
    (tmp_path / "content.engine").write_bytes(b"plan")
    step, build = [TensorSpec("audio", (1, 16000), "float32")], "rtvc build alice --block-ms 20"
    with pytest.raises(EngineError, match=r"rebuild it: rtvc build alice --block-ms 20") as info:
        tensorrt.TensorRTStep("content", tmp_path / "content.engine", step, build, ["features"])
    assert said in str(info.value), str(info.value)
    assert info.value.reason in ("stale", "shape")


@pytest.mark.skipif(not _cuda(), reason="no CUDA device: the CUDA runtime's stream and graph need one")
def test_a_graph_stream_captures_torch_work_and_replays_it_on_new_inputs():
    """The TensorRT runner's stream and graph (rtvc.backends.cudart.GraphStream) on a real GPU, with torch's work
    enqueued on it as the runner enqueues TensorRT's: a non-blocking stream, a thread-local capture after one
    warm-up, replays that read the static inputs' new values. No TensorRT needed: what it checks is the CUDA runtime
    through cuda-bindings, which a GPU machine without TensorRT never ran otherwise."""
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")
    import torch

    from rtvc.backends.cudart import GraphStream

    a, b = torch.zeros(4096, device="cuda"), torch.zeros(4096, device="cuda")
    out = torch.empty(4096, device="cuda")
    gs = GraphStream("a test graph")
    stream = torch.cuda.ExternalStream(gs.handle)

    def enqueue() -> None:
        with torch.cuda.stream(stream):
            torch.mul(a, b, out=out)
            out.add_(a)

    torch.cuda.synchronize()
    enqueue()  # the warm-up, outside the capture
    gs.synchronize()
    gs.capture(enqueue)
    try:
        for k in (1.0, 3.0):
            with torch.cuda.stream(stream):
                a.copy_(torch.arange(4096.0) * k)
                b.fill_(2.0 * k)
            gs.launch()
            gs.synchronize()
            assert torch.equal(out.cpu(), torch.arange(4096.0) * k * (2.0 * k + 1.0)), k
    finally:
        gs.close()
    assert (gs.stream, gs.graph, gs.exec) == (None, None, None)
