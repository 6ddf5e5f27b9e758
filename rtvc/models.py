"""Importing model files: `rtvc import FILE...` and `rtvc models`.

A user downloads a community voice (a `.pth`, often with a `.index`, often both in a `.zip`) and, once, RVC's
`hubert_base.pt`. `rtvc import` checks each file by loading it as what it is, with the loaders a voice uses (a
file that imports, loads), copies it under `models/` beside config.toml, records its kind, size and sha256 in
`models/registry.json`, and for a voice writes `profiles/NAME.toml` naming the copies: `rtvc run --profile NAME`
then plays it. The content model and RMVPE are shared: imported once, every later voice uses them.

Nothing is downloaded. Every file is checked before anything is copied, and a failure part-way (a full disk)
takes back what this import copied: a failed import changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtvc.errors import ConfigError, ModelError, RtvcError
from rtvc.logtext import redraws

REGISTRY = "registry.json"
KINDS = ("voice", "index", "content", "rmvpe")
# where each kind is copied, under models/: a voice and its index into a folder of the voice's own
SHARED_FOLDER = {"content": "content", "rmvpe": "f0"}
KNOWN = "an RVC voice (.pth), its .index, RVC's hubert_base.pt, rmvpe.pt, a transformers HuBERT folder, or a .zip"


def models_dir(cfg) -> Path:
    """models/ beside the config file (or in the working directory without one), like profiles/."""
    return (cfg.path.parent if cfg.path else Path.cwd()) / "models"


@dataclass
class Found:
    """A checked model file: what it is, in a line, and what pairing it with others needs."""

    kind: str  # one of KINDS
    path: Path  # where it is now (a file, or a folder for a transformers HuBERT)
    about: str  # what `rtvc models` and the import show
    details: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # what the user named (a zip member reads "voice.zip:voice.pth")
    arg: str = ""  # the argument it came from, for the commands errors suggest (the .zip for its members)
    sha256: str = ""  # filled by _sha, once


def _sha(f: Found) -> str:
    """The file's sha256 (rtvc.backends.manifest.model_identity), hashed once: the profile check and the copy both
    need it, and a HuBERT or an RMVPE is 180-190 MB."""
    from rtvc.backends.manifest import model_identity

    if not f.sha256:
        f.sha256 = model_identity(f.path)
    return f.sha256


# ---------------------------------------------------------------------------------------------- identifying


def identify(path: Path, source: str = "", arg: str = "") -> Found:
    """Load `path` as the model it is; ModelError naming the file if it is none rtvc runs (or is damaged)."""
    try:
        found = _identify(path, source or str(path))
    except RtvcError as e:
        if source and source != str(path):  # a zip member: named as the user knows it, not as its temporary copy
            raise type(e)(e.what.replace(str(path), source), e.fix) from None
        raise
    found.arg = shlex.quote(arg or str(path))
    return found


def _identify(path: Path, source: str) -> Found:
    if path.is_dir():
        return _content(path, source)
    if not path.is_file():
        what = "not a file (a device, a pipe or a socket)" if path.exists() else "no such file"
        raise ModelError(f"{path}: {what}", f"give the path of {KNOWN}")
    with path.open("rb") as f:
        head = f.read(8)
    if path.suffix.lower() == ".index" or head[:4] in _FAISS_FOURCC:
        return _index(path, source)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return _torch_file(path, source)
    raise ModelError(
        f"{path}: not a model file rtvc knows (starts with bytes {head.hex() or 'nothing: the file is empty'})",
        f"give {KNOWN}",
    )


def _torch_file(path: Path, source: str) -> Found:
    from rtvc.rvc.checkpoint import load_rvc

    try:
        rvc = load_rvc(path)
    except ModelError as e:
        if "content-feature model" in e.what:
            return _content(path, source)
        if "RMVPE F0 model" in e.what:
            return _rmvpe(path, source)
        raise
    params = sum(p.numel() for p in rvc.net.parameters())
    speakers = f"{rvc.n_speakers} speakers" if rvc.n_speakers > 1 else "1 speaker"
    return Found(
        "voice",
        path,
        f"RVC {rvc.version} {rvc.samplerate // 1000}k voice, {'with F0' if rvc.f0 else 'no F0'}, {speakers}, "
        f"{params / 1e6:.1f} M parameters",
        {"version": rvc.version, "f0": rvc.f0, "samplerate": rvc.samplerate, "speakers": rvc.n_speakers,
         "dim": rvc.phone_dim},
        source,
    )  # fmt: skip


def _content(path: Path, source: str) -> Found:
    from rtvc.rvc.content import _load_transformers_dir
    from rtvc.rvc.fairseq_hubert import load_fairseq_hubert

    model = _load_transformers_dir(path)[0] if path.is_dir() else load_fairseq_hubert(path)[0]
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    proj = model.final_proj.out_features if model.final_proj is not None else 0
    return Found(
        "content",
        path,
        f"HuBERT / ContentVec content model, {layers} layers, {hidden}-d" + (f", final_proj {proj}-d" if proj else ""),
        {"layers": layers, "hidden": hidden, "proj": proj},
        source,
    )


def _rmvpe(path: Path, source: str) -> Found:
    from rtvc.rvc.f0.rmvpe import load_rmvpe_state

    load_rmvpe_state(path, "a profile's [model] f0_model")
    return Found("rmvpe", path, "RMVPE F0 model", {}, source)


_FAISS_FOURCC = (b"IwFl", b"IvFl", b"IxF2", b"IxFI", b"IxFl", b"IwPQ", b"IvPQ", b"IwSq", b"IwQR")


def _index(path: Path, source: str) -> Found:
    import struct

    from rtvc.rvc.index import FeatureIndex

    with path.open("rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise ModelError(
            f"{path}: not a faiss index (only {len(head)} bytes)", "use the .index that came with the voice"
        )
    (dim,) = struct.unpack_from("<i", head, 4)  # every faiss index starts with its fourcc and its dimension
    if not 0 < dim <= 65536:
        raise ModelError(f"{path}: not a faiss index (it declares {dim}-d features)", "use the voice's own .index")
    index = FeatureIndex.load(path, dim)  # the voice's own checks: header, size, features readable
    return Found(
        "index",
        path,
        f"feature index, {dim}-d, {index.vectors.shape[0]:,} features",
        {"dim": dim, "features": int(index.vectors.shape[0])},
        source,
    )


# what RVC's training leaves beside the exported voice (logs/NAME/: G_2333.pth, D_2333.pth, trained_IVF..._v2.index,
# which has no features): archives of a voice often carry them along
_TRAINING_FILE = re.compile(r"[GD]_\w*\.pth|trained_.*\.index", re.IGNORECASE)


def identify_all(given: list[tuple[Path, str, str]], say: Callable[[str], None]) -> list[Found]:
    """`identify` each file; a training file that came in an archive is skipped with a line, not the voice's."""
    found: list[Found] = []
    skipped: list[tuple[str, str]] = []  # (the member, its archive)
    for path, source, arg in given:
        try:
            found.append(identify(path, source, arg))
        except ModelError:
            if source == arg or not _TRAINING_FILE.fullmatch(path.name):  # (given itself, not an archive member)
                raise
            skipped.append((source, arg))
            say(f"skipped {source}: a file RVC's training leaves (G_/D_ checkpoints, trained_ index), not the voice")
    if skipped and not any(f.kind == "voice" for f in found):
        member, archive = skipped[0]
        raise ModelError(
            f"{member}: a file RVC's training leaves, and {archive} holds no exported voice",
            "export the voice in RVC (its 'ckpt processing' tab, or the small .pth it writes to assets/weights) and "
            "import that",
        )
    return found


def serves(content: dict[str, Any], version: str) -> bool:
    """Whether a content model (its details) gives what an RVC `version` voice reads (rtvc.rvc.content)."""
    if version == "v1":
        return content.get("proj") == 256 and content.get("layers", 0) >= 9
    return content.get("hidden") == 768


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def download(url: str, into: Path, say: Callable[[str], None]) -> Path:
    """Fetch `url` (what the user asked for: rtvc downloads nothing else) into a new file under `into`."""
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request

    from rtvc import __version__

    fix = "check the address and the network, or download the file yourself and import it"
    try:
        name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    except ValueError as e:  # (http://[::1: an address that does not parse)
        raise ModelError(f"{url}: not a valid address ({e})", fix) from None
    request = urllib.request.Request(url, headers={"User-Agent": f"rtvc/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            if r.headers.get_content_type() == "text/html":
                raise ModelError(
                    f"{url}: is a web page, not a model file",
                    "use the file's download link (on Hugging Face: .../resolve/main/FILE, not .../blob/main/FILE)",
                )
            name = Path(r.headers.get_filename() or name).name  # (Content-Disposition: the CDN's own name)
            if name in ("", ".", ".."):
                name = "download"
            total = int(r.headers.get("Content-Length") or 0)
            folder = Path(tempfile.mkdtemp(prefix="download-", dir=into))
            target, size, shown = folder / name, 0, -1
            with target.open("wb") as f:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    size += len(chunk)
                    if total and redraws(sys.stderr) and (pct := 100 * size // total) != shown:
                        shown = pct
                        print(f"\rdownloading {name}: {pct}% of {_mb(total)}", end="", file=sys.stderr, flush=True)
            if shown >= 0:
                print(file=sys.stderr)
    except urllib.error.HTTPError as e:
        raise ModelError(f"{url}: download failed (HTTP {e.code} {e.reason})", fix) from None
    except http.client.IncompleteRead as e:  # (a chunked reply cut off)
        raise ModelError(f"{url}: the server cut the download off ({len(e.partial)} bytes into a chunk)", fix) from None
    except http.client.InvalidURL as e:  # (a space or a control character in it; a port that is not a number)
        raise ModelError(f"{url}: not a valid address ({e})", "write a space as %20; check the port") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:  # (no route, DNS, a timeout)
        reason = getattr(e, "reason", None) or e
        raise ModelError(f"{url}: cannot download ({reason})", fix) from None
    if total and size != total:
        raise ModelError(f"{url}: the download stopped at {_mb(size)} of {_mb(total)}", fix)
    say(f"downloaded {url}: {name} ({_mb(size)})")
    return target


_UNZIP_YOURSELF = "unpack it with your own archive tool and import the .pth (and .index) it holds"


def _member_path(m: zipfile.ZipInfo) -> str:
    """A zip member's path with '/' between folders: older Windows tools (PowerShell's Compress-Archive) wrote
    '\\', which zipfile keeps as part of the name ('Alice\\Alice.pth' became the voice 'alice-alice')."""
    return m.filename.replace("\\", "/")


def _folder_files(folder: Path, given: str) -> list[tuple[Path, str, str]]:
    """The model files in a folder and the folders in it (a voice unzipped: its .pth and .index), as a .zip's are
    taken; hidden files and macOS leftovers are not."""
    files = sorted(
        f
        for f in folder.rglob("*")
        if f.is_file()
        and f.suffix.lower() in (".pth", ".pt", ".index")
        and not any(part.startswith(".") or part == "__MACOSX" for part in f.relative_to(folder).parts)
    )
    if not files:
        raise ModelError(
            f"{given}: the folder holds no .pth, .pt or .index file (and no config.json: not a transformers HuBERT)",
            f"give {KNOWN}",
        )
    return [(f, str(f), given) for f in files]


def expand(items: list[str | Path], into: Path, say: Callable[[str], None]) -> list[tuple[Path, str, str]]:
    """The files to identify, each with how to name it and the argument it came from: each path as given; an
    http(s) address downloaded (into `into`); a .zip archive (not a torch checkpoint, which is a zip too)
    unpacked into `into` (model files only, by their base names: nothing lands outside it); a folder that is not a
    transformers HuBERT, its model files."""
    out: list[tuple[Path, str, str]] = []
    for item in items:
        given = str(item)
        p = download(given, into, say) if is_url(given) else Path(item)
        if p.is_dir() and not (p / "config.json").exists():  # a voice's folder (unzipped), not a transformers HuBERT
            out += _folder_files(p, given)
            continue
        if not (p.is_file() and p.suffix.lower() == ".zip"):
            out.append((p, given, given))
            continue
        try:
            with zipfile.ZipFile(p) as z:
                if any(re.fullmatch(r"[^/]+/data\.pkl", n) for n in z.namelist()):  # torch.save's zip, renamed
                    out.append((p, given, given))
                    continue
                members = [
                    m
                    for m in z.infolist()
                    if not m.is_dir()
                    # (as in a folder: macOS's __MACOSX/ and ._ files, other hidden ones; a ._NAME.pth beside the
                    # voice stopped the import as "not a model file")
                    and not any(part.startswith(".") or part == "__MACOSX" for part in Path(_member_path(m)).parts)
                    and Path(_member_path(m)).suffix.lower() in (".pth", ".pt", ".index")
                ]
                if not members:
                    inner = [n for n in z.namelist() if n.lower().endswith(".zip") and "__MACOSX" not in n]
                    if inner:
                        raise ModelError(
                            f"{given}: the archive holds {', '.join(inner[:3])}, not the model files themselves",
                            f"unpack {given} and import {Path(inner[0]).name}",
                        )
                    raise ModelError(f"{given}: the archive holds no .pth, .pt or .index file", f"give {KNOWN}")
                folder = into / f"{len(out)}-{p.stem}"
                folder.mkdir(parents=True)
                for m in members:
                    target = folder / Path(_member_path(m)).name
                    if target.exists():
                        raise ModelError(
                            f"{given}: holds two files named {target.name}", "unpack it and import the one you want"
                        )
                    with z.open(m) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    out.append((target, f"{given}:{_member_path(m)}", given))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as e:
            raise ModelError(f"{given}: damaged .zip archive ({e})", "download it again") from None
        except RuntimeError as e:  # "File X is encrypted, password required"; NotImplementedError (a RuntimeError):
            # a compression method zipfile lacks (Deflate64, from Windows' own zip)
            raise ModelError(f"{given}: a .zip archive rtvc cannot open ({e})", _UNZIP_YOURSELF) from None
        say(f"unpacked {given}: {', '.join(Path(_member_path(m)).name for m in members)}")
    return out


# ---------------------------------------------------------------------------------------------- the registry


@dataclass
class Entry:
    kind: str
    file: str  # relative to models/ (posix)
    sha256: str
    bytes: int
    about: str
    details: dict[str, Any]
    source: str
    imported: str  # UTC, ISO 8601


class Registry:
    """models/registry.json: what was imported, where it lies under models/, its sha256."""

    def __init__(self, folder: Path, entries: list[Entry]):
        self.folder = folder
        self.entries = entries

    @property
    def path(self) -> Path:
        return self.folder / REGISTRY

    @classmethod
    def load(cls, folder: Path) -> Registry:
        path = folder / REGISTRY
        if not path.exists():
            return cls(folder, [])
        fix = "fix it, or move it away: the files under models/ stay, and importing them again lists them"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            entries = [Entry(**e) for e in doc["models"]]
            for e in entries:
                if e.kind not in KINDS or not isinstance(e.file, str) or not isinstance(e.details, dict):
                    raise ValueError(f"an entry of kind {e.kind!r} for {e.file!r}")
                if not e.file or "\x00" in e.file:  # (no file can be named so: each look at it raised)
                    raise ValueError(f"the entry file name {e.file!r} names no file")
                texts = (e.sha256, e.about, e.source, e.imported)
                if not all(isinstance(t, str) for t in texts) or type(e.bytes) is not int:
                    raise ValueError(f"the entry for {e.file!r} has a field of the wrong type")
        except OSError as e:
            raise RtvcError(f"cannot read the model registry {path} ({e.strerror or e})", fix) from None
        # (JSONDecodeError is a ValueError; RecursionError: brackets nested deeper than Python's stack)
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise RtvcError(f"{path} is not a valid model registry ({type(e).__name__}: {e})", fix) from None
        return cls(folder, entries)

    def save(self) -> None:
        from rtvc.backends.manifest import write_atomic

        doc = {"format": 1, "models": [vars(e) for e in self.entries]}
        try:
            write_atomic(self.path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
        except OSError as e:
            raise RtvcError(
                f"cannot write the model registry {self.path} ({e.strerror or e})",
                "check the free space and the folder's permissions",
            ) from None

    def by_sha(self, sha: str, folder: str | None = None) -> Entry | None:
        """An entry of that file; of several (one voice imported under two names), one in models/`folder`/ first (the
        voice imported again under its second name was copied, and refused), and of those one whose copy is there.
        One whose copy is gone is put back where it was: the profiles that use it name that path (a file given
        under another name was copied beside it, and the entry and its profile stayed MISSING)."""
        same = [e for e in self.entries if e.sha256 == sha]
        return min(
            same,
            key=lambda e: (Path(e.file).parent.name != folder, not (self.folder / e.file).exists()),
            default=None,
        )

    def newest(self, kind: str, ok: Callable[[Entry], bool] = lambda e: True) -> Entry | None:
        """The most recently imported entry of `kind` whose file is still there and that `ok` accepts."""
        have = [e for e in self.entries if e.kind == kind and (self.folder / e.file).exists() and ok(e)]
        return max(have, key=lambda e: e.imported, default=None)

    def put(self, entry: Entry) -> None:
        self.entries = [e for e in self.entries if e.file != entry.file] + [entry]


# ---------------------------------------------------------------------------------------------- importing


@dataclass(frozen=True)
class ImportOptions:
    files: list[str | Path]  # paths, or http(s) addresses to download
    name: str | None = None  # the profile's name (default: from the voice's file name)
    label: str | None = None
    f0: str | None = None  # default fcpe (rmvpe when the import brings an rmvpe.pt)
    force: bool = False  # replace an existing profile of that name (and the voice's files under models/NAME/)


GENERIC_STEMS = ("model", "voice", "weights", "rvc", "final")  # (many community zips name the voice so)


def _voice_stem(voice) -> str:
    """The name a voice's profile and label come from: its file's, or where that says nothing (model.pth, or no
    letter left in ASCII: every such voice was 'voice'), the zip's it came in, or the folder's (its own, then the
    one given: `rtvc import Bob/` with Bob/model.pth was profile 'model')."""
    stem = voice.path.stem
    if profile_name(stem) not in GENERIC_STEMS:
        return stem
    if ".zip:" in voice.source:
        names = [Path(voice.source.partition(".zip:")[0]).name]
    else:
        given = Path(shlex.split(voice.arg)[0]) if voice.arg else None
        names = [voice.path.parent.name, given.resolve().name] if given is not None and given.is_dir() else []
    return next((n for n in names if profile_name(n) not in GENERIC_STEMS), stem)


# Latin letters that are not a letter and an accent (NFKD leaves them whole, and the ASCII step dropped them:
# Søren -> 'sren', Łukasz -> 'ukasz', Straße -> 'strae')
_LETTERS = str.maketrans({
    "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ı": "i", "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T",
})  # fmt: skip


def profile_name(stem: str) -> str:
    """A profile name from a file name: 'Alice (RVC v2) 300e' -> 'alice-rvc-v2-300e', 'Élodie' -> 'elodie', 'Søren'
    -> 'soren' (accents dropped, not the letters that carry them)."""
    plain = unicodedata.normalize("NFKD", stem.translate(_LETTERS)).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9_-]+", "-", plain.lower()).strip("-_")[:64].rstrip("-_")
    return name or "voice"


def import_models(cfg, opts: ImportOptions, say: Callable[[str], None] = print) -> Path | None:
    """Check, copy and register the files; write the voice's profile. Returns the profile written, if any."""
    if not opts.files:
        raise ConfigError("rtvc import: no files given", f"give {KNOWN}")
    folder = models_dir(cfg)
    with _one_import_at_a_time(folder.parent, say):
        return _import(cfg, opts, folder, say)


@contextlib.contextmanager
def _one_import_at_a_time(where: Path, say: Callable[[str], None]):
    """Imports into one models/ folder take turns (an advisory lock on the folder that holds it): two at once each
    read the registry and wrote it back, and the second dropped the first one's entries. Where locks are not to
    be had (Windows, a file system without them), imports run as before."""
    try:
        import fcntl

        fd = os.open(where, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another rtvc import into {where / 'models'} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # (no locks on this file system)
        yield
    finally:
        os.close(fd)  # (the lock goes with it)


def _import(cfg, opts: ImportOptions, folder: Path, say: Callable[[str], None]) -> Path | None:
    from rtvc.run import profiles_dir

    registry = Registry.load(folder)
    _remove_stale_copies(folder, say)
    with tempfile.TemporaryDirectory(prefix="rtvc-import-") as tmp:
        found = identify_all(expand(opts.files, Path(tmp), say), say)
        by_kind: dict[str, list[Found]] = {k: [f for f in found if f.kind == k] for k in KINDS}
        for kind, items in by_kind.items():
            if len(items) > 1:
                raise ConfigError(
                    f"rtvc import: {len(items)} files of one kind ({kind}): {', '.join(f.source for f in items)}",
                    "import one voice at a time, with its own .index and at most one content and one RMVPE model"
                    " (a .zip or folder holding several voices: unpack it and give one voice's files)",
                )
        voice = by_kind["voice"][0] if by_kind["voice"] else None
        index = by_kind["index"][0] if by_kind["index"] else None
        if index is not None and voice is None:
            raise ConfigError(
                f"rtvc import: {index.source} is a voice's feature index, given without its voice",
                f"import it together with the voice's .pth: rtvc import VOICE.pth {index.arg}",
            )
        plan = _plan(opts, registry, voice, index, by_kind, profiles_dir(cfg))
        undo = _Undo(registry.path)
        try:
            homes = plan.get("homes", {})
            placed = {
                f.kind: _place(f, folder, registry, plan.get("name"), opts.force, undo, say, homes.get(f.kind))
                for f in found
            }
            if voice is not None and opts.force:
                users = model_users(profiles_dir(cfg))
                _replace_voice_files(folder, plan["name"], set(placed.values()), registry, users, undo, say)
            registry.save()
            later: list[str] = []  # (said once it is done: a closed stdout must not take back a written profile)
            if "keep" in plan:  # (the files it names, given again: put back above, the profile left as the user has it)
                profile = plan["keep"]
                later.append(f"kept {profile} as it is (its settings and comments): it names these files")
                later.append(_run_line(cfg, plan["name"]))
                if plan.get("found"):
                    later.append("(a second profile of this voice: give it its own name, --name NAME)")
            elif voice is not None:
                profile = _write_voice_profile(cfg, opts, plan, voice, placed, registry, later.append)
            else:
                profile = None
        except BaseException:
            undo.undo()  # a failure part-way (a full disk, a profile that cannot be written) takes back this import
            if undo.copied or undo.aside:  # (what was said of them on stdout no longer holds)
                with contextlib.suppress(Exception):
                    say("taken back: the files copied above are gone again (the error follows)")
            raise
        undo.commit()
    for line in later:
        say(line)
    return profile


def _remove_stale_copies(folder: Path, say: Callable[[str], None]) -> None:
    """Half-copied files of an import that was killed outright (SIGKILL, a power cut: SIGTERM and SIGHUP unwind it as
    Ctrl-C does, rtvc.cli) stayed under models/ for good, hidden, unlisted (35 MB of an RMVPE seen). Imports take
    turns, so one whose process is gone left it."""
    if not folder.is_dir() or os.name != "posix":  # (os.kill(pid, 0) asks whether it lives on POSIX alone)
        return
    for tmp in folder.rglob(".rtvc-import-*.importing"):
        pid = tmp.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                if tmp.is_dir() and not tmp.is_symlink():  # (a HuBERT folder's copy)
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                say(f"removed {tmp}: a copy an import killed part-way left")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # (another user's: it exists)
    return True


class _Undo:
    """What an import changed under models/, to take back when a later step fails: a failed import changes nothing."""

    def __init__(self, registry: Path):
        self.copied: list[Path] = []
        self.aside: list[tuple[Path, Path]] = []  # (a file --force replaces, where it waits until the import is done)
        self.registry = registry
        self.registry_was = registry.read_bytes() if registry.exists() else None

    def undo(self) -> None:
        """Each step is tried on its own: one that fails (a folder made read-only) is said on stderr, and the import's
        own error, raised after this, stays the one shown. The registry is written back only if it changed."""
        from rtvc.backends.manifest import write_atomic

        left: list[str] = []
        for p in reversed(self.copied):
            try:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            except OSError as e:
                left.append(f"remove {p} ({e.strerror or e})")
        for dest, old in self.aside:
            try:
                os.replace(old, dest)
            except OSError as e:
                left.append(f"put {old} back as {dest} ({e.strerror or e})")
        try:
            now = self.registry.read_bytes() if self.registry.is_file() else None
            if now != self.registry_was:
                if self.registry_was is None:
                    self.registry.unlink(missing_ok=True)
                else:
                    write_atomic(self.registry, self.registry_was)
        except OSError as e:
            left.append(f"restore {self.registry} ({e.strerror or e})")
        if left:
            print(f"rtvc import: the failed import could not all be taken back: {'; '.join(left)}", file=sys.stderr)

    def commit(self) -> None:
        for _, old in self.aside:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def _plan(opts, registry, voice, index, by_kind, profiles: Path) -> dict[str, Any]:
    """For a voice: its profile's name, and the content and F0 models it will use (given now or imported
    before); errors before anything is copied."""
    if voice is None:
        if opts.name or opts.label or opts.f0:
            raise ConfigError("rtvc import: --name, --label and --f0 are for a voice", "give the voice's .pth too")
        return {}
    from rtvc.profile_writer import check_name
    from rtvc.profiles import check_label, profile_files
    from rtvc.voices.rvc import F0_METHODS

    if opts.f0 is not None and opts.f0 not in F0_METHODS:
        raise ConfigError(f"rtvc import: --f0 {opts.f0!r} is no F0 estimator", f"use one of {', '.join(F0_METHODS)}")
    version = voice.details["version"]
    if index is not None and index.details["dim"] != voice.details["dim"]:
        raise ModelError(
            f"{index.source}: the index holds {index.details['dim']}-d features but {voice.source} is an RVC "
            f"{version} voice ({voice.details['dim']}-d)",
            "give the .index that came with this voice, or import the voice without one",
        )
    stem = _voice_stem(voice)
    name = opts.name if opts.name is not None else profile_name(stem)  # (--name "": refused by name)
    check_name(name)
    if name in SHARED_FOLDER.values():  # a voice's files go to models/NAME/: these hold every voice's shared models
        raise ConfigError(
            f"rtvc import: the voice cannot be named '{name}': models/{name}/ holds the models every voice shares",
            "choose another name with --name",
        )
    # the voice list shows labels: the name asked for, not the file's (two imports of one file under two names were
    # two rows alike)
    label = opts.label if opts.label is not None else opts.name or _printable(stem)[:100]
    check_label(label, "rtvc import: --label")  # (here: once files are copied, a refused label would leave them)
    target = profiles / f"{name}.toml"
    plan: dict[str, Any] = {"name": name, "label": label}
    given = {k: by_kind[k][0] for k in KINDS if by_kind[k]}
    if opts.name is None and not opts.force and not target.exists():
        # the same files imported before under another name (--name alice): that profile is theirs, as it would be
        # with --name alice; a second profile of one voice is asked for by its name (it was a second copy, unasked)
        for other in profile_files(profiles):  # (--force alone would write a profile under the file's name)
            homes = _profile_of(other, other.stem, registry, given, opts, f"--name {other.stem} --force")
            if homes is not None:
                return {**plan, "name": other.stem, "keep": other, "homes": homes, "found": True}
    if target.exists() and not opts.force:
        homes = _profile_of(target, name, registry, given, opts)
        if homes is None:
            raise ConfigError(
                f"profile '{name}' already exists ({target})",
                "choose another name with --name, or replace it with --force",
            )
        return {**plan, "keep": target, "homes": homes}
    content = by_kind["content"][0] if by_kind["content"] else None
    if content is not None:
        if not serves(content.details, version):
            raise ModelError(f"{content.source}: {_unfit(content.details, version)}", _CONTENT_FIX)
    else:
        prior = registry.newest("content", lambda e: serves(e.details, version))
        if prior is None:
            raise ModelError(
                f"rtvc import: {voice.source} needs a content model (RVC's hubert_base.pt, ContentVec) and none is "
                f"imported" + (f" that an RVC {version} voice can use" if registry.newest("content") else ""),
                f"import it once with the voice: rtvc import hubert_base.pt {voice.arg}",
            )
        plan["content_entry"] = prior
    if voice.details["f0"]:
        f0 = opts.f0 or ("rmvpe" if by_kind["rmvpe"] else "fcpe")
        if f0 == "rmvpe" and not by_kind["rmvpe"]:
            prior = registry.newest("rmvpe")
            if prior is None:
                raise ModelError(
                    "rtvc import: --f0 rmvpe needs RVC's rmvpe.pt and none is imported",
                    f"import it with the voice: rtvc import rmvpe.pt {voice.arg}",
                )
            plan["rmvpe_entry"] = prior
        elif f0 != "rmvpe" and by_kind["rmvpe"]:
            raise ConfigError(f"rtvc import: rmvpe.pt given with --f0 {f0}", "leave out --f0, or give --f0 rmvpe")
        plan["f0"] = f0
    elif opts.f0:
        raise ConfigError(
            f"rtvc import: --f0 {opts.f0}, but {voice.source} is a voice without F0 (pitch): it takes none",
            "leave out --f0",
        )
    return plan


# a profile's [model] key for the file of each kind
_PROFILE_KEYS = {"voice": "path", "index": "index", "content": "content", "rmvpe": "f0_model"}


def _profile_of(
    target: Path, name: str, registry: Registry, given: dict[str, Found], opts, anew: str = "--force"
) -> dict[str, Entry] | None:
    """Where each file given goes back, when the profile at `target` names these very files (the same sha256, by
    the registry's entries for the paths it names); the import then puts back what is missing or damaged and keeps
    the profile as it is. (`rtvc models` says to import a missing file again: that import was refused, the profile
    existing, and with --force it wrote the profile anew, the user's settings and comments gone.)
    None where the profile names other files (another voice, another .index, or none where one is given) or where
    --label or --f0 asks for a profile written anew: that needs --name or --force, as before. ConfigError, before
    anything is copied, where a file the profile names is missing or changed and not given: it would not load."""
    from rtvc.settings import read_toml
    from rtvc.voices.rvc import model_path

    if opts.label is not None or opts.f0 is not None:
        return None
    try:
        doc = read_toml(target)
    except ConfigError:
        return None
    table = doc.get("model")
    if doc.get("voice") != "rvc" or not isinstance(table, dict):
        return None
    named: dict[str, Path] = {}
    for kind, key in _PROFILE_KEYS.items():
        value = table.get(key)
        if kind == "rmvpe" and table.get("f0") != "rmvpe":  # (f0_model is read for rmvpe alone)
            continue
        if isinstance(value, str) and value:
            try:
                named[kind] = model_path(target.parent, value).resolve()
            except (ValueError, OSError):
                return None

    def entry_at(path: Path | None) -> Entry | None:
        return next((e for e in registry.entries if (registry.folder / e.file).resolve() == path), None)

    homes: dict[str, Entry] = {}
    for kind, f in given.items():
        entry = entry_at(named.get(kind))
        if entry is None or entry.kind != kind or entry.sha256 != _sha(f):
            return None
        homes[kind] = entry
    for kind, path in named.items():
        if kind in given:
            continue
        entry = entry_at(path)
        if not path.exists():
            state = "missing"
        else:  # (as `rtvc models` tells a changed copy: by its size; the files given are hashed as they are placed)
            try:
                state = "" if entry is None or _size(path) == entry.bytes else "changed since it was imported"
            except OSError as e:
                state = f"unreadable ({e.strerror or e})"
        if state:
            shown = registry.folder / entry.file if entry is not None else path
            raise ConfigError(
                f"rtvc import: profile '{name}' names {shown} too, which is {state}",
                (f"give it too (imported from {entry.source})" if entry is not None else "put it back there")
                + f", or write the profile anew with {anew}",
            )
    return homes


_CONTENT_FIX = "use RVC's hubert_base.pt (ContentVec base: 12 layers, 768-d, final_proj 256-d)"


def _unfit(details: dict[str, Any], version: str) -> str:
    if version == "v1":
        proj = f"a {details['proj']}-d final_proj" if details.get("proj") else "no final_proj"
        return (
            "an RVC v1 voice reads layer 9 through final_proj (256-d); this content model has "
            f"{details.get('layers')} layers and {proj}"
        )
    return f"an RVC v2 voice reads 768-d features; this content model gives {details.get('hidden')}-d"


def _place(
    f: Found, folder: Path, registry: Registry, name: str | None, force: bool, undo: _Undo, say, home: Entry | None
) -> Path:
    """Copy `f` under models/ (unless the same file is there already) and register it; its path there. `home`: the
    entry of this file that a kept profile names (_profile_of), where it goes back."""
    sha = _sha(f)
    size = _size(f.path)
    same = home or registry.by_sha(sha, name if f.kind not in SHARED_FOLDER else None)
    if same is not None and (home or f.kind in SHARED_FOLDER or Path(same.file).parent.name == name):
        there = folder / same.file
        if _same_file(there, sha):
            say(f"already imported: {f.source} is {there} ({same.about})")
            return there
        # the copy under models/ is gone or not what was imported (moved away, cut short, edited: `rtvc models` says
        # MISSING or CHANGED and to import it again), so it is copied again in its place (it said "already
        # imported" and kept a damaged copy)
        if there.exists():
            say(f"{there} was damaged or changed since it was imported: copied again from {f.source}")
        else:
            say(f"{there} was missing: copied back from {f.source}")
        _copy(f.path, there, undo)
        registry.put(replace(same, bytes=size, source=_absolute(f.source), imported=_now()))
        return there
    sub = SHARED_FOLDER.get(f.kind) or name or "voices"
    own = Path(os.path.abspath(f.path))  # its own name, also when given as "." (a HuBERT folder one is in)
    dest = folder / sub / own.name
    present = _same_file(dest, sha)  # (hashed once: a HuBERT or an RMVPE is 180-190 MB)
    if dest.exists() and f.kind in SHARED_FOLDER and not present:  # another file under that name
        dest = dest.with_name(f"{own.stem}-{sha[:8]}{own.suffix}")
        present = _same_file(dest, sha)
    if present:
        # the same file there, not registered (a registry moved away, as its error advises, or lost): registered
        # where it is (it was copied again beside it, 190 MB for a HuBERT, and the voice refused without --force)
        say(f"already there: {f.source} is {dest}, not in {registry.path.name} until now")
    elif dest.exists() and not force:
        raise ConfigError(f"{dest} already exists", "choose another name with --name, or replace it with --force")
    else:
        _copy(f.path, dest, undo)
        say(f"imported {f.source} -> {dest}: {f.about} ({_mb(size)}, sha256 {sha[:12]})")
    registry.put(
        Entry(
            kind=f.kind,
            file=dest.relative_to(folder).as_posix(),
            sha256=sha,
            bytes=size,
            about=f.about,
            details=f.details,
            source=_absolute(f.source),
            imported=_now(),
        )
    )
    return dest


def _same_file(path: Path, sha: str) -> bool:
    """`path` holds the file of that identity (rtvc.backends.manifest.model_identity)."""
    from rtvc.backends.manifest import model_identity

    try:
        return path.exists() and model_identity(path) == sha
    except OSError:
        return False


def _replace_voice_files(
    folder: Path, name: str, kept: set[Path], registry: Registry, users: dict[Path, list[str]], undo: _Undo, say
) -> None:
    """--force over a voice: the files of the voice it replaces (registered under models/NAME/, another .pth or
    .index than this import's) go too, with their registry entries; they stayed, listed as used by no profile.
    Set aside until the import is done (back if it fails). Files rtvc did not import, and files another profile
    names, are left alone."""
    for e in list(registry.entries):
        path = folder / e.file
        if e.kind not in ("voice", "index") or Path(e.file).parent.as_posix() != name or path in kept:
            continue
        if set(users.get(path.resolve(), [])) - {name}:
            continue
        registry.entries.remove(e)
        if not path.exists():
            continue
        old = path.with_name(f".{path.name}.{os.getpid()}.replaced")
        try:
            os.replace(path, old)
        except OSError as err:
            raise RtvcError(f"cannot remove {path} ({err.strerror or err})", "check the folder's permissions") from None
        undo.aside.append((path, old))
        say(f"replaced: {path} (the voice's earlier {'index' if e.kind == 'index' else 'file'})")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _copy(src: Path, dest: Path, undo: _Undo) -> None:
    """Copy a file or folder to `dest` by way of a hidden name beside it (no half-copied model under its name)."""
    try:
        made = next((d for d in reversed((dest.parent, *dest.parent.parents)) if not d.exists()), None)
        if made is not None:  # (a folder this import makes goes again with it: models/NAME/ was left empty)
            undo.copied.append(made)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # (a short name of its own: the file's name and a suffix went past the file system's 255 bytes)
        tmp = dest.with_name(f".rtvc-import-{os.getpid()}-{len(undo.copied)}.importing")
        undo.copied.append(tmp)
        if src.is_dir():
            shutil.copytree(src, tmp)
        else:
            shutil.copyfile(src, tmp)
        if dest.exists():  # (--force over a file or folder of that name: set aside, back if the import fails)
            old = dest.with_name(f".rtvc-import-{os.getpid()}-{len(undo.copied)}.replaced")
            os.replace(dest, old)
            undo.aside.append((dest, old))
        os.replace(tmp, dest)
        undo.copied[-1] = dest
    except OSError as e:
        long = e.errno == errno.ENAMETOOLONG
        raise RtvcError(
            f"cannot copy {src} to {dest} ({e.strerror or e})",
            "rename the file (a shorter name) and import it again"
            if long
            else "check the free space and the folder's permissions",
        ) from None


def _absolute(source: str) -> str:
    """Where a file came from, as a path that still says so from another folder (zip members: the zip's); an
    address as it is."""
    if is_url(source):
        return source
    path, sep, member = source.partition(".zip:") if ".zip:" in source else (source, "", "")
    return str(Path(path + (".zip" if sep else "")).absolute()) + (f":{member}" if sep else "")


def _printable(text: str) -> str:
    """`text` without what a label cannot hold (rtvc.profiles.check_label): control characters, line and paragraph
    separators, text-direction overrides (a file name may hold any of them; a label and a TOML comment cannot)."""
    from rtvc.profiles import _BIDI

    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Zl", "Zp") and ch not in _BIDI)


def _written_since(path: Path, imported: str) -> bool:
    """Whether the file (or a file in the folder) was written after the import (2 s after: the copy's own)."""
    try:
        when = datetime.fromisoformat(imported).timestamp()
    except ValueError:  # (a registry written by hand)
        return True
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return max((p.stat().st_mtime for p in files), default=0.0) > when + 2.0


def _size(path: Path) -> int:
    """Bytes in a file, or in every file under a folder (a transformers HuBERT)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def _write_voice_profile(cfg, opts, plan, voice: Found, placed: dict[str, Path], registry: Registry, say) -> Path:
    from rtvc.profile_writer import write_profile
    from rtvc.run import profiles_dir

    profiles = profiles_dir(cfg)
    folder = registry.folder

    def rel(p: Path) -> str:  # the profile names its files relative to its own folder, as the example does
        return Path(os.path.relpath(p.resolve(), profiles.resolve())).as_posix()

    content = placed.get("content") or folder / plan["content_entry"].file
    model: dict[str, Any] = {"path": rel(placed["voice"]), "content": rel(content)}
    params: dict[str, Any] = {}
    if voice.details["f0"]:
        model["f0"] = plan["f0"]
        if plan["f0"] == "rmvpe":
            model["f0_model"] = rel(placed.get("rmvpe") or folder / plan["rmvpe_entry"].file)
        params["pitch"] = 0.0
    if "index" in placed:
        model["index"] = rel(placed["index"])
        params["index_rate"] = 0.5
    if voice.details["speakers"] > 1:
        params["speaker"] = 0
    if "index" in placed and voice.details["f0"]:  # (protect acts on the index's blend of voiced audio)
        params["protect"] = 0.33
    params["rms_mix"] = 0.25
    where = _where_it_runs()
    model.update(where)
    label = plan["label"]
    path = write_profile(
        profiles,
        plan["name"],
        label,
        "rvc",
        params,
        model,
        overwrite=opts.force,
        comment=f"Written by rtvc import from {_printable(voice.source)}. Edit freely; README, RVC voices, names "
        "every key.",
    )
    runs = f"{where['device']}, {where['backend']}, {where['precision']}" if where else "cpu, eager, fp32"
    say(f"wrote {path}: label {label!r}, F0 {model.get('f0', 'none (the voice has no F0)')}, runs on {runs}")
    if not where:
        say("  (no CUDA GPU here: a full-size RVC voice runs far slower than real time on a CPU; README, GPU)")
    say(_run_line(cfg, plan["name"]))
    return path


def _run_line(cfg, name: str) -> str:
    run = f"rtvc run --profile {name}"
    if cfg.path is not None and cfg.path.resolve() != Path("config.toml").resolve():  # (rtvc reads ./config.toml)
        run += f" --config {shlex.quote(str(cfg.path))}"
    return f"run it: {run}"


def _where_it_runs() -> dict[str, str]:
    """On a machine with a CUDA GPU the voice runs there, as CUDA graphs in fp16 (what real time needs); on
    others the defaults (eager, CPU, fp32), written as nothing. Printed either way."""
    import torch  # (loaded already: the files were checked with it)

    return {"device": "cuda", "backend": "cuda-graph", "precision": "fp16"} if torch.cuda.is_available() else {}


# ---------------------------------------------------------------------------------------------- listing


def model_users(profiles: Path) -> dict[Path, list[str]]:
    """Which profiles name each model file: resolved path -> profile names."""
    from rtvc.profiles import profile_files
    from rtvc.settings import read_toml
    from rtvc.voices.rvc import model_path

    users: dict[Path, list[str]] = {}
    for toml in profile_files(profiles):
        try:
            table = read_toml(toml).get("model")
        except ConfigError:
            continue
        if not isinstance(table, dict):
            continue
        for key in ("path", "content", "f0_model", "index"):
            value = table.get(key)
            if isinstance(value, str) and value:
                try:
                    p = model_path(toml.parent, value).resolve()
                except (ValueError, OSError):  # ('~nouser/x': no imported file; the voice's listing says why)
                    continue
                users.setdefault(p, []).append(toml.stem)
    return users


def list_models(cfg) -> str:
    """`rtvc models`: the registry as a table, with the profiles that use each file and files gone missing."""
    from rtvc.run import profiles_dir

    folder = models_dir(cfg)
    registry = Registry.load(folder)
    if not registry.entries:
        return f"no models imported in {folder} (import a voice: rtvc import hubert_base.pt VOICE.pth [VOICE.index])"
    users = model_users(profiles_dir(cfg))
    lines = [f"imported models ({registry.path}):"]
    for e in sorted(registry.entries, key=lambda e: (KINDS.index(e.kind), e.file)):
        where = (folder / e.file).resolve()
        state = "" if where.exists() else "  MISSING: the file is gone; import it again"
        if not state:
            try:
                now = _mb(size) if (size := _size(where)) != e.bytes else ""  # (cut short, or replaced)
            except OSError as err:
                now = f"unreadable ({err.strerror or err})"
            if now:
                was = _mb(e.bytes)
                if now == was:  # (a few bytes apart: 0.4 MB now, 0.4 MB when imported said nothing)
                    now, was = f"{size:,} bytes", f"{e.bytes:,} bytes"
                state = f"  CHANGED: {now} now, {was} when imported; import it again"
            elif _written_since(where, e.imported):  # (bytes overwritten in place: hashed again, only then)
                from rtvc.backends.manifest import model_identity

                if (sha := model_identity(where)) != e.sha256:
                    state = f"  CHANGED: its content (sha256 {sha[:12]} now) since it was imported; import it again"
        used = ", ".join(sorted(set(users.get(where, [])))) or "no profile"
        lines.append(f"  {e.kind:8s} {e.file}  ({_mb(e.bytes)}, sha256 {e.sha256[:12]}){state}")
        lines.append(f"           {e.about}; used by {used}")
    return "\n".join(lines)
