"""Write a voice profile (`profiles/NAME.toml`) from the settings a voice is running with.

The control API's `profiles.save` uses it: "save these settings to a profile". The file is written to a
temporary name, read back through `load_profile` (so a saved profile always loads), then renamed into
place: a failed save leaves no half-written profile and never replaces a good one. A profile saved over one of
the same voice kind keeps that file's comments and layout (`update`): only its values change.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from rtvc.errors import ConfigError
from rtvc.names import NAME_RE
from rtvc.profiles import check_label, load_profile, missing_files, profile_files

_SAVING = threading.Lock()
SAVED = "Saved by rtvc (profiles.save)."


def check_name(name: str, profiles_dir: Path | None = None) -> None:
    """A name for a new profile: NAME_RE (a file name on any system). A profile `profiles_dir` lists already ("my
    voice", "声", made by hand) may be saved over by its own name: it names a file there, and no other."""
    if profiles_dir is not None and isinstance(name, str) and name in {p.stem for p in profile_files(profiles_dir)}:
        return
    if not NAME_RE.fullmatch(name):
        raise ConfigError(
            f"profile name {name[:70]!r} is not allowed",
            "use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit (it becomes NAME.toml)",
        )


def _value(v: Any) -> str:
    """One TOML value. JSON's string escapes are valid TOML basic-string escapes; characters past the
    ASCII range are written as themselves (JSON would write an emoji as a surrogate pair, which TOML refuses)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        try:
            v.encode()
        except UnicodeEncodeError:
            shown = v.encode("utf-8", "backslashreplace").decode()[:70]
            raise ConfigError(
                f"text {shown!r} holds half of a surrogate pair, which is no character",
                "send valid Unicode text (in JSON escapes an emoji is a whole pair, e.g. \\ud83c\\udfa4)",
            ) from None
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")  # TOML wants DEL escaped too
    if isinstance(v, int | float):
        return json.dumps(v)
    raise ConfigError(f"cannot write {v!r} to a profile", "only strings, numbers and booleans are profile values")


def _table(name: str, values: dict[str, Any]) -> list[str]:
    return [f"\n[{name}]", *(f"{k} = {_value(v)}" for k, v in values.items())]


def render(
    label: str,
    kind: str,
    params: dict[str, Any],
    model: dict[str, Any] | None,
    comment: str = SAVED,
) -> str:
    lines = [f"# {comment}", f"label = {_value(label)}", f"voice = {_value(kind)}"]
    if model:
        lines += _table("model", model)
    lines += _table("params", params)
    return "\n".join(lines) + "\n"


def update(old: str, label: str, kind: str, params: dict[str, Any], model: dict[str, Any] | None) -> str | None:
    """The text of a profile being replaced, with these values: its comments, key order and layout kept
    (a comment after a value stays beside the new value). [model] keys the new settings lack are removed (they
    are defaults now). None where the old text does not parse or names another voice kind: comments written
    for another voice would describe what is no longer there, so that profile is written afresh."""
    import tomlkit
    from tomlkit.container import OutOfOrderTableProxy
    from tomlkit.items import InlineTable, Table

    # (a table as [params], as params = { ... } or as params.pitch = ... keys: each kept as written; the last two were
    # written afresh, their comments lost: a review)
    tables = (Table, InlineTable, OutOfOrderTableProxy)

    try:
        doc = tomlkit.parse(old)
    except Exception:  # (tomlkit's ParseError and its kin: a file a user broke by hand)
        return None
    if doc.get("voice") != kind:
        return None
    for v in (label, *params.values(), *(model or {}).values()):
        _value(v)  # the same refusals as a fresh file (half a surrogate pair, a value TOML has no form for)
    doc["label"] = label
    for name, values in (("model", model or {}), ("params", params)):
        table = doc.get(name)
        if not isinstance(table, tables):
            if name in doc:
                del doc[name]
            if values:
                doc[name] = tomlkit.table()
                table = doc[name]
        if table is None:
            continue
        if not values:  # (no [model] for a voice without models)
            del doc[name]
            continue
        for key in [k for k in table if k not in values]:
            del table[key]
        for key, v in values.items():
            was = table.get(key)
            was = was.unwrap() if hasattr(was, "unwrap") else was
            if was != v or type(was) is not type(v):  # (an unchanged value keeps its spelling: 1e-3, 0.50)
                table[key] = v
    return tomlkit.dumps(doc)


def portable_model(model: dict[str, Any], source_dir: Path, target_dir: Path) -> dict[str, Any]:
    """The [model] table for a profile in `target_dir`: relative file paths were taken from the source
    profile's folder, so when the folders differ they are written as absolute paths."""
    if source_dir.resolve() == target_dir.resolve():
        return dict(model)
    out = {}
    for k, v in model.items():
        if isinstance(v, str) and not os.path.isabs(v) and (source_dir / v).exists():
            v = str((source_dir / v).resolve())
        out[k] = v
    return out


def write_profile(
    profiles_dir: Path,
    name: str,
    label: str,
    kind: str,
    params: dict[str, Any],
    model: dict[str, Any] | None,
    overwrite: bool = False,
    comment: str = SAVED,
    keep_layout: bool = False,
) -> Path:
    """Write profiles_dir/NAME.toml; returns its path. Refuses to replace an existing profile unless asked.
    `keep_layout`: a profile of the same voice kind it replaces keeps its comments and layout (`update`), where
    the result loads; else the file is written afresh."""
    check_name(name, profiles_dir)
    check_label(label, "profiles.save: 'label'")
    path = profiles_dir / f"{name}.toml"
    with _SAVING:  # two clients saving one name: the check and the rename are one step
        if path.is_dir() or (path.is_symlink() and not path.exists()):  # (a rename would fail, or replace the link)
            what = "a folder" if path.is_dir() else "a link to nothing"
            raise ConfigError(f"cannot save profile '{name}': {path} is {what}", "choose another name, or remove it")
        if path.exists() and not overwrite:
            raise ConfigError(
                f"profile '{name}' already exists ({path})",
                "choose another name, or pass overwrite: true to replace it",
            )
        try:
            profiles_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".toml.saving", dir=profiles_dir)
        except OSError as e:
            raise ConfigError(f"cannot write profile '{name}' in {profiles_dir}: {e.strerror}", _fix(e)) from None
        tmp = Path(tmp_name)
        try:
            # mkstemp makes a private (0600) file: a profile is readable as the one it replaces, or as files are; set
            # once it has been read back (a profile of mode 000 made the check read of the new file fail, and the
            # error named the temporary file: a review)
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                old = _readable(path) if keep_layout else None
                kept = update(old, label, kind, params, model) if old is not None else None
                fresh = render(label, kind, params, model, comment)
                _write_synced(f, kept if kept is not None else fresh)
                try:
                    saved = load_profile(str(tmp), profiles_dir)  # what we wrote must load: validated like any
                except ConfigError:
                    if kept is None:
                        raise
                    _write_synced(f, fresh)  # what the old file kept does not load (a key typed wrong by hand)
                    saved = load_profile(str(tmp), profiles_dir)
            gone = missing_files(saved)
            if gone:  # (the voice playing was loaded from files removed or replaced since: `rtvc import --force`)
                raise ConfigError(
                    f"cannot save profile '{name}': the model files it would name are gone: {'; '.join(gone)}",
                    "they were removed or replaced since the voice playing was loaded: select the voice again (its "
                    "profile names its files as they are now), then save",
                )
            if path.is_symlink():  # (a profile kept elsewhere, linked in: it is written, the link stays a link)
                _replace_target(tmp, Path(os.path.realpath(path)), name)
            else:
                os.chmod(tmp, mode)
                os.replace(tmp, path)
        except ConfigError:
            tmp.unlink(missing_ok=True)
            raise
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write profile '{name}' in {profiles_dir}: {e.strerror or e}", _fix(e)) from None
    return path


def _replace_target(tmp: Path, target: Path, profile: str) -> None:
    """What `tmp` holds, in place of `target` (a file a profile link points to, perhaps on another disk): written
    beside it and renamed, as the profile itself would be."""
    name = None
    try:
        fd, name = tempfile.mkstemp(prefix=".rtvc-", suffix=".toml.saving", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), target.stat().st_mode & 0o777)
            _write_synced(f, tmp.read_text(encoding="utf-8"))
        os.replace(name, target)
    except OSError as e:  # (said for the folder the link points into: the profiles folder is not where it failed)
        raise ConfigError(
            f"cannot write profile '{profile}' in {target.parent} (profiles/{profile}.toml links there): "
            f"{e.strerror or e}",
            _fix(e),
        ) from None
    finally:
        if name is not None:
            Path(name).unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def _write_synced(f, text: str) -> None:
    """`text` as the whole of file `f`, on disk: the rename that publishes it must not publish an empty file
    after a crash."""
    f.seek(0)
    f.truncate()
    f.write(text)
    f.flush()
    os.fsync(f.fileno())


def _readable(path: Path) -> str | None:
    """The text of the profile being replaced, or None (none there, or not text)."""
    try:
        return path.read_text(encoding="utf-8-sig")  # (a BOM, as Windows' Notepad writes: the file loads with it)
    except (OSError, UnicodeDecodeError):
        return None


def _fix(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):  # (a quota: Linux and macOS)
        return "free some space on that disk, then save again"
    if e.errno == errno.EROFS:
        return "the folder is on a read-only file system: run rtvc with a config.toml in a folder you can write to"
    return "check the folder's permissions"


def _umask() -> int:
    """This process's umask (a new profile is made as other files are: 0644 under 022, 0600 under 077; it was 0644
    whatever the umask, a review)."""
    try:  # (read, not set and put back: os.umask is the whole process's, and other threads make files meanwhile)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
