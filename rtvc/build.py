"""`rtvc build PROFILE`: export a voice's fixed-shape steps to ONNX and build their TensorRT engines.

Offline and slow (TensorRT times kernels for minutes); the daemon then only loads what this wrote. The
engines and the manifest go to engines/ beside the config file (the working directory without one); the
ONNX files are temporary. Only RVC voices have engines: the others run without any.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rtvc.backends.manifest import EngineEntry, export_identity
from rtvc.backends.tensorrt import BuildProgress
from rtvc.config import Config
from rtvc.errors import RtvcError
from rtvc.logtext import redraws

DEFAULT_WORKSPACE_MB = 2048  # TensorRT's scratch memory while timing tactics; RVC steps need far less
MIN_WORKSPACE_MB = 64
MAX_WORKSPACE_MB = 256 << 10  # 256 GiB: more than any one GPU has (an H200 has 141 GB)


def engines_dir(cfg: Config) -> Path:
    """engines/ beside the config file (or in the working directory without one), like profiles/."""
    return ((cfg.path.parent if cfg.path else Path.cwd()) / "engines").resolve()


class ProgressPrinter(BuildProgress):
    """TensorRT's build phases as a bar on a terminal, as one line per top-level phase otherwise (logs, CI).
    TensorRT calls in from its own threads: one lock around the output."""

    WIDTH = 30

    def __init__(self, label: str, out: TextIO, tty: bool):
        self.label, self.out, self.tty = label, out, tty
        self.lock = threading.Lock()
        self.phases: dict[str, tuple[str | None, int, int]] = {}  # name -> (parent, steps, done)
        self.top: str | None = None

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None:
        with self.lock:
            self.phases[phase] = (parent, max(steps, 1), 0)
            if parent is None:
                self.top = phase
                if not self.tty:
                    print(f"  {self.label}: {phase} ({steps} steps)", file=self.out, flush=True)
            self._draw(phase)

    def step_complete(self, phase: str, step: int) -> None:
        with self.lock:
            parent, steps, _done = self.phases.get(phase, (None, 1, 0))
            self.phases[phase] = (parent, steps, step + 1)
            self._draw(phase)

    def phase_finish(self, phase: str) -> None:
        with self.lock:
            parent = self.phases.pop(phase, (None, 1, 0))[0]
            if parent is None:
                if self.tty:
                    self.out.write("\r\033[K")
                print(f"  {self.label}: {phase} done", file=self.out, flush=True)

    def _draw(self, phase: str) -> None:
        if not self.tty or self.top not in self.phases:
            return
        _p, steps, done = self.phases[self.top]
        fill = round(self.WIDTH * min(done, steps) / steps)
        bar = "#" * fill + "." * (self.WIDTH - fill)
        self.out.write(f"\r\033[K  {self.label} [{bar}] {done}/{steps} {phase[:40]}")
        self.out.flush()


@dataclass(frozen=True)
class BuildOptions:
    profile: str
    precision: str | None = None  # None: the profile's [model] precision, else fp32
    workspace_mb: int = DEFAULT_WORKSPACE_MB


def require_gpu_build() -> tuple[object, object]:
    """TensorRT and a CUDA device, or one RtvcError naming everything that is missing and how to get it."""
    from rtvc.backends.tensorrt import current_target, import_tensorrt

    problems, fixes, trt = [], [], None
    try:
        trt = import_tensorrt()
    except RtvcError as e:
        problems.append(e.what)
        fixes.append(e.fix)
    try:
        import torch

        if not torch.cuda.is_available():
            problems.append(f"torch sees no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda})")
            fixes.append("a machine with an NVIDIA GPU and its driver (nvidia-smi lists it); `rtvc doctor` checks")
    except ImportError:
        problems.append("torch is not installed")
        fixes.append('pip install -e ".[rvc]"')
    if problems:
        raise RtvcError("rtvc build needs TensorRT and a CUDA GPU: " + "; ".join(problems), "; ".join(fixes))
    return trt, current_target(trt)


def _export_functions():
    """The ONNX exporter and the stream-shape rule the voice's seam uses (the other half of issue 5)."""
    try:
        from rtvc.backends.export import export_steps
        from rtvc.voices.rvc_steps import stream_shape
    except ImportError as e:
        raise RtvcError(f"the ONNX exporter is not available ({e})", 'pip install -e ".[rvc]"') from None
    return export_steps, stream_shape


def build_profile(cfg: Config, opts: BuildOptions, out: TextIO = sys.stdout) -> int:
    from rtvc.backends.base import check_choice
    from rtvc.backends.manifest import Manifest, build_command, engine_filename, rvc_models
    from rtvc.backends.manifest import timing_cache_path as cache_path
    from rtvc.backends.tensorrt import build_engine
    from rtvc.profiles import load_profile, make_voice, missing_files
    from rtvc.run import profiles_dir

    profile = load_profile(opts.profile, profiles_dir(cfg))
    if profile.voice != "rvc":
        print(f"profile '{profile.name}' uses the '{profile.voice}' voice, which runs without engines: "
              "nothing to build (only rvc voices have TensorRT engines)", file=out)  # fmt: skip
        return 0
    backend = getattr(profile.model, "backend", "")
    model = profile.model
    # the profile's own faults first, all of them in one error, then the GPU's: a user preparing a profile on a
    # machine without the GPU sees what to mend in it (they were said only once TensorRT and a GPU were there)
    own: list[RtvcError] = []
    if backend != "tensorrt":  # (engines it would never use: minutes of building, and "done" said)
        own.append(
            RtvcError(
                f"profile '{profile.name}' runs backend = '{backend}' (device '{model.device}'): it would not use "
                "TensorRT engines",
                f'set backend = "tensorrt" and device = "cuda" in {profile.path}\'s [model] table, then build again',
            )
        )
    try:
        check_choice(backend, model.device, model.precision, str(profile.path))
    except RtvcError as e:
        own.append(e)
    precision = opts.precision or model.precision
    if precision != model.precision:  # (built, said "done", and never found: the voice looks up its own precision)
        own.append(
            RtvcError(
                f"--precision {precision}, but profile '{profile.name}' runs precision = '{model.precision}': it would "
                f"not use {precision} engines",
                f'leave out --precision (it builds the profile\'s), or set precision = "{precision}" in '
                f"{profile.path}'s [model] table first",
            )
        )
    gone = missing_files(profile)
    if gone:
        own.append(
            RtvcError(f"{profile.path}: [model] {'; '.join(gone)}", "put the files there or point the profile at them")
        )
    try:
        _check_block(cfg)
    except RtvcError as e:
        own.append(e)
    if own:
        raise RtvcError("; ".join(e.what for e in own), "; ".join(e.fix for e in own if e.fix))
    _trt, target = require_gpu_build()
    export_steps, stream_shape = _export_functions()
    sr = cfg.audio.samplerate
    command = build_command(opts.profile, cfg.stream.block_ms, precision, sr, cfg.path)
    folder = engines_dir(cfg)
    _check_writable(folder)
    manifest = Manifest.load(folder, command)
    voice = make_voice(profile, sr)
    st = cfg.stream
    shape = stream_shape(voice, st.block_ms, sr, st.crossfade_ms, st.search_ms, st.context_ms)
    models, paths = rvc_models(profile.model, profile.path.parent)
    print(f"building {precision} engines for '{profile.name}' ({voice.label}), stream {shape.key()}, "
          f"on {target.gpu} (sm {target.compute_capability}), TensorRT {target.tensorrt}", file=out)  # fmt: skip
    tty = redraws(out)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=folder, prefix=".onnx-") as tmp:
        t0 = time.perf_counter()
        steps = export_steps(voice, shape, Path(tmp), precision)
        print(f"  exported {len(steps)} ONNX steps ({', '.join(s.name for s in steps)}) in "
              f"{time.perf_counter() - t0:.1f} s", file=out)  # fmt: skip
        for step in steps:
            name = engine_filename(step.name, models, shape, precision, target)
            built = build_engine(
                step, folder / name, cache_path(folder, target), opts.workspace_mb << 20,
                ProgressPrinter(step.name, out, tty),
            )  # fmt: skip
            entry = _entry(step, name, built, models, paths, shape, precision, target)
            for old in manifest.record(entry):
                (folder / old).unlink(missing_ok=True)
            manifest.save()  # after each engine: an interrupted build keeps what it finished
            size = built.path.stat().st_size / 1e6
            print(f"  built {step.name}: {built.path} ({size:.1f} MB) in {built.seconds:.1f} s", file=out)
    print(f"done: {len(steps)} engines in {folder} ({time.perf_counter() - t_all:.1f} s); "
          f"manifest {manifest.path}", file=out)  # fmt: skip
    return 0


def _check_block(cfg: Config) -> None:
    """The block against the RVC voice's 10 ms frames of 16 kHz, checked before its model loads, with the run's own
    fix (at 22050 Hz a 10 ms block is off that grid: steps of 20 ms, or 48 kHz; a check of the block in 16 kHz samples
    alone told such a user to make it a multiple of 10, which it was). The whole check, with the model's output rate
    and the crossfade and search, is made once the model has loaded (rvc_steps.stream_shape)."""
    from rtvc.converter import StreamShape, _Rates
    from rtvc.errors import ConfigError
    from rtvc.stream_config import frames
    from rtvc.voices.rvc import IN_RATE

    sr, ms = cfg.audio.samplerate, cfg.stream.block_ms
    try:
        _Rates(StreamShape(sr, frames(ms, sr), 0, 0), IN_RATE, IN_RATE, frame_ms=10.0)
    except ConfigError as e:
        raise ConfigError(
            f"stream.block_ms = {ms:g} at audio.samplerate = {sr}: not whole 10 ms frames of the RVC voice's 16 kHz "
            "input",
            e.fix,
        ) from None


def _check_writable(folder: Path) -> None:
    """RtvcError, before minutes of export and building, where the engines folder cannot take files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        raise RtvcError(
            f"cannot write engines in {folder} ({e.strerror or e})",
            "make it a writable folder (remove a file of that name), or run rtvc build with a config elsewhere",
        ) from None


def _entry(step, file: str, built, models: dict, paths: dict, shape, precision: str, target) -> EngineEntry:
    from rtvc.backends.base import sha256_file

    return EngineEntry(
        step=step.name,
        file=file,
        models=models,
        model_paths=paths,
        shape=shape.key(),
        precision=precision,
        gpu=target.gpu,
        compute_capability=target.compute_capability,
        tensorrt=target.tensorrt,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        build_seconds=round(built.seconds, 3),
        engine_sha256=sha256_file(built.path),
        inputs=[[s.name, list(s.shape), s.dtype] for s in step.inputs],
        outputs=[[s.name, list(s.shape), s.dtype] for s in step.outputs],
        export=export_identity(),
    )
