"""Profiles whose last load failed on their files, remembered while those files stay as they were.

voices.list marks a profile whose model files are not there (profiles.unusable), found without reading them. A file
that is there but damaged (a .pth cut short by a download, a checkpoint of a version rtvc does not run) is found only
by a load; the lists showed that voice as fine after its select had failed. Once a load failed on the files, the
profile is marked with that load's error for as long as the profile file and the model files it names are unchanged,
told by a stat of each (path, size, modification time; not their bytes: voices.list stats them each time). A mark
refuses nothing: a select loads the files again, as before.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rtvc.errors import ModelError, RtvcError
from rtvc.profiles import load_profile, model_paths, profile_name


def profile_paths(name: str, profiles_dir: Path) -> list[Path] | None:
    """The profile's file and the files its [model] names, as its voice reads them (run.converter_key's); None where
    the profile does not read (voices.list then gives that error itself)."""
    try:
        profile = load_profile(name, profiles_dir)
    except (RtvcError, OSError):
        return None
    return [profile.path, *(path for _key, path in model_paths(profile) if path is not None)]


def stamp(paths: list[Path]) -> tuple:
    """Each file's path, size and modification time (ns); a folder (a transformers HuBERT) with each file in it.
    (path, None) for one that cannot be looked at: a file put there then changes the stamp."""
    out: list = []
    for path in paths:
        try:
            st = path.stat()
            inside = sorted(path.iterdir()) if path.is_dir() else []
            out.append((str(path), st.st_size, st.st_mtime_ns))
            for f in inside:
                s = f.stat()
                out.append((str(f), s.st_size, s.st_mtime_ns))
        except (OSError, ValueError):  # (ValueError: a NUL in the path, or a name this locale cannot encode)
            out.append((str(path), None))
    return tuple(out)


class LoadFailures:
    """profile name -> (the files a load failed on, their stamp then, the load's error). Thread-safe: a select fails
    on a loader thread while voices.list and the profiles poll read on the daemon's loop."""

    def __init__(self, profiles_dir: Path):
        self.profiles_dir = profiles_dir
        self._lock = threading.Lock()
        self._failed: dict[str, tuple[list[Path], tuple, str]] = {}

    def before_load(self, name: str) -> tuple[list[Path], tuple] | None:
        """The files a load of `name` reads and their stamp, taken before it: a file replaced during a load that then
        fails is not marked as the one that failed."""
        paths = profile_paths(name, self.profiles_dir)
        return None if paths is None else (paths, stamp(paths))

    def failed(self, name: str, files: tuple[list[Path], tuple] | None, error: BaseException) -> bool:
        """A load of `name` raised `error`: marked when the error is a ModelError (a model file missing, truncated, of
        the wrong kind or at odds with itself) naming one of its files. Not marked: an error of the machine (torch or a
        TensorRT engine missing: it names none of them), of the stream settings or a GPU out of memory (no
        ModelError), or a select that never loaded (busy, superseded). True when its mark appeared or changed."""
        if files is None or not isinstance(error, ModelError):
            return False
        paths, before = files
        said = str(error)
        if not any(str(p) in said for p in paths[1:]):
            return False
        key = profile_name(name, self.profiles_dir)
        if key != paths[0].stem:  # (a profile from elsewhere, `--profile /x/y.toml`: voices.list lists none such)
            return False
        with self._lock:
            was = self._failed.get(key)
            self._failed[key] = (paths, before, said)
        return was is None or was[2] != said

    def loaded(self, name: str) -> None:
        """A load of `name` worked: its mark (if any) goes."""
        with self._lock:
            self._failed.pop(profile_name(name, self.profiles_dir), None)

    def error(self, name: str) -> str:
        """The error `name` is marked with, "" where none is or its files changed since (a stat of each)."""
        with self._lock:
            known = self._failed.get(name)
        if known is None:
            return ""
        paths, before, said = known
        return said if stamp(paths) == before else ""

    def changed(self) -> list[str]:
        """The marked profiles whose files changed since their load failed: their marks go (the profiles poll says
        so, once a second)."""
        with self._lock:
            known = dict(self._failed)
        gone = sorted(name for name, (paths, before, _) in known.items() if stamp(paths) != before)
        with self._lock:
            for name in gone:
                if self._failed.get(name) is known[name]:  # (not a failure on the new files, come meanwhile)
                    del self._failed[name]
        return gone
