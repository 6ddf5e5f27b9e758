"""TensorRT backend: strongly typed engines built from a step's ONNX, run as a replayed CUDA graph.

Written against TensorRT's documented Python API, 10.x and 11.x. Precision comes from the ONNX's own types
(strongly typed network): the fp16 variant's ONNX carries fp16 with fp32 islands, so no precision builder
flag is set (TensorRT 11 removed them; 10.x ignores them on strongly typed networks).

Running a step: static torch CUDA buffers per I/O tensor, their addresses set once, one warm-up
`execute_async_v3` (TensorRT finishes deferred set-up there; it must not happen inside a capture), then that
same enqueue captured into a CUDA graph on a private stream and replayed per call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtvc.backends.base import ExportedStep, TensorSpec
from rtvc.backends.manifest import EngineError, EngineRequest, Manifest, Target, write_atomic
from rtvc.errors import ModelError, RtvcError

SUPPORTED = (10, 11)  # TensorRT major versions this code follows
DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT32": "int32", "INT64": "int64", "BOOL": "bool"}


def install_hint() -> str:
    """Which TensorRT wheel matches this torch: its CUDA major decides (cu12 / cu13 wheels)."""
    try:
        import torch

        major = (torch.version.cuda or "").split(".")[0]
    except ImportError:
        major = ""
    if major in ("12", "13"):
        return f"pip install tensorrt-cu{major} (TensorRT 10.x/11.x for torch's CUDA {major})"
    return "pip install tensorrt-cu13 (CUDA 13) or tensorrt-cu12 (CUDA 12), matching torch.version.cuda"


def installed_version() -> str | None:
    """The installed TensorRT wheel's version (its Python package, whether or not it imports), or None."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings", "tensorrt-cu12-bindings"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def failed_import(e: Exception) -> tuple[str, str] | None:
    """(what, fix) where `import tensorrt` failed though a TensorRT wheel is installed (its native libraries do
    not load: a libnvinfer of another version, a CUDA major torch does not use); None where none is installed."""
    v = installed_version()
    if v is None:
        return None
    return (
        f"TensorRT {v} is installed but does not load ({type(e).__name__}: {e})",
        f"its native libraries are missing or of another version: reinstall them together, {install_hint()} "
        "with --force-reinstall, and check that LD_LIBRARY_PATH names no other libnvinfer",
    )


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except (ImportError, OSError) as e:  # OSError: the wheel is there but its native libraries are not
        broken = failed_import(e)
        if broken:
            raise RtvcError(*broken) from None
        raise RtvcError(f"TensorRT is not installed ({type(e).__name__}: {e})", install_hint()) from None
    if int(trt.__version__.split(".")[0]) not in SUPPORTED:
        raise RtvcError(f"TensorRT {trt.__version__} is not supported (10.x or 11.x)", install_hint())
    return trt


def current_target(trt: Any) -> Target:
    import torch

    if not torch.cuda.is_available():
        raise RtvcError(
            "no CUDA device: torch.cuda.is_available() is False", "run `rtvc doctor` to see what is missing"
        )
    major, minor = torch.cuda.get_device_capability()
    return Target(torch.cuda.get_device_name(), f"{major}.{minor}", trt.__version__)


def _logger(trt: Any) -> Any:
    """A TensorRT logger that keeps errors, so an error message can say what TensorRT said."""

    class Log(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg: str) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)
                del self.errors[:-16]  # (the latest say why; a runner lives as long as its voice)

    return Log()


class BuildProgress:
    """What a build reports, mirroring TensorRT's IProgressMonitor. Called from TensorRT's threads."""

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None: ...
    def step_complete(self, phase: str, step: int) -> None: ...
    def phase_finish(self, phase: str) -> None: ...


def _monitor(trt: Any, progress: BuildProgress) -> Any:
    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            progress.step_complete(phase_name, step)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            progress.phase_finish(phase_name)

    return Monitor()


@dataclass(frozen=True)
class Built:
    path: Path
    seconds: float


def build_engine(
    step: ExportedStep,
    engine_path: Path,
    timing_cache_path: Path,
    workspace_bytes: int,
    progress: BuildProgress | None = None,
) -> Built:
    """Build `step.path` (ONNX) into a serialized engine at `engine_path`; the timing cache is read and
    written back so later builds on this GPU skip the kernel timing they already did."""
    trt = import_tensorrt()
    log = _logger(trt)
    builder = trt.Builder(log)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None and int(trt.__version__.split(".")[0]) < 11:  # 11.x: always strongly typed
        raise RtvcError(f"TensorRT {trt.__version__} has no strongly typed networks", install_hint())
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(step.path)):
        said = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors)) or "; ".join(log.errors)
        raise ModelError(f"TensorRT cannot parse {step.path}: {said}", "re-export it: rtvc build rebuilds the ONNX")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    cache = config.create_timing_cache(timing_cache_path.read_bytes() if timing_cache_path.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise RtvcError(f"TensorRT rejected the timing cache {timing_cache_path}", "delete the file; it is rebuilt")
    _add_profile(builder, config, network, step)
    if progress is not None and hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = _monitor(trt, progress)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        said = log.errors[-1] if log.errors else "no reason given"
        raise RtvcError(f"TensorRT could not build an engine from {step.path}: {said}", "see `rtvc doctor`")
    write_atomic(engine_path, bytes(plan))
    write_atomic(timing_cache_path, bytes(config.get_timing_cache().serialize()))
    return Built(engine_path, seconds)


def _add_profile(builder: Any, config: Any, network: Any, step: ExportedStep) -> None:
    """Fix every dynamic input to the stream's shape (min = opt = max). An ONNX exported with static shapes
    needs no profile; one whose static shape differs from the step's is an export error."""
    specs = {s.name: s for s in step.inputs}
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        t = network.get_input(i)
        spec = specs.get(t.name)
        if spec is None:
            raise ModelError(f"{step.path} has an input '{t.name}' the step does not declare", "re-export the step")
        dims = tuple(t.shape)
        if len(dims) != len(spec.shape) or any(d not in (-1, s) for d, s in zip(dims, spec.shape, strict=True)):
            raise ModelError(f"{step.path}: input '{t.name}' is {dims}, the stream needs {spec.shape}", "re-export")
        if -1 in dims:
            profile.set_shape(t.name, spec.shape, spec.shape, spec.shape)
            dynamic = True
    if dynamic:
        config.add_optimization_profile(profile)


class TensorRTStep:
    """One engine as a StepRunner: `step(**inputs) -> {name: tensor}` on the GPU.

    Ordering: the private stream waits (GPU-side event) for the caller's current torch stream before it
    copies the inputs, and the caller's stream waits for the graph before anything queued after the call.
    No host synchronisation: the outputs are ready for any work the caller queues on its current stream
    (`.cpu()` included). They are the runner's static buffers, overwritten by the next call. So two steps called
    one after the other (the voice's content, then its F0) run one after the other on the GPU: the second's stream
    waits for the caller's, which waits for the first (its launch from the host still overlaps the first's work)."""

    def __init__(
        self,
        name: str,
        engine_path: Path,
        inputs: Sequence[TensorSpec] = (),
        command: str = "",
        outputs: Sequence[str] = (),
    ):
        import torch

        from rtvc.backends.cudart import GraphStream

        trt = import_tensorrt()
        self.name = name
        what = f"TensorRT engine '{name}' ({engine_path})"
        self._log = _logger(trt)
        self._runtime = trt.Runtime(self._log)
        self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            said = self._log.errors[-1] if self._log.errors else "no reason given"
            raise EngineError("corrupt", f"{what} cannot be loaded: {said}", f"rebuild it: {command or 'rtvc build'}")
        self._ctx = self._engine.create_execution_context()
        want = {s.name: s.shape for s in inputs}
        self._in: dict[str, torch.Tensor] = {}
        self._out: dict[str, torch.Tensor] = {}
        io = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        fix = f"rebuild it: {command or 'rtvc build'}"
        names = [n for n in io if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if want and set(names) != set(want):  # (an engine built by an rtvc whose step took other inputs)
            said = f"{what} takes {sorted(names)}, the step gives {sorted(want)}: it was built for another rtvc"
            raise EngineError("stale", said, fix)
        got = sorted(n for n in io if n not in names)
        if outputs and got != sorted(outputs):
            raise EngineError("stale", f"{what} gives {got}, the step reads {sorted(outputs)}", fix)
        for n in names:  # inputs first: output shapes follow from them
            shape = tuple(self._engine.get_tensor_shape(n))
            if -1 in shape:
                shape = want[n]
                if not self._ctx.set_input_shape(n, shape):  # (False: outside the engine's optimisation profile)
                    said = f"{what} does not take '{n}' as {shape} (outside the stream shape it was built for)"
                    raise EngineError("shape", said, fix)
            elif n in want and want[n] != shape:
                raise EngineError("shape", f"{what} takes '{n}' as {shape}, the step needs {want[n]}", fix)
            # zeros, not empty: the warm-up below runs the engine on them, and uninitialised int64 ids (the
            # synth's pitch and sid) would index outside their embedding tables
            self._in[n] = torch.zeros(shape, dtype=_torch_dtype(trt, self._engine.get_tensor_dtype(n)), device="cuda")
        for n in io:
            if n not in self._in:
                shape = tuple(self._ctx.get_tensor_shape(n))
                if min(shape, default=0) < 0:  # (an input shape left unset, or one the engine cannot run)
                    raise EngineError("shape", f"{what}: output '{n}' has no fixed shape ({shape})", fix)
                self._out[n] = torch.empty(
                    shape, dtype=_torch_dtype(trt, self._engine.get_tensor_dtype(n)), device="cuda"
                )
        for n, buf in {**self._in, **self._out}.items():
            if not self._ctx.set_tensor_address(n, buf.data_ptr()):
                raise RtvcError(f"{what}: set_tensor_address('{n}') failed", "rebuild the engine: rtvc build")
        self.inputs = tuple(
            TensorSpec(n, tuple(b.shape), str(b.dtype).removeprefix("torch.")) for n, b in self._in.items()
        )
        self.outputs = tuple(
            TensorSpec(n, tuple(b.shape), str(b.dtype).removeprefix("torch.")) for n, b in self._out.items()
        )
        self._gs = GraphStream(what)

        def enqueue() -> None:
            if not self._ctx.execute_async_v3(self._gs.handle):
                said = "; ".join(self._log.errors[-3:]) or "no reason given"
                raise RtvcError(f"{what}: execute_async_v3 failed: {said}", "rebuild it (rtvc build); see rtvc doctor")

        try:
            self._stream = torch.cuda.ExternalStream(self._gs.handle)
            self._inputs_ready, self._done = torch.cuda.Event(), torch.cuda.Event()
            torch.cuda.current_stream().synchronize()  # the zeros: our stream is non-blocking, it would not wait
            enqueue()  # warm-up: TensorRT's deferred set-up runs here, outside the capture
            self._gs.synchronize()
            self._gs.capture(enqueue)
        except BaseException:
            try:  # a runner that failed to start keeps no CUDA stream (a voice may be retried many times)
                self._gs.close()
            except RtvcError:
                pass  # (the first error says why; a broken context fails its clean-up too)
            raise

    def __call__(self, **inputs) -> dict:
        import torch

        if inputs.keys() != self._in.keys():
            raise RtvcError(f"step '{self.name}' takes {sorted(self._in)}, got {sorted(inputs)}", "a backend bug")
        caller = torch.cuda.current_stream()
        self._inputs_ready.record(caller)
        self._stream.wait_event(self._inputs_ready)
        with torch.cuda.stream(self._stream):
            for n, buf in self._in.items():
                x = torch.as_tensor(inputs[n])  # (the voice hands over numpy arrays from the host)
                if x.shape != buf.shape:  # copy_ would broadcast a smaller tensor silently
                    got, takes = tuple(x.shape), tuple(buf.shape)
                    raise RtvcError(f"step '{self.name}': '{n}' is {got}, the engine takes {takes}", "rtvc build")
                buf.copy_(x, non_blocking=True)  # converts dtype and device (CPU tensors: a synchronous copy)
            self._gs.launch()
            self._done.record(self._stream)
        caller.wait_event(self._done)
        return dict(self._out)

    def close(self) -> None:
        self._gs.synchronize()
        self._gs.close()


def _torch_dtype(trt: Any, dt: Any) -> Any:
    import torch

    for trt_name, name in DTYPES.items():
        if dt == getattr(trt.DataType, trt_name, None):
            return getattr(torch, name)
    raise RtvcError(f"TensorRT I/O type {dt} is not supported by rtvc's runner", "export the step with float/int I/O")


def load_engines(
    requests: Sequence[EngineRequest], engines_dir: Path, inputs: dict[str, Sequence[TensorSpec]] | None = None
) -> dict[str, TensorRTStep]:
    """A runner per requested step, from the manifest's engines for this GPU and TensorRT; an EngineError
    naming the `rtvc build` command when one is missing, stale or built for another machine."""
    trt = import_tensorrt()
    target = current_target(trt)
    manifest = Manifest.load(engines_dir, requests[0].command if requests else "rtvc build PROFILE")
    runners = {}
    for want in requests:
        entry = manifest.lookup(want, target)
        specs = (inputs or {}).get(want.step) or entry.specs("inputs")
        runners[want.step] = TensorRTStep(want.step, engines_dir / entry.file, specs, want.command)
    return runners


def step_runner(name: str, module: Any, device: str, *, request: EngineRequest, engines_dir: Path) -> TensorRTStep:
    """The backend registry's entry: the engine for step `name` (its torch `module` gives the input specs)
    that `request` describes, for RVC from `rvc_models(settings, base)` (hash once per voice, not per step)
    and `manifest.build_command(...)`. TensorRT and the GPU are checked before the manifest is read."""
    if device != "cuda":
        raise RtvcError(f"backend = 'tensorrt' runs on the GPU, but device = '{device}'", "set device = 'cuda'")
    target = current_target(import_tensorrt())
    entry = Manifest.load(engines_dir, request.command).lookup(request, target)
    specs = tuple(getattr(module, "inputs", ())) or entry.specs("inputs")
    outputs = [s.name for s in getattr(module, "outputs", ())]
    return TensorRTStep(name, engines_dir / entry.file, specs, request.command, outputs)
