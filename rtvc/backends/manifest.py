"""engines/manifest.json: which TensorRT engine serves which step, for which models, stream, GPU and TensorRT.

An engine is only valid for the exact inputs it was built from: the model files (by sha256), the stream
shape, the precision, the GPU (name and compute capability), the TensorRT version, and the code that made its
ONNX (`export_identity`: rtvc's steps and their export, and torch's exporter). Lookup returns the
entry that matches all of them, or raises an EngineError that says which one differs and names the
`rtvc build` command that makes the right engine. Nothing here imports TensorRT or torch.

Every step's entry keys on all of the profile's model files, not only the one the step runs: the content
step of a v1 voice differs from that of a v2 voice with the same content encoder (final projection or not),
so the voice file decides the content engine too. A changed voice file therefore rebuilds every step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rtvc.backends.base import StreamShape, TensorSpec, sha256_file
from rtvc.errors import RtvcError

MANIFEST = "manifest.json"
FORMAT = 1
DEFAULT_SAMPLERATE = 48000  # config.toml's audio.samplerate default: the build command omits it then


class EngineError(RtvcError):
    """An engine that cannot serve: `reason` is missing | gpu | tensorrt | export | stale | shape | precision |
    corrupt."""

    def __init__(self, reason: str, what: str, fix: str):
        self.reason = reason
        super().__init__(what, fix)


@dataclass(frozen=True)
class Target:
    """The machine an engine runs on: TensorRT engines are specific to the GPU model and TensorRT version."""

    gpu: str  # torch.cuda.get_device_name()
    compute_capability: str  # "8.9"
    tensorrt: str  # tensorrt.__version__

    def slug(self) -> str:
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-")
        return f"{gpu}-sm{self.compute_capability.replace('.', '')}-trt{self.tensorrt}"


@dataclass(frozen=True)
class EngineRequest:
    """What a voice needs an engine for, and how the user makes it (`command`, named in every error)."""

    step: str
    models: dict[str, str]  # role ("voice", "content", "f0") -> model identity (sha256, or a package label)
    model_paths: dict[str, str]  # role -> the file it came from: the same path with another sha256 = stale
    shape: StreamShape
    precision: str
    command: str


@dataclass(frozen=True)
class EngineEntry:
    step: str
    file: str  # name of the .engine file in the engines folder
    models: dict[str, str]
    model_paths: dict[str, str]
    shape: str  # StreamShape.key()
    precision: str
    gpu: str
    compute_capability: str
    tensorrt: str
    built_at: str  # ISO 8601, UTC
    build_seconds: float
    engine_sha256: str
    inputs: list = field(default_factory=list)  # [[name, [dims], dtype], ...]
    outputs: list = field(default_factory=list)
    export: str = ""  # export_identity() of the rtvc that built it ("": a manifest from before it was recorded)

    def target(self) -> Target:
        return Target(self.gpu, self.compute_capability, self.tensorrt)

    def specs(self, which: str) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(n, tuple(s), d) for n, s, d in getattr(self, which))


# The code whose output an engine is: the models' modules, their steps and the export. An engine built by another
# version of it computes what that code did (an fp32 island since added, another skip baked in) with the same
# inputs' names and shapes: nothing else would notice.
_STEP_CODE = (
    "rvc", "backends/export.py", "backends/gpu_forms.py", "backends/base.py", "voices/rvc_steps.py", "voices/rvc.py"
)  # fmt: skip


@functools.cache
def export_identity() -> str:
    """A digest of the code that makes a step's ONNX (rtvc's files above and torch's version: its exporter)."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for where in _STEP_CODE:
        path = root / where
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f"{f.relative_to(root).as_posix()}\0".encode() + f.read_bytes() + b"\0")
    try:
        h.update(f"torch {version('torch')}".encode())
    except PackageNotFoundError:
        h.update(b"no torch")
    return h.hexdigest()[:16]


def build_command(profile: str, block_ms: float, precision: str, samplerate: int | None = None, config=None) -> str:
    """The `rtvc build` line that makes a profile's engines for this stream."""
    cmd = f"rtvc build {profile} --block-ms {block_ms:g} --precision {precision}"
    if samplerate is not None and samplerate != DEFAULT_SAMPLERATE:
        cmd += f" --samplerate {samplerate}"
    if config is not None:
        cmd += f" --config {config}"
    return cmd


def model_identity(path: Path) -> str:
    """sha256 of a model file; of a model folder (a transformers HuBERT), over its files' names and hashes."""
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
        return h.hexdigest()
    return sha256_file(path)


def rvc_models(settings, base: Path) -> tuple[dict[str, str], dict[str, str]]:
    """An RVC profile's model identities and where they came from, by role, from its [model] settings
    (rtvc.voices.rvc.RvcModelSettings; relative paths from the profile's folder). F0 estimators whose
    weights ship in a package (fcpe, crepe) are identified by package and version; yin has no weights."""
    from rtvc.voices.rvc import model_path  # (here: that module imports the backends)

    files = {"voice": settings.path, "content": settings.content}
    if settings.f0 == "rmvpe":
        files["f0"] = settings.f0_model
    # resolved: one file named from another folder (--config) or through `..` is the same file, so its rebuild
    # replaces its engines (Manifest.record keys on these paths) instead of keeping stale ones beside them
    paths = {role: str(model_path(base, v).resolve()) for role, v in files.items()}
    ids = {role: model_identity(Path(p)) for role, p in paths.items()}
    if settings.f0 in ("fcpe", "crepe", "crepe-tiny"):
        package = "torchfcpe" if settings.f0 == "fcpe" else "torchcrepe"
        try:
            from importlib.metadata import version

            label = f"{settings.f0} ({package} {version(package)})"
        except ImportError:
            label = f"{settings.f0} ({package} absent)"
        ids["f0"] = paths["f0"] = label
    return ids, paths


def engine_filename(step: str, models: dict[str, str], shape: StreamShape, precision: str, target: Target) -> str:
    """The voice's hash (to find its files by eye), then one of all the models (voice, content, F0): two profiles
    on one .pth with another F0 or content model must not build over each other's engines."""
    voice = models.get("voice", next(iter(models.values()), "none"))[:12]
    together = hashlib.sha256(json.dumps(sorted(models.items())).encode()).hexdigest()[:8]
    return f"{step}-{voice}-{together}-{shape.key()}-{precision}-{target.slug()}.engine"


def timing_cache_path(engines_dir: Path, target: Target) -> Path:
    """TensorRT's timing cache is valid for one GPU model and TensorRT version: one file per pair."""
    return engines_dir / f"timing-{target.slug()}.cache"


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one: write beside it, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_types(e: EngineEntry) -> None:
    """ValueError naming a field of a (hand-edited) manifest entry with a value of the wrong type."""
    text = ("step", "file", "shape", "precision", "gpu", "compute_capability", "tensorrt", "engine_sha256", "export")
    for name in text:
        if not isinstance(getattr(e, name), str):
            raise ValueError(f"an entry's {name!r} is not text")
    for name in ("models", "model_paths"):
        value = getattr(e, name)
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError(f"an entry's {name!r} is not a table of text")
    for name in ("inputs", "outputs"):
        if not isinstance(getattr(e, name), list):
            raise ValueError(f"an entry's {name!r} is not a list")
    # the engines folder's own file, as rtvc build names them: a path elsewhere ("../x", "/home/...") would have a
    # rebuild delete it, and a load read it
    if not _ENGINE_FILE.fullmatch(e.file):
        raise ValueError(f"an entry's 'file' {e.file[:80]!r} is not the name of an .engine file in the engines folder")


_ENGINE_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\.engine")


class Manifest:
    def __init__(self, engines_dir: Path, entries: list[EngineEntry] | None = None):
        self.dir = engines_dir
        self.entries = entries or []

    @property
    def path(self) -> Path:
        return self.dir / MANIFEST

    @classmethod
    def load(cls, engines_dir: Path, command: str = "rtvc build PROFILE") -> Manifest:
        path = engines_dir / MANIFEST
        if not path.exists():
            return cls(engines_dir)
        names = {f.name for f in fields(EngineEntry)}
        try:
            if not path.is_file():
                raise ValueError("not a file")
            raw = json.loads(path.read_text())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            entries = [EngineEntry(**{k: v for k, v in e.items() if k in names}) for e in raw["engines"]]
            for e in entries:
                _check_types(e)
        except OSError as e:  # (unreadable: written by another user, e.g. a `sudo rtvc build`)
            raise EngineError(
                "corrupt", f"{path} cannot be read ({e.strerror or e})", f"fix its permissions, or delete it: {command}"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise EngineError(
                "corrupt", f"{path} is not a valid engine manifest ({e})", f"delete it and rebuild: {command}"
            ) from None
        return cls(engines_dir, entries)

    def save(self) -> None:
        doc = {"format": FORMAT, "engines": [asdict(e) for e in self.entries]}
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, (json.dumps(doc, indent=2) + "\n").encode())
        except OSError as e:
            raise RtvcError(
                f"cannot write the engine manifest {self.path} ({e.strerror or e})",
                "make the engines folder writable (and remove whatever is in the way), then build again",
            ) from None

    def record(self, entry: EngineEntry) -> list[str]:
        """Add `entry`, dropping entries it replaces (same step, model files, stream, precision and machine) and those
        of its model files that no voice can use again, for any stream: built from an earlier version of the files
        (other contents), by another version of the export code (`export`), or on this GPU with another TensorRT
        (the one building now is the one installed). Returns the engine files no entry refers to any more.
        Without the last two, a rebuild after an upgrade of rtvc, torch or TensorRT left the old engines of every
        other block size on disk for good, and doctor called them "not usable" with a fix that did not remove them."""

        def slot(e: EngineEntry) -> tuple:
            return (e.step, sorted(e.model_paths.items()), e.shape, e.precision, e.target())

        def outdated(e: EngineEntry) -> bool:
            if e.model_paths != entry.model_paths:
                return False
            other_trt = (e.gpu, e.compute_capability) == (entry.gpu, entry.compute_capability) and (
                e.tensorrt != entry.tensorrt
            )
            return e.models != entry.models or e.export != entry.export or other_trt

        old = [e for e in self.entries if slot(e) == slot(entry) or e.file == entry.file or outdated(e)]
        self.entries = [e for e in self.entries if e not in old] + [entry]
        kept = {e.file for e in self.entries}
        return sorted({e.file for e in old} - kept)

    def for_target(self, target: Target) -> list[EngineEntry]:
        return [e for e in self.entries if e.target() == target]

    def lookup(self, want: EngineRequest, target: Target, verify: bool = True) -> EngineEntry:
        """The entry that serves `want` on `target`, its file present and intact; else EngineError."""
        key = (want.models, want.shape.key(), want.precision, target, export_identity())
        for e in self.entries:
            if e.step == want.step and (e.models, e.shape, e.precision, e.target(), e.export) == key:
                if verify:
                    self._verify(e, want)
                return e
        raise self._why_not(want, target)

    def _verify(self, e: EngineEntry, want: EngineRequest) -> None:
        path = self.dir / e.file
        problem = self._file_problem(e)
        if problem == "missing":
            raise EngineError(
                "missing",
                f"the '{e.step}' engine {path} is listed in {self.path} but the file is gone",
                f"rebuild it: {want.command}",
            )
        if problem:
            raise EngineError(
                "corrupt",
                f"the '{e.step}' engine {path} is corrupt (its sha256 differs from the manifest's)",
                f"rebuild it: {want.command}",
            )

    def _file_problem(self, e: EngineEntry) -> str:
        """'missing' or 'corrupt' for an entry's engine file; '' where it is there and intact."""
        path = self.dir / e.file
        if not path.is_file():
            return "missing"
        return "corrupt" if sha256_file(path) != e.engine_sha256 else ""

    def problem(self, e: EngineEntry, hashes: dict[str, str] | None = None) -> str:
        """What keeps an entry from serving, as `rtvc doctor` says it: its engine file gone or corrupt, a model file
        it was built from gone or changed since ('' where none: it serves on its target). Model files named by a
        relative path (manifests written before the paths were resolved) are not checked: relative to what?
        `hashes`: model file -> identity, filled and reused across calls (one doctor run)."""
        found = self._file_problem(e)
        if found:
            return "engine file gone" if found == "missing" else "engine file corrupt"
        if e.export != export_identity():
            return "stale: built by another version of rtvc (or torch)"
        for role, where in e.model_paths.items():
            if e.models.get(role) == where or not Path(where).is_absolute():  # (a package's label, not a file)
                continue
            path = Path(where)
            if not path.exists():
                return f"{path.name} gone"
            if hashes is None:
                hashes = {}
            if where not in hashes:  # (one hash per file however many entries name it: hundreds of MB each)
                hashes[where] = model_identity(path)
            if hashes[where] != e.models.get(role):
                return f"stale: {path.name} changed since {e.built_at}"
        return ""

    def _why_not(self, want: EngineRequest, target: Target) -> EngineError:
        fix = f"build it: {want.command}"
        mine = [
            e
            for e in self.entries
            if e.step == want.step and (e.model_paths == want.model_paths or e.models == want.models)
        ]
        what = f"no TensorRT engine for step '{want.step}' of {_describe(want.model_paths)}"
        if not mine:
            return EngineError("missing", f"{what} in {self.path}", fix)

        def mismatches(e: EngineEntry) -> list[tuple[str, str]]:
            """(reason, detail) for each way `e` differs from what is wanted, most fundamental first."""
            out = []
            if (e.gpu, e.compute_capability) != (target.gpu, target.compute_capability):
                here = f"{target.gpu} (sm {target.compute_capability})"
                out.append(("gpu", f"built for {e.gpu} (sm {e.compute_capability}), but this GPU is {here}"))
            if e.tensorrt != target.tensorrt:
                out.append(("tensorrt", f"built with TensorRT {e.tensorrt}, but this is TensorRT {target.tensorrt}"))
            if e.export != export_identity():
                by = "an rtvc from before engines recorded it" if not e.export else "another version of rtvc or torch"
                out.append(("export", f"exported by {by}: this one's steps may compute otherwise"))
            roles = [*want.models, *(r for r in e.models if r not in want.models)]  # (an entry edited by hand)
            changed = [
                want.model_paths.get(r, e.model_paths.get(r, r)) for r in roles if e.models.get(r) != want.models.get(r)
            ]
            if changed:
                out.append(("stale", f"stale: {', '.join(changed)} changed since it was built ({e.built_at})"))
            if e.shape != want.shape.key():
                out.append(("shape", f"built for stream {e.shape}, but the stream is now {want.shape.key()}"))
            if e.precision != want.precision:
                out.append(("precision", f"built for {e.precision}, but the profile asks for {want.precision}"))
            return out

        found = min((mismatches(e) for e in mine), key=len)
        if not found:  # (it matches, yet lookup passed it by: an entry whose fields contradict each other)
            return EngineError(
                "corrupt", f"{what}: {self.path} lists one that does not add up", f"rebuild it: {want.command}"
            )
        reason, detail = found[0]
        return EngineError(reason, f"{what}: the one in {self.dir} was {detail}", f"rebuild it: {want.command}")


def _describe(model_paths: dict[str, str]) -> str:
    voice = model_paths.get("voice")
    return Path(voice).name if voice else ", ".join(Path(p).name for p in model_paths.values()) or "this voice"
