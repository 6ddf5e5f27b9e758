"""Validated settings dataclasses: the one place TOML tables become typed values.

A settings class is a frozen dataclass whose fields carry `setting(...)` metadata: a help line and a
check. `from_table` rejects unknown keys, wrong types and out-of-range values with a `ConfigError` that
names the key, the file and what is allowed. config.toml and profiles use it alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rtvc.errors import ConfigError

Check = Callable[[Any], str | None]  # returns what is allowed when the value is bad, else None


def setting(default: Any, help: str, check: Check | None = None) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


def in_range(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"a number from {lo:g} to {hi:g}"

    check.range = (lo, hi)  # type: ignore[attr-defined]  # for describe(): the API lists ranges
    return check


def one_of(*choices: Any) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    check.choices = choices  # type: ignore[attr-defined]
    return check


def describe(cls: type) -> dict[str, dict[str, Any]]:
    """Each field of a settings class: type, default, help, and its range or choices (what a UI needs)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(cls):
        d: dict[str, Any] = {"type": _type_name(hints[f.name]), "default": f.default, "help": f.metadata["help"]}
        check = f.metadata.get("check")
        if hasattr(check, "range"):
            d["min"], d["max"] = check.range
        if hasattr(check, "choices"):
            d["choices"] = list(check.choices)
        out[f.name] = d
    return out


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits a field's annotation (int is accepted where float is asked)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, types.UnionType):
        return " or ".join(dict.fromkeys(_type_name(a) for a in typing.get_args(annotation)))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", tuple: "a list",
             list: "a list", dict: "a table"}  # fmt: skip
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def from_table(cls: type, table: Mapping[str, Any], where: str | Mapping[str, str], prefix: str) -> Any:
    """Build `cls` from a TOML table.

    `where` names the source in errors (a file path or "--flag"), or maps each key to its source;
    `prefix` is the table's dotted name.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        source = where if isinstance(where, str) else where[key]
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise ConfigError(
                f"{source}: unknown key '{name[:60]}'",
                f"{hint}allowed keys in [{prefix}]: {', '.join(fields)}",
            )
        value = _coerce(value, hints[key])
        shown = "(not shown)" if fields[key].metadata.get("secret") else _shown(value)  # (a password)
        if getattr(value, "too_large", False):  # (an API number of thousands of digits: rtvc.control.rpc)
            raise ConfigError(f"{source}: '{name}' = {shown} is too large", f"{fields[key].metadata['help']}")
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f"{source}: '{name}' = {shown} has the wrong type",
                f"it must be {_type_name(hints[key])}: {fields[key].metadata['help']}",
            )
        check = fields[key].metadata.get("check")
        allowed = check(value) if check else None
        if allowed:
            raise ConfigError(f"{source}: '{name}' = {shown} is not allowed", f"it must be {allowed}")
        values[key] = value
    return cls(**values)


def _coerce(value: Any, annotation: Any) -> Any:
    if annotation is int and isinstance(value, float) and value.is_integer():  # (JSON has one number type: 1.0)
        return int(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # too large for a float: kept, so the range check names it
            return value
    if annotation is float and isinstance(value, float):
        return value + 0.0  # (-0.0 is 0.0: a change to it would be an event, a log line and a saved "-0.0")
    return value


def _shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: its repr, cut short (a client may send megabytes); true, false and null
    as the user wrote them (TOML, JSON), not Python's True, False and None."""
    text = (
        {True: "true", False: "false"}[value] if isinstance(value, bool) else "null" if value is None else repr(value)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


TOML_LIMIT = 1 << 20  # bytes: a config or profile is a few hundred; more is some other file


def _read_settings_file(path: Path) -> bytes:
    """The bytes of a regular file of at most TOML_LIMIT. A device, a FIFO or /dev/zero named as a profile (a
    client may name any path) would block the reading thread or fill the memory: refused unread (a FIFO is
    opened without waiting for a writer)."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: is not a regular file", "name a .toml file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(TOML_LIMIT + 1)
    finally:
        os.close(fd)
    if len(data) > TOML_LIMIT:
        raise ConfigError(f"{path}: over {TOML_LIMIT >> 20} MiB, too large for a settings file", "name a .toml file")
    return data


def read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        data = _read_settings_file(path)
    except FileNotFoundError:
        if path.is_symlink():  # (a link to a file moved or deleted: "not found" named only the link)
            raise ConfigError(
                f"{path}: a link to {os.readlink(path)}, which is not there", "put the file back, or remove the link"
            ) from None
        raise ConfigError(f"{path}: file not found", "check the path (a .toml file)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a file", "name a .toml file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})", "check the file's permissions") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows Notepad writes one) is not content
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line})",
            "save the file as UTF-8 (your editor's encoding menu)",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        twice = _set_twice(text) if str(e).startswith(("Cannot overwrite", "Cannot declare")) else None
        if twice is not None:  # (tomllib's words name neither the key nor, at the file's end, the line)
            what, first, again = twice
            raise ConfigError(
                f"{path}: {what} is set twice (lines {first} and {again})", "keep one of the two lines"
            ) from None
        raise ConfigError(f"{path}: not valid TOML: {e}", "fix the syntax at that line") from None


_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?")
_KEY = re.compile(r"\s*([\w.\-\"' ]+?)\s*=")


def _set_twice(text: str) -> tuple[str, int, int] | None:
    """(For tomllib's "Cannot overwrite a value" and "Cannot declare ... twice".) The first name set again:
    ('stream.block_ms' or [stream], the line it was first set on, the line that sets it again), or None where the
    file's lines do not show one (a key set inside a multi-line value)."""

    def name(words: str) -> str:
        return ".".join(w.strip().strip("\"'") for w in words.split("."))

    seen: dict[str, int] = {}
    table = ""
    quote = ""  # the multi-line string the line is in ('' outside one): its lines set nothing
    for n, line in enumerate(text.splitlines(), 1):
        was = quote
        for q in ('"""', "'''"):
            if (not quote or quote == q) and line.count(q) % 2:
                quote = "" if quote else q
        if was:
            continue
        if line.lstrip().startswith("[["):  # (an array of tables: each element's keys are its own)
            table = f"[[{n}]]"
        elif m := _HEADER.fullmatch(line):
            table = name(m[1])
            if table in seen:
                return f"[{table}]", seen[table], n
            seen[table] = n
        elif m := _KEY.match(line):
            key = f"{table}.{name(m[1])}" if table else name(m[1])
            if key in seen:
                return f"'{key}'", seen[key], n
            seen[key] = n
    return None
