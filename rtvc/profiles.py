"""Voice profiles: `profiles/<name>.toml` = a voice kind and its parameters.

label = "Deep voice"         # optional, what the UI shows
voice = "passthrough"        # a registered voice kind
[params]                     # the voice's own parameters, validated like config.toml
gain_db = 0.0
[model]                      # model voices only (rvc): files and load-time settings; relative paths are
path = "alice.pth"           # taken from the profile's folder
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtvc.errors import ConfigError, ModelError, RtvcError
from rtvc.settings import from_table, read_toml
from rtvc.voices import VOICES, voice_class

PROFILE_KEYS = ("label", "voice", "params", "model")


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    label: str
    voice: str
    params: Any  # the voice's Params dataclass
    model: Any = None  # the voice's Model settings dataclass (model voices), else None


def expand_home(path: str) -> Path:
    """~ and ~user as the home folder; a ~name of no user (a typo for ~/) as written: "not found" names it."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def profile_path(name_or_path: str, profiles_dir: Path) -> Path:
    """A profile name (looked up in `profiles_dir`) or a path to a .toml file. A name the folder lists comes first:
    `alice.toml.toml` there is listed as 'alice.toml', and selecting that read ./alice.toml instead (or failed)."""
    listed = profiles_dir / f"{name_or_path}.toml"
    if name_or_path.endswith(".toml") and "/" not in name_or_path and listed.is_file():
        return listed
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        return expand_home(name_or_path)  # (~/voices/x.toml: as [model] paths are read)
    return listed


def profile_name(name_or_path: str, profiles_dir: Path) -> str:
    """What the daemon calls the profile `name_or_path` names: its file's name for a profile in `profiles_dir`, the
    path itself for one elsewhere. (`--profile /elsewhere/giant.toml` was called 'giant', so the voice list
    marked profiles/giant.toml as playing, and a scene mapped to 'giant' counted as selected.)"""
    path = profile_path(name_or_path, profiles_dir)
    try:
        inside = path.parent.resolve() == profiles_dir.resolve()
    except (OSError, RuntimeError):  # (RuntimeError: a link that leads to itself, in Python 3.11)
        inside = False
    return path.stem if inside else str(path)


def shown_name(path: Path) -> str:
    """A profile file's name as text (bytes that are not UTF-8 shown as U+FFFD)."""
    return path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def profile_names(profiles_dir: Path) -> list[str]:
    """The profiles' names as text (a file name that is not UTF-8 with U+FFFD: never lone surrogates in a message or
    the API's JSON)."""
    return [shown_name(p).removesuffix(".toml") for p in profile_files(profiles_dir)]


def profile_files(profiles_dir: Path) -> list[Path]:
    """The profiles in a folder, sorted: its *.toml files, but no hidden ones (an editor's lock or backup file,
    `.#default.toml`, is no voice)."""
    if not profiles_dir.is_dir():
        return []
    try:  # (Path.glob said nothing of a folder it could not read: every profile "removed", a review)
        with os.scandir(profiles_dir) as found:
            names = [e.name for e in found]
    except OSError as e:
        raise ProfilesUnreadable(
            f"the profiles folder {profiles_dir} cannot be read ({e.strerror or e})",
            f"check its permissions (ls -ld '{profiles_dir}'): rtvc needs to read and enter it",
        ) from None
    return sorted(profiles_dir / n for n in names if n.endswith(".toml") and not n.startswith("."))


class ProfilesUnreadable(ConfigError):
    """The profiles folder is there but cannot be listed (its permissions, a network drive gone)."""


def voice_kinds(profiles_dir: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The voices the profiles in `profiles_dir` use, kind -> profile names: those that can load, and those that
    cannot now (a model file missing, a GPU backend on a machine without one: `unusable`). A file that does not
    read is left out (selecting it gives its error)."""
    usable: dict[str, list[str]] = {}
    not_now: dict[str, list[str]] = {}
    for path in profile_files(profiles_dir):
        try:
            p = load_profile(str(path), profiles_dir)
        except ConfigError:
            continue
        (not_now if unusable(p) else usable).setdefault(p.voice, []).append(p.name)
    return usable, not_now


def missing_files(p: Profile) -> list[str]:
    """The model files the profile names that are not there, each as `key = value (path): why` (none read)."""
    missing = getattr(voice_class(p.voice, str(p.path)), "missing_files", None) if p.model is not None else None
    return missing(p.model, p.path.parent) if missing is not None else []


def model_paths(p: Profile) -> list[tuple[str, Path | None]]:
    """(key, path) of each file the profile's [model] names, the path as the voice reads it (~ expanded, a relative
    one from the profile's folder); None for one whose ~ cannot be expanded (no such user: unusable says so)."""
    from dataclasses import fields

    from rtvc.voices.rvc import model_path

    out: list[tuple[str, Path | None]] = []
    for f in fields(p.model) if p.model is not None else ():
        value = getattr(p.model, f.name)
        if isinstance(value, str) and value:
            try:
                out.append((f.name, model_path(p.path.parent, value)))
            except ValueError:
                out.append((f.name, None))
    return out


def unusable(p: Profile) -> str:
    """Why the profile's voice cannot load on this machine now, found without reading a model file (its files
    missing; a backend this machine cannot run, as far as it is known before torch loads), or ""."""
    if p.model is None:
        return ""
    kind = voice_class(p.voice, str(p.path))
    cannot_run = getattr(kind, "cannot_run", None)
    gone = missing_files(p)
    if gone:
        return f"{p.path}: [model] {'; '.join(gone)}: put the files there or point the profile at them"
    return cannot_run(p.model, str(p.path)) if cannot_run is not None else ""


MAX_LABEL = 100


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_label(label: str, where: str) -> None:
    """A label is shown in the voice list, the TUI, the dock and the log: one line of text, no control characters
    (an escape sequence would reach the terminal), no line or paragraph separator (U+2028/9: a line break in
    the dock and the log) and no bidirectional override or isolate, which would reorder what follows it on
    the line (the label "\u202eevil" shows as "live")."""
    bad = next((ch for ch in label if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI), None)
    if bad is not None:  # (other Cf characters stay: emoji joiners)
        kind = {
            "Cc": "a control character",
            "Cs": "half of a surrogate pair (no character)",
            "Zl": "a line separator",
            "Zp": "a paragraph separator",
        }.get(unicodedata.category(bad), "a text-direction override")
        fix = "use printable text on one line"
        if unicodedata.category(bad) == "Cs":
            fix = "send valid Unicode text (in JSON escapes an emoji is a whole pair, e.g. \\ud83c\\udfa4)"
        raise ConfigError(f"{where} = {label[:60]!r} holds {kind} ({bad!r})", fix)
    if len(label) > MAX_LABEL:
        raise ConfigError(f"{where} is {len(label)} characters long", f"keep it to {MAX_LABEL}")


def profile_label(label: str, where: str, name: str) -> str:
    """A label as the voice list shows it: checked, stripped, and an empty one is the profile's name. A load
    and a save read it alike."""
    check_label(label, where)
    return label.strip() or name


def stored_label(name: str, profiles_dir: Path) -> str:
    """The label profiles/NAME.toml gives, read alone: a profile that does not load (a value out of range, a
    model file gone) still has its label; '' where the file has none (or none that is text), or cannot be read."""
    try:
        raw = read_toml(profile_path(name, profiles_dir))
        label = raw.get("label")
        return profile_label(label, "label", name) if isinstance(label, str) else ""
    except (RtvcError, OSError):
        return ""


def profiles_dir(cfg) -> Path:
    """profiles/ beside the config file (or in the working directory without one)."""
    return (cfg.path.parent if cfg.path else Path.cwd()) / "profiles"


def load_profile(name_or_path: str, profiles_dir: Path) -> Profile:
    if not name_or_path.strip():  # (it was looked for as the file profiles/.toml, and "not found" said of that)
        there = profile_names(profiles_dir)
        raise ConfigError(
            "the profile name is empty", f"name one of the profiles in {profiles_dir}: {', '.join(there) or 'none'}"
        )
    path = profile_path(name_or_path, profiles_dir)
    if not path.exists() and path.is_symlink():  # (said "not found", listing its own name among the profiles)
        raise ConfigError(
            f"profile '{name_or_path}': {path} is a link to {os.readlink(path)}, which leads to no file",
            "put the file it names back, or remove the link",
        )
    if not path.exists():  # a folder or an unreadable file: read_toml says which
        there = profile_names(profiles_dir)
        if name_or_path in there and name_or_path not in {p.stem for p in profile_files(profiles_dir)}:
            raise ConfigError(  # (the name voices.list gives a file whose name is not UTF-8)
                f"profile '{name_or_path}': the file's name is not UTF-8 text, so no client can name it",
                "rename the file",
            )
        listed = f"profiles in {profiles_dir}: {', '.join(there) or 'none'}"
        if not profiles_dir.is_dir() and profiles_dir.is_symlink():  # (a link to itself crashed serve at its start)
            listed = (
                f"{profiles_dir} is a link to {os.readlink(profiles_dir)}, which leads to no folder: point it at "
                "the folder of your profiles, or remove it"
            )
        elif not profiles_dir.is_dir():  # (rtvc started in another folder than its own: a desktop shortcut's)
            listed = (
                f"there is no folder {profiles_dir}: run rtvc in its own folder (where config.toml and profiles/ are), "
                "or pass --config with the path of its config.toml"
            )
        # a label, as the TUI, the dock and `rtvc ctl status` show it ('Deeper' for default.toml): say whose
        said = name_or_path.strip().casefold()
        owners = [n for n in there if (label := stored_label(n, profiles_dir)) != n and label.casefold() == said]
        whose = ""
        if owners:
            names, plain = " and ".join(f"'{n}'" for n in owners), " or ".join(owners)
            whose = f"'{name_or_path}' is the label of profile {names}: name it by its file name, {plain}; "
        raise ConfigError(
            f"profile '{name_or_path}' not found: no file {path}", f"{whose}{listed}; or pass a path to a .toml file"
        )
    try:
        path.stem.encode("utf-8")
    except UnicodeEncodeError:  # (the API's JSON would carry lone surrogates, which strict parsers refuse)
        raise ConfigError(
            f"{shown_name(path)}: the file's name is not UTF-8 text, so no client can name it", "rename the file"
        ) from None
    raw = read_toml(path)
    for key in raw:
        if key not in PROFILE_KEYS:
            raise ConfigError(f"{path}: unknown key '{key}'", f"allowed keys: {', '.join(PROFILE_KEYS)}")
    kind = raw.get("voice")
    if not isinstance(kind, str):
        raise ConfigError(f"{path}: 'voice' is missing or not a string", f"set voice = one of {sorted(VOICES)}")
    cls = voice_class(kind, str(path))
    params_table = raw.get("params", {})
    if not isinstance(params_table, dict):
        raise ConfigError(f"{path}: 'params' must be a [params] table", "see profiles/default.toml")
    params = from_table(cls.Params, params_table, str(path), "params")
    model = None
    model_cls = getattr(cls, "Model", None)
    if model_cls is not None:
        table = raw.get("model")
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: a '{kind}' voice needs a [model] table", "add [model] with path = the model file (see README)"
            )
        model = from_table(model_cls, table, str(path), "model")
    elif "model" in raw:
        raise ConfigError(f"{path}: a '{kind}' voice takes no [model] table", "remove it")
    stem = path.stem  # (the label where the file gives none: a long file name cut, not refused as a long 'label')
    label = raw.get("label", stem if len(stem) <= MAX_LABEL else stem[: MAX_LABEL - 1] + "…")
    if not isinstance(label, str):
        raise ConfigError(f"{path}: 'label' = {label!r} must be a string", "quote it")
    label = profile_label(label, f"{path}: 'label'", path.stem)  # (an empty label: the file's name, as without one)
    return Profile(name=path.stem, path=path, label=label, voice=kind, params=params, model=model)


def make_voice(profile: Profile, samplerate: int):
    """Build the profile's voice, loading its model files (errors name the file and the fix)."""
    cls = VOICES[profile.voice]
    if profile.model is None:
        return cls(samplerate)
    try:
        voice = cls(samplerate, profile.model, profile.path.parent, f"{profile.path}: [model]")
    except OSError as e:  # a model file that cannot be looked at or read (no permission, a name too long)
        what = f"{e.filename}: {e.strerror}" if e.filename else str(e)
        raise ModelError(
            f"{profile.path}: [model] {what}", "check that the model files are there and readable"
        ) from None
    voice.check_params(profile.params, str(profile.path))
    return voice
