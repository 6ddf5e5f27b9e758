"""`rvc`: an RVC v1/v2 community voice (`.pth` + optional `.index`), streamed.

Per block (`advance`, once, whatever is rendered):
- content features over the whole context window (HuBERT/ContentVec is non-causal: it needs the left
  context), on a 20 ms grid fixed to the stream's start, so a window sees the frames the whole file would;
- F0 only over the newest audio (block + the estimator's window), written into a rolling per-frame cache:
  frames that now have their full right context are final, the newest few are re-estimated next block;
- the sine source's phase carried to where the next decode starts.
Per render (`convert`, a function of window and params): retrieval, pitch shift, protect, then the
synthesizer: text encoder over all frames, flow over the tail + 24 frames, decoder only over the tail the
converter asked for (+ `decoder_margin` frames it drops: the decoder's left edge), as RVC's current realtime
code does too (skip_head); its older one decoded the whole window every block: `bench/rvc_cpu.py` measures both.

Frames are 10 ms, so RVC voices need blocks of whole 10 ms.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from rtvc.backends.base import BACKENDS, PRECISIONS
from rtvc.errors import ConfigError, ModelError
from rtvc.settings import in_range, one_of, setting

IN_RATE = 16000  # content and F0 run at 16 kHz
HOP = 160  # 16 kHz samples per 10 ms frame
GRID = 320  # content frames (50 Hz)
CONTEXT = 16000  # default left context: 1 s
F0_METHODS = ("fcpe", "crepe", "crepe-tiny", "rmvpe", "yin")


@dataclass(frozen=True)
class RvcParams:
    pitch: float = setting(0.0, "pitch shift in semitones (12 = an octave up)", in_range(-24.0, 24.0))
    speaker: int = setting(0, "speaker id of a multi-speaker model", in_range(0, 100_000))
    index_rate: float = setting(0.5, "how much of the .index retrieval to blend in (0 = none)", in_range(0.0, 1.0))
    protect: float = setting(
        0.33, "keep unvoiced consonants from the source features: lower protects more, 0.5 = off", in_range(0.0, 0.5)
    )
    rms_mix: float = setting(0.25, "loudness contour: 0 = follow the input's, 1 = the model's own", in_range(0.0, 1.0))
    gain_db: float = setting(0.0, "output gain in dB", in_range(-60.0, 24.0))


@dataclass(frozen=True)
class RvcModelSettings:
    path: str = setting("", "the voice's .pth file (relative paths: from the profile's folder)")
    content: str = setting("", "content encoder: RVC's hubert_base.pt (fairseq) or a transformers HuBERT folder")
    f0: str = setting("fcpe", "F0 estimator", one_of(*F0_METHODS))
    f0_model: str = setting("", "the RMVPE checkpoint (rmvpe.pt) when f0 = 'rmvpe'")
    f0_min: float = setting(50.0, "lowest F0 the estimator reports, Hz", in_range(30.0, 500.0))
    f0_max: float = setting(1100.0, "highest F0 the estimator reports, Hz", in_range(100.0, 2000.0))
    index: str = setting("", "the voice's faiss .index file (optional)")
    seed: int = setting(0, "noise seed: the same seed converts the same input the same way", in_range(0, 2**63 - 1))
    decoder_margin: int = setting(
        4, "10 ms frames decoded left of the tail and dropped (the decoder's left edge)", in_range(0, 24)
    )
    lookahead_ms: int = setting(
        0,
        "right context the synthesizer sees before a frame plays, in 10 ms steps; adds that much latency "
        "(0 = RVC's realtime behaviour; more brings the stream closer to the whole-file conversion)",
        in_range(0, 500),
    )
    backend: str = setting(
        "eager",
        "what runs the models: 'eager' (torch, the reference), 'cuda-graph' (each step captured once, replayed "
        "per block) or 'tensorrt' (engines from `rtvc build`)",
        one_of(*BACKENDS),
    )
    device: str = setting("cpu", "where the models run", one_of("cpu", "cuda"))
    precision: str = setting(
        "fp32", "model precision on the GPU: fp16 keeps fp32 islands (sine phase, normalisations)", one_of(*PRECISIONS)
    )
    compile: bool = setting(
        False,
        "backend = 'cuda-graph': compile each step with torch.compile (Triton kernels) before its capture; "
        "faster blocks (H200: 5.16 -> 3.92 ms per 20 ms block), a compile when the voice loads (seconds to a "
        "minute; cached on disk); needs Triton and a C compiler",
    )


@dataclass(frozen=True)
class EngineContext:
    """Where a TensorRT voice finds its engines, and the `rtvc build` command named when they are missing."""

    folder: Path
    command: str


def model_path(base: Path, value: str) -> Path:
    """A [model] path: ~ expanded, a relative one from `base`. ValueError (why) when its ~ cannot be expanded:
    pathlib raises RuntimeError for '~nouser/x' where os.path would leave it as it is."""
    try:
        p = Path(value).expanduser()
    except RuntimeError:
        user = value[1:].split("/", 1)[0]
        raise ValueError(f"'~{user}': no user '{user}' on this machine" if user else "'~': no home directory") from None
    return p if p.is_absolute() else base / p


def check_compile(model: RvcModelSettings, where: str, torch_loaded: bool = True) -> None:
    """compile = true: refused where it would do nothing (not the cuda-graph backend) or could not work (Triton or
    a compiler missing: asked of torch, so only with `torch_loaded`)."""
    if not model.compile:
        return
    if model.backend != "cuda-graph":
        raise ConfigError(
            f"{where} compile = true compiles the steps before their CUDA-graph capture, but backend = "
            f"'{model.backend}'",
            "set backend = 'cuda-graph' (with device = 'cuda'), or remove compile",
        )
    if not torch_loaded:
        return
    from rtvc.backends.gpu_forms import compile_missing

    missing = compile_missing()
    if missing:
        raise ConfigError(f"{where} compile = true: {missing}", "install it, or remove compile = true")


def _file(base: Path, value: str, key: str, what: str, where: str = "profile: [model]") -> Path:
    if not value:
        raise ConfigError(f"{where} {key} is not set", f"set {key} = the path of {what}")
    try:
        return model_path(base, value)
    except ValueError as e:
        raise ConfigError(f"{where} {key} = {value!r}: {e}", "write the path out in full") from None


def import_runtime() -> None:
    """What RVC voices import: torch and the RVC modules (a ModelError naming the extra where torch is not
    installed). `RvcVoice.preload` does it quietly."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ModelError("RVC voices need torch", 'install the rvc extra: pip install -e ".[rvc]"') from e
    import rtvc.rvc.checkpoint
    import rtvc.rvc.content
    import rtvc.rvc.f0
    import rtvc.rvc.index
    import rtvc.rvc.pipeline  # noqa: F401


# the modules a voice's F0 method imports when it is built
_F0_MODULES = {
    "fcpe": ("rtvc.rvc.f0.fcpe", "torchfcpe"),
    "crepe": ("rtvc.rvc.f0.crepe", "torchcrepe"),
    "crepe-tiny": ("rtvc.rvc.f0.crepe", "torchcrepe"),
    "rmvpe": ("rtvc.rvc.f0.rmvpe",),
    "yin": ("rtvc.rvc.f0.yin",),
}


_MISSING: set[str] = set()  # what a quiet preload could not import (an extra not installed)


def _model_modules(model: RvcModelSettings) -> tuple[str, ...]:
    """What loading `model` imports beyond `import_runtime`: its F0 method's modules, faiss for an index."""
    return _F0_MODULES.get(model.f0, ()) + (("faiss",) if model.index else ())


def _preopen_torch() -> None:
    """Load torch's native libraries without the GIL before `import torch` does with it (0.4-0.6 s here):
    libtorch_global_deps as torch loads it itself (ctypes.CDLL, RTLD_GLOBAL), then its extension module,
    which brings libtorch, the CUDA libraries it links and the Python bindings. A torch laid out otherwise
    (another version, another platform) is imported as it is, only less quietly."""
    if "torch" in sys.modules:
        return
    spec = importlib.util.find_spec("torch")  # (a top-level package: found, not imported)
    if spec is None or spec.origin is None:
        return  # (import_runtime says torch is missing)
    from rtvc.quiet_import import preopen

    here = os.path.dirname(spec.origin)
    preopen(os.path.join(here, "lib", "libtorch_global_deps.so"), os.RTLD_GLOBAL | os.RTLD_NOW)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if preopen(os.path.join(here, "_C" + suffix)):
            break


def faster_here(model: RvcModelSettings) -> str:
    """What runs this voice faster on this machine, for the overload's words: the GPU where torch sees one and the
    voice is on the CPU ("run it on a GPU" was said on machines without one, whose fix is then refused); CUDA
    graphs for an eager voice on the GPU; "" where nothing here does."""
    import torch

    if model.device == "cpu":
        return 'run it on the GPU (the profile\'s device = "cuda")' if torch.cuda.is_available() else ""
    return 'replay it as CUDA graphs (the profile\'s backend = "cuda-graph")' if model.backend == "eager" else ""


class RvcVoice:
    kind: ClassVar[str] = "rvc"
    frame_ms: ClassVar[float] = 10.0  # a block is whole frames (the converter's grid check names it with the others)
    Params: ClassVar[type] = RvcParams
    Model: ClassVar[type] = RvcModelSettings

    @staticmethod
    def missing_files(model: RvcModelSettings, base: Path) -> list[str]:
        """The model files the settings name that are not there (a listing's cheap check: no file is read)."""
        out = []
        for key, folder_ok in (("path", False), ("content", True), ("f0_model", False), ("index", False)):
            value = getattr(model, key)
            if not value:
                continue
            try:
                p = model_path(base, value)
            except ValueError as e:
                out.append(f"{key} = {value!r}: {e}")
                continue
            try:  # (a stat can fail: no permission on a folder on the way, a name too long)
                if p.is_file() or (folder_ok and p.is_dir()):
                    continue
                why = "no such file" if not p.exists() else "not a file"
            except OSError as e:
                why = f"cannot be looked at: {e.strerror or e}"
            out.append(f"{key} = {value!r} ({p}): {why}")
        return out

    @staticmethod
    def cannot_run(model: RvcModelSettings, where: str) -> str:
        """Why this machine cannot run the settings' backend, device and precision (no CUDA device, no
        TensorRT), or "": what selecting the voice would refuse first, for a listing. Before torch is loaded only what
        needs no torch is checked: importing it holds Python's lock for seconds, and the audio worker waits (a
        voice imported while rtvc plays was listed with a dropout); selecting the voice checks the rest."""
        import importlib.util
        import sys

        from rtvc.backends.base import check_choice

        if "torch" not in sys.modules:
            if importlib.util.find_spec("torch") is None:
                return f'{where}: RVC voices need torch; install the rvc extra: pip install -e ".[rvc]"'
            try:
                check_choice(model.backend, model.device, model.precision, where)
                check_compile(model, where, torch_loaded=False)
            except ConfigError as e:
                return str(e)
            return ""
        try:
            from rtvc.backends.registry import check_backend
        except ImportError as e:
            return f'{where}: RVC voices need torch ({e}); install the rvc extra: pip install -e ".[rvc]"'
        try:
            check_backend(model.backend, model.device, model.precision, where)
            check_compile(model, where)
        except ConfigError as e:
            return str(e)
        return ""

    @staticmethod
    def preload(model: RvcModelSettings | None = None) -> None:
        """Import torch and the RVC modules, and what `model`'s F0 method and index need (torchfcpe brings
        librosa and numba, torchcrepe, faiss). The daemon calls this before its audio starts when a profile
        uses an RVC voice; a voice loading with audio running calls it too: quietly (rtvc.quiet_import), so
        the worker is not stopped for the seconds the imports take (bench/first_rvc_load.py)."""
        needed = ["rtvc.rvc.pipeline", *(_model_modules(model) if model is not None else ())]
        if all(name in sys.modules or name in _MISSING for name in needed):
            return
        from rtvc.quiet_import import quiet_imports

        with quiet_imports():
            _preopen_torch()
            import_runtime()
            for name in needed[1:]:
                try:
                    importlib.import_module(name)
                except ImportError:  # (the load that follows imports it again and says what is missing, in its
                    _MISSING.add(name)  # words; not tried quietly again: each try would collect garbage first)

    def __init__(self, samplerate: int, model: RvcModelSettings, base: Path, where: str = "profile: [model]"):
        """`base`: the folder relative model paths start from; `where`: the profile, as errors name it."""
        from rtvc.backends.base import check_choice
        from rtvc.rvc.model_files import check_voice_file

        # what needs no torch first: importing it (a daemon that started without RVC profiles has not) holds
        # Python's lock for seconds, and a profile refused for a missing file or a wrong setting need not cost that
        check_choice(model.backend, model.device, model.precision, where)
        check_compile(model, where, torch_loaded=False)
        if model.lookahead_ms % 10:
            raise ConfigError(
                f"{where} lookahead_ms = {model.lookahead_ms} is not whole 10 ms frames", "use a multiple of 10"
            )
        path = _file(base, model.path, "path", "the voice's .pth file", where)
        check_voice_file(path)
        self.preload(model)
        import torch

        from rtvc.backends.registry import check_backend
        from rtvc.rvc.checkpoint import load_rvc
        from rtvc.rvc.content import ContentEncoder
        from rtvc.rvc.f0 import make_f0
        from rtvc.rvc.index import FeatureIndex
        from rtvc.rvc.pipeline import RvcPipeline, Step
        from rtvc.rvc.synth import sine_phase_end

        check_backend(model.backend, model.device, model.precision, where)  # (the rest: CUDA, TensorRT)
        check_compile(model, where)
        rvc = load_rvc(path)
        if not rvc.f0:  # F0 settings would do nothing: said before seconds of loading, not ignored
            defaults = RvcModelSettings()
            set_ = [k for k in ("f0", "f0_model", "f0_min", "f0_max") if getattr(model, k) != getattr(defaults, k)]
            if set_:
                raise ConfigError(
                    f"{where} {', '.join(set_)} set, but {path.name} is a voice without F0 (pitch): they do nothing",
                    "remove them from the profile, or use the voice's F0 version if it has one",
                )
        content = ContentEncoder.shared(  # (the playing voice's, where it reads the same file)
            _file(base, model.content, "content", "hubert_base.pt (ContentVec) or a HuBERT folder", where),
            rvc.version,
            model.device,
        )
        if content.dim != rvc.phone_dim:
            raise ModelError(
                f"{path}: the voice takes {rvc.phone_dim}-d features but the content encoder gives {content.dim}-d",
                "use HuBERT/ContentVec base: 768-d, with final_proj (256-d) for v1 voices",
            )
        self.f0 = None
        if rvc.f0:
            # a model file set for a method that takes none is refused by make_f0, not silently ignored
            given = model.f0 == "rmvpe" or model.f0_model
            f0_path = _file(base, model.f0_model, "f0_model", "rmvpe.pt", where) if given else None
            self.f0 = make_f0(model.f0, f0_min=model.f0_min, f0_max=model.f0_max, model_path=f0_path, where=where)
        index = FeatureIndex.load(_file(base, model.index, "index", "", where), rvc.phone_dim) if model.index else None
        self.rvc = rvc
        self._torch, self._step, self._sine_phase_end = torch, Step, sine_phase_end  # used every block
        self.pipeline = RvcPipeline(rvc, content, index, model.seed)
        self.margin = model.decoder_margin
        self.look = model.lookahead_ms // 10  # frames decoded after the tail and dropped
        self.samplerate = IN_RATE
        self.out_samplerate = rvc.samplerate
        self.latency = self.look * HOP  # the tail returned ends `look` frames before the newest input
        self._origin = 0  # input frames before the stream's time zero (the converter's resampler delay)
        self.label = (
            f"RVC {rvc.version} {rvc.samplerate // 1000}k {path.stem}"
            + (f" (F0 {model.f0})" if rvc.f0 else " (no F0)")
            + (" + index" if index else "")
            + f" [{model.backend} {model.device} {model.precision}{' compiled' if model.compile else ''}]"
        )
        self.model = model
        self.faster_here = faster_here(model)
        # eager on the CPU in fp32 runs the models directly on the stream's window (the reference path);
        # any other choice runs the fixed-shape steps through runners, built at the first block (rvc_steps)
        self.fixed = (model.backend, model.device, model.precision) != ("eager", "cpu", "fp32")
        self._tail_req = 0  # the tail the converter asks for (context_for tells it)
        self._plan = None
        self.runners: dict = {}
        self.base = base
        self.engine_context: EngineContext | None = None  # set by whoever builds the stream (run.build_converter)
        self._model_ids: tuple[dict, dict] | None = None
        self.reset()

    def check_params(self, params: RvcParams, where: str) -> None:
        if self.f0 is None and params.pitch != 0.0:  # (accepted, it did nothing: the voice follows no pitch)
            raise ConfigError(
                f"{where}: 'params.pitch' = {params.pitch:g}, but {self.rvc.path.name} was trained without F0: it"
                " takes no pitch, so a shift does nothing",
                "leave pitch at 0, or choose a voice trained with F0 (f0 = 1 in its file)",
            )
        if params.speaker >= self.rvc.n_speakers:
            raise ConfigError(
                f"{where}: 'params.speaker' = {params.speaker}, but {self.rvc.path.name} has {self.rvc.n_speakers}"
                " speaker(s)",
                f"choose a speaker from 0 to {self.rvc.n_speakers - 1}",
            )

    def param_ranges(self) -> dict[str, tuple[int, int]]:
        """Ranges narrower than RvcParams' for this model (params.get shows them; check_params enforces them)."""
        return {"speaker": (0, self.rvc.n_speakers - 1)}

    def inert_params(self) -> dict[str, str]:
        """Parameters that do nothing for this voice, and why: params.get leaves them out (the TUI and the dock
        offer no control that does nothing) and params.set refuses a change to one (rtvc.control.controller). A
        profile that sets one loads as it did (pitch on a voice without F0 is refused: check_params)."""
        name = self.rvc.path.name
        why = {} if self.f0 is not None else {"pitch": f"{name} was trained without F0: it takes no pitch"}
        if self.pipeline.index is None:
            why["index_rate"] = f"{name} runs without an .index: there is nothing to blend in"
            why["protect"] = f"{name} runs without an .index: protect keeps unvoiced frames out of the index's blend"
        elif self.f0 is None:
            why["protect"] = f"{name} was trained without F0: protect keeps unvoiced frames out of the index's blend"
        return why

    def context_for(self, tail: int) -> int:
        self._tail_req = tail
        return max(CONTEXT, tail + 2 * GRID) + GRID  # + GRID: room to start the analysis on the 20 ms grid

    # -- fixed-shape steps (the backend seam) ---------------------------------------------------------
    def plan(self, window: int, block: int, tail: int):
        from rtvc.voices.rvc_steps import f0_lookahead, plan_for

        return plan_for(window, block, tail, self.margin, self.look, f0_lookahead(self.f0))

    def steps(self, shape, precision: str = "fp32") -> dict:
        """The voice's step modules for a StreamShape (rtvc.voices.rvc_steps.stream_shape), by name, each with
        `.inputs` / `.outputs` TensorSpecs; F0 is a step for the estimators with a network (not yin): "f0" over
        the newest audio every block, "f0_window" over the whole window once, where a switch primed it."""
        from rtvc.rvc.f0_steps import f0_step
        from rtvc.rvc.steps import ContentStep, SynthStep
        from rtvc.voices.rvc_steps import f0_lookahead, plan_from_shape

        plan = plan_from_shape(shape, self.rvc.upp, f0_lookahead(self.f0))
        out = {"content": ContentStep(self.pipeline.content, plan.content, precision)}
        f0 = f0_step(self.f0, plan.f0_segment, precision) if self.f0 is not None else None
        if f0 is not None:
            out["f0"] = f0
            # the same over every frame the synthesizer reads: run once, on the first block after a voice switch
            out["f0_window"] = f0_step(self.f0, plan.synth.frames * HOP, precision)
        out["synth"] = SynthStep(self.rvc.net, plan.synth, precision)
        return out

    @staticmethod
    def check_block(block: int) -> None:
        """ConfigError for a block (16 kHz samples) that is not whole 10 ms frames."""
        if block % HOP:
            raise ConfigError(
                f"RVC voices work in 10 ms frames but a block is {block * 1000 / IN_RATE:g} ms",
                "make stream.block_ms a multiple of 10",
            )

    def prepare_stream(self, window: int, block: int) -> None:
        """The converter, once its shapes are known (before the stream starts): build the step runners now, so
        CUDA-graph capture and engine loading happen here and not in the first block. A block that is not
        whole 10 ms frames is refused here, while the voice that plays now keeps playing."""
        self.check_block(block)
        if self.fixed:
            self._build_runners(window, block)

    def _build_runners(self, window: int, block: int) -> None:
        from rtvc.backends.base import StreamShape
        from rtvc.backends.registry import make_runner

        m = self.model
        self._plan = plan = self.plan(window, block, self._tail_req)
        shape = StreamShape(IN_RATE, self.out_samplerate, block, plan.content, plan.synth.ret * self.rvc.upp)
        # a TensorRT engine carries its own weights and types: its runner reads only the steps' I/O specs, which
        # are the same at every precision, so the steps are the voice's own modules, not fp16 copies
        steps = self.steps(shape, "fp32" if m.backend == "tensorrt" else m.precision)
        where = {} if m.backend != "tensorrt" else {"engines_dir": self._engines().folder}
        if m.compile:  # (check_compile: cuda-graph only)
            from rtvc.backends import gpu_forms

            where["forms"] = (*gpu_forms.DEFAULT_FORMS, "inductor")
        self.runners = {
            name: make_runner(m.backend, name, mod, m.device, **where, **self._engine_request(name, shape))
            for name, mod in steps.items()
        }

    def _engines(self) -> EngineContext:
        if self.engine_context is None:
            raise ModelError(
                f"{self.rvc.path}: backend = 'tensorrt' needs to know the profile and stream to find its engines",
                "run it with `rtvc run` / `rtvc serve`, which pass them",
            )
        return self.engine_context

    def _engine_request(self, step: str, shape) -> dict:
        if self.model.backend != "tensorrt":
            return {}
        from rtvc.backends.manifest import EngineRequest, rvc_models

        ctx = self._engines()
        if self._model_ids is None:  # hashing the model files: once per voice, not per step
            self._model_ids = rvc_models(self.model, self.base)
        models, paths = self._model_ids
        return {"request": EngineRequest(step, models, paths, shape, self.model.precision, ctx.command)}

    def set_origin(self, frames: int) -> None:
        self._origin = frames
        self.reset()

    def reset(self) -> None:
        self._pos = -self._origin  # absolute time (16 kHz samples) of the window's end; 0 = the stream's start
        self._f0_cache: np.ndarray | None = None  # (frames,) Hz, row i <-> frame pos/HOP - len + i
        self._content: np.ndarray | None = None  # (rows, dim) 50 Hz features of the analysed window
        self._first = 0  # absolute frame of the analysed window's first frame
        self._frames = 0  # frames in it
        self._tail_frames: int | None = None  # frames the last render decoded
        self._audio = np.zeros(0, np.float32)
        self._end = 0  # the analysed audio ends here (a 10 ms line at or just after _pos)
        # the sine phase is known at the start of this frame (the stream starts at frame 0 with phase 0,
        # as the whole file does; frames before it are silent, so nothing accumulates there either)
        self._phase_frame = 0
        self._phase = 0.0  # cycles
        self._f0_whole = False  # estimate F0 over the whole window on the next block (primed: a voice switch)

    # -- streaming state, once per block ------------------------------------------------------------
    def primed(self, new: int) -> None:
        """The converter filled the window with `new` samples of input before the first block (a voice switch):
        the stream's time moves on by them, so the first block's content features and F0 read that audio: F0 over
        the whole window then, not only over the newest audio as every later block (the text encoder reads the
        pitch of every frame, the sine source's phase runs over them: a cache of zeros played the primed second as
        unvoiced, and its phase stayed off for good)."""
        self._pos += new
        self._f0_whole = True

    def advance(self, window: np.ndarray, new: int, params: RvcParams) -> None:
        if new % HOP:
            raise ConfigError(
                f"RVC voices work in 10 ms frames but a block brought {new * 1000 / IN_RATE:g} ms",
                "make stream.block_ms a multiple of 10",
            )
        self._pos += new
        if self.fixed:
            self._advance_fixed(window, new, params)
            return
        pos, n = self._pos, len(window)
        # frames lie on the absolute grid: the analysis starts on a 20 ms line (content frames) and ends
        # on the 10 ms line at or after the newest sample (the few samples past it are not here yet: zeros)
        start = math.ceil((pos - n) / GRID) * GRID
        end = -(-pos // HOP) * HOP
        # nothing before the stream's start is audio: the models see from time 0 on, as on the whole file
        # (but at least two content frames: HuBERT needs 400 samples)
        start = max(start, min(0, (end - 3 * GRID) // GRID * GRID))
        audio = np.zeros(end - start, np.float32)
        audio[: pos - start] = window[start - (pos - n) :]
        self._end, self._first, self._frames = end, start // HOP, len(audio) // HOP
        self._audio = audio
        self._content = self.pipeline.content_frames(audio)
        if self.f0 is not None:
            self._update_f0(audio, new, n // HOP + 2, whole=(audio, self.f0.estimate) if self._f0_whole else None)
        if self._tail_frames is not None:  # carry the sine phase to where the next render starts
            a = end // HOP - self._tail_frames
            if a > self._phase_frame:
                self._phase = self._phase_at(a, params)
                self._phase_frame = a

    def _advance_fixed(self, window: np.ndarray, new: int, params: RvcParams) -> None:
        from rtvc.voices.rvc_steps import window_bounds

        if self._plan is None or self._plan.window != len(window):
            self._build_runners(len(window), new)
        plan, pos, n = self._plan, self._pos, len(window)
        end, cstart, _ = window_bounds(pos, plan.content)
        audio = np.zeros(plan.content, np.float32)  # past the newest sample: zeros (the next 10-20 ms)
        audio[: pos - cstart] = window[cstart - (pos - n) :]  # before time 0 the window holds silence
        # both steps are queued before either result is read: on a GPU the F0 step's launch and the content
        # features' copy to the host overlap the other step's kernels
        feats = self.runners["content"](audio=audio[None])["features"]
        self._end, self._first, self._frames = end, cstart // HOP, (end - cstart) // HOP
        self._audio = audio[: end - cstart]
        segment = self._audio[-plan.f0_segment :]
        salience = self.runners["f0"](audio=segment[None])["salience"] if "f0" in self.runners else None
        self._content = feats[0].float().cpu().numpy()  # (rows, dim)
        if self.f0 is not None:
            estimate = None if salience is None else self._decoder(salience, len(segment))  # (yin: numpy, CPU)
            whole = self._f0_window(plan) if self._f0_whole else None
            self._update_f0(segment, new, n // HOP + 2, estimate, whole)
        if self._tail_frames is not None:
            a = end // HOP - self._tail_frames
            if a > self._phase_frame:
                self._phase = self._phase_at(a, params)
                self._phase_frame = a

    def _convert_fixed(self, tail: int, params: RvcParams) -> np.ndarray:
        s = self._plan.synth
        first = self._end // HOP - s.frames
        lead = first - self._first  # 0 or 1: where frame `first` lies in the 20 ms content grid
        self._tail_frames = s.ret
        f0 = self._f0_rows(first, first + s.frames) if self.f0 is not None else np.zeros(s.frames, np.float32)
        audio = self._audio[lead * HOP : (lead + s.frames) * HOP]
        step = self._step(first, self._content, f0, audio, lead)
        x = self.pipeline.synth_inputs(step, s.skip, params, self._phase_at(first + s.skip, params))
        x["phone"] = x["phone"][None]
        names = [spec.name for spec in self.runners["synth"].inputs]
        out = self.runners["synth"](**{k: x[k] for k in names})["audio"]
        return self.pipeline.finish(out.reshape(-1).float().cpu().numpy(), step, s.skip, params)

    def _decoder(self, salience, samples: int):
        """The F0 estimate of _update_f0 from the F0 step's output for the segment of `samples` it was given
        (always plan.f0_segment: the segment _update_f0 asks for), decoded on the host."""

        def estimate(audio: np.ndarray) -> np.ndarray:
            assert len(audio) == samples, f"the F0 step ran on {samples} samples, the cache asks for {len(audio)}"
            return self.f0.decode(salience.float().cpu().numpy())

        return estimate

    def _f0_window(self, plan):
        """(audio, estimate) for F0 over every frame the synthesizer reads, on the fixed-shape path: the F0 window
        step where the estimator has one (its output read at once: the "f0" step runs after it), else the
        estimator."""
        audio = self._audio[len(self._audio) - plan.synth.frames * HOP :]
        if "f0_window" not in self.runners:
            return audio, self.f0.estimate
        salience = self.runners["f0_window"](audio=audio[None])["salience"].float().cpu().numpy()
        return audio, lambda _audio: self.f0.decode(salience)

    def _update_f0(self, audio: np.ndarray, new: int, size: int, estimate=None, whole=None) -> None:
        """Estimate F0 over the newest audio into the rolling cache; `estimate` replaces the estimator's own
        (the fixed-shape path's F0 step), given exactly the segment the estimator would get. `whole`: (audio ending
        where `audio` does, its estimate): F0 of all its frames first (the first block after a voice switch)."""
        est = self.f0
        rows = len(audio) // HOP
        cache = self._f0_cache
        if cache is None or len(cache) != size:
            cache = self._f0_cache = np.zeros(size, np.float32)  # frames ending at self._end
        shift = new // HOP
        cache[:-shift] = cache[shift:]
        cache[-shift:] = 0.0
        if whole is not None:  # (the newest frames are written again below, as every block writes them)
            self._f0_whole = False
            wa, west = whole
            f0 = west(wa)[: len(wa) // HOP]
            k = min(len(f0), len(cache))
            cache[len(cache) - k :] = f0[len(f0) - k :]
        look = -(-est.lookahead // HOP)  # frames of context each side an estimate needs
        seg = min(rows, shift + 2 * look + 2) * HOP  # newest audio only
        f0 = (estimate or est.estimate)(audio[-seg:])  # frame k centred on sample end - seg + HOP k
        k0 = min(look, seg // HOP - shift)  # the oldest frame rewritten has its full left context
        fresh = f0[k0 : seg // HOP]  # up to the frame centred on end - HOP (the last whole frame)
        cache[len(cache) - len(fresh) :] = fresh

    def _f0_rows(self, a: int, b: int) -> np.ndarray:
        """Cached F0 of absolute frames [a, b) (zeros before the cache)."""
        cache = self._f0_cache
        first = self._end // HOP - len(cache)
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, first), min(b, first + len(cache))
        if hi > lo:
            out[lo - a : hi - a] = cache[lo - first : hi - first]
        return out

    def _phase_at(self, a: int, params: RvcParams) -> float:
        """The sine phase at the start of frame a, carried from the last known one over cached F0."""
        if self.f0 is None or a <= self._phase_frame:
            return self._phase  # (a < the known frame only before the stream's frame 0: silence, phase 0)
        f0 = self._f0_rows(self._phase_frame, a) * np.float32(2.0 ** (params.pitch / 12.0))
        return self._sine_phase_end(self._torch.from_numpy(f0), self.rvc.samplerate, self.rvc.upp, phase0=self._phase)

    # -- rendering: a function of (window, params) ---------------------------------------------------
    def convert(self, window: np.ndarray, tail: int, params: RvcParams) -> np.ndarray:
        want = tail * self.out_samplerate // IN_RATE  # output frames to return
        if self.fixed:
            out = self._convert_fixed(tail, params)
        else:
            frames = min(-(-tail // HOP) + self.margin + self.look, self._frames)
            self._tail_frames = frames
            skip = self._frames - frames
            f0 = self._f0_rows(self._first, self._first + self._frames) if self.f0 is not None else None
            step = self._step(
                self._first, self._content, f0 if f0 is not None else np.zeros(self._frames, np.float32), self._audio
            )
            out = self.pipeline.decode(step, skip, params, self._phase_at(self._first + skip, params))
        # drop the lookahead frames and the part of the last frame that lies past the newest sample
        drop = self.look * self.rvc.upp + (self._end - self._pos) * self.rvc.upp // HOP
        if drop:
            out = out[: len(out) - drop]
        if len(out) < want:  # the stream has just started: less than a tail of audio so far
            out = np.concatenate([np.zeros(want - len(out), np.float32), out])
        return out[len(out) - want :]

    # -- offline: the whole file at once -------------------------------------------------------------
    def convert_offline(self, audio16k: np.ndarray, params: RvcParams, progress=None) -> np.ndarray:
        """(N,) at 16 kHz -> (N * out / 16000,) at the model's rate, in one decode (frames from 0, phase 0) up to
        OFFLINE_ONE_PASS_S. A longer file goes in passes (`offline_cuts`): HuBERT's and the text encoder's attention
        take memory as the square of the length (a helper measured 1.8 GB at 30 s, 14 GB at 180 s: a 4-minute file
        would not fit 24 GB). `progress(seconds done)` after each pass.

        oneDNN is off meanwhile: it builds and keeps kernels and buffers for each new input length, and a whole file
        or a pass is one (RSS grew 0.4 GB a pass and each pass took twice as long; measured, tiny model, 2 vCPU)."""
        mkldnn = self._torch.backends.mkldnn
        prior = mkldnn.enabled
        mkldnn.enabled = False  # (the flags() context manager sets oneDNN's TF32 too, with a warning on stderr)
        try:
            return self._convert_offline(audio16k, params, progress)
        finally:
            mkldnn.enabled = prior

    def _convert_offline(self, audio16k: np.ndarray, params: RvcParams, progress) -> np.ndarray:
        n = len(audio16k)
        shortest = -(-self.pipeline.content.min_samples // GRID) * GRID  # (a file shorter than one content frame)
        padded = np.zeros(max(-(-n // GRID) * GRID, shortest), np.float32)
        padded[:n] = audio16k
        frames = len(padded) // HOP
        upp, want = self.rvc.upp, n * self.out_samplerate // IN_RATE
        if n <= OFFLINE_ONE_PASS_S * IN_RATE:
            return self._offline_pass(padded, 0, frames, params, 0.0)[0][:want]
        cuts = offline_cuts(padded)
        context = round(OFFLINE_CONTEXT_S * IN_RATE / GRID) * 2  # frames, even: passes start on the content grid
        join = OFFLINE_JOIN_FRAMES
        out = np.zeros(frames * upp, np.float32)
        ramp = (np.arange(join * upp, dtype=np.float32) + 0.5) / (join * upp)
        phase, phase_at, f0_prev = 0.0, 0, None
        for c0, c1 in itertools.pairwise(cuts):
            a, b = max(0, c0 - context), min(frames, c1 + context)
            if f0_prev is not None and a > phase_at:  # the sine's phase at frame a, over the last pass's F0
                shifted = f0_prev[: a - phase_at] * np.float32(2.0 ** (params.pitch / 12.0))
                phase = self._sine_phase_end(self._torch.from_numpy(shifted), self.rvc.samplerate, upp, phase0=phase)
            y, f0_prev = self._offline_pass(padded, a, b, params, phase)
            phase_at = a
            # this pass's frames [c0 - join/2, c1 + join/2), faded in and out over `join` frames at the cuts
            lo, hi = max(0, c0 - join // 2), min(frames, c1 + join // 2)
            part = y[(lo - a) * upp : (hi - a) * upp].copy()
            if c0 > 0:
                part[: len(ramp)] *= ramp
            if c1 < frames:
                part[len(part) - len(ramp) :] *= ramp[::-1]
            out[lo * upp : hi * upp] += part
            if progress is not None:
                progress(min(c1 * HOP, n) / IN_RATE)
        return out[:want]

    def _offline_pass(self, audio: np.ndarray, a: int, b: int, params: RvcParams, phase0: float):
        """Frames [a, b) of `audio` (16 kHz, from frame 0) in one decode: (output, its source F0)."""
        part = audio[a * HOP : b * HOP]
        content = self.pipeline.content_frames(part)
        f0 = self.f0.estimate(part)[: b - a] if self.f0 is not None else np.zeros(b - a, np.float32)
        return self.pipeline.decode(self._step(a, content, f0, part), 0, params, phase0), f0


OFFLINE_ONE_PASS_S = 45.0  # up to this, a file is converted in one pass (the reference a stream is compared with)
OFFLINE_PASS_S = 30.0  # longer ones in passes of about this
OFFLINE_SEARCH_S = 5.0  # each cut at the quietest 20 ms within this of its place
OFFLINE_CONTEXT_S = 2.0  # the audio each side of a pass its models read too (its output there is dropped)
OFFLINE_JOIN_FRAMES = 2  # the passes' outputs cross-fade over these 10 ms frames at each cut


def offline_cuts(audio: np.ndarray) -> list[int]:
    """Where a long file's passes meet, in 10 ms frames on the 20 ms content grid (first 0, last the file's end):
    every OFFLINE_PASS_S, moved to the quietest 20 ms within OFFLINE_SEARCH_S (a pause between words, where
    the passes' outputs differ least)."""
    rows = len(audio) // GRID
    energy = np.sum(audio[: rows * GRID].reshape(rows, GRID).astype(np.float64) ** 2, axis=1)
    step, search = round(OFFLINE_PASS_S * IN_RATE / GRID), round(OFFLINE_SEARCH_S * IN_RATE / GRID)
    cuts = [0]
    while rows - cuts[-1] > step + search:
        lo, hi = cuts[-1] + step - search, cuts[-1] + step + search
        cuts.append(lo + int(np.argmin(energy[lo:hi])))
    return [c * 2 for c in cuts] + [len(audio) // HOP]
