"""Loading torch pickles that name classes we must not import (fairseq checkpoints), without running code.

`torch.load(weights_only=True)` refuses any global outside tensors and plain containers; fairseq checkpoints
pickle `argparse.Namespace`, omegaconf nodes, fairseq dictionaries and meters. This unpickler resolves only
tensor rebuilders, torch dtypes and plain containers, and turns every other class it is asked for into an inert
`Opaque` stand-in: no module named in the file is imported and no function it names is called. `plain` reads
the stand-ins back as dicts and values.
"""

from __future__ import annotations

import argparse
import builtins
import codecs
import collections
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from rtvc.errors import ModelError
from rtvc.rvc.model_files import torch_load


class Opaque:
    """Stand-in for an object of a class the checkpoint names but we never import (argparse.Namespace, omegaconf
    nodes, fairseq Dictionary and meters, numpy scalars...). It keeps what pickle hands it and does nothing else."""

    origin = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:  # NEWOBJ: cls.__new__(cls, *args)
        obj = super().__new__(cls)
        obj.args, obj.state, obj.entries = args, None, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE: cls(*args); __new__ kept the args
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEMS on a dict subclass
        self.entries.append((key, value))

    def append(self, value: Any) -> None:  # APPENDS on a list subclass
        self.entries.append(value)

    def extend(self, values: Any) -> None:
        self.entries.extend(values)

    def __repr__(self) -> str:
        return f"<opaque {self.origin}>"


_DTYPES = ("float16", "half", "bfloat16", "float32", "float", "float64", "double", "int8", "uint8", "int16")
_DTYPES += ("int32", "int", "int64", "long", "bool", "complex64", "complex128")
_ALLOWED: dict[tuple[str, str], Any] = {
    **{("torch._utils", n): getattr(torch._utils, n) for n in ("_rebuild_tensor", "_rebuild_tensor_v2")},
    **{("torch._utils", n): getattr(torch._utils, n) for n in ("_rebuild_parameter", "_rebuild_parameter_with_state")},
    **{("torch", n): getattr(torch, n) for n in _DTYPES},
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles spell bytes
    **{("builtins", n): getattr(builtins, n) for n in ("set", "frozenset", "slice", "complex", "bytearray")},
}
_opaque_classes: dict[tuple[str, str], type[Opaque]] = {}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED` globals (tensor rebuilders, torch dtypes, plain containers); any other name becomes
    an `Opaque` subclass, so unpickling a checkpoint never imports a module or calls a function it names.
    torch.load wraps this class and resolves its own `*Storage` names before calling here."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if key not in _opaque_classes:
            _opaque_classes[key] = type(name, (Opaque,), {"origin": f"{module}.{name}"})
        return _opaque_classes[key]


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load(pickle_module=...) needs `Unpickler` and `load` (the legacy, pre-zip format calls load directly).
_RESTRICTED_PICKLE = types.SimpleNamespace(__name__="rtvc_restricted_pickle", Unpickler=_RestrictedUnpickler)
_RESTRICTED_PICKLE.load = _restricted_load


def load_torch_file(path: Path, missing_fix: str) -> Any:
    """A torch pickle, loaded without running code it names: weights_only first, then the restricted unpickler."""
    if not path.is_file():
        raise ModelError(f"{path}: no such file", missing_fix)
    try:
        return torch_load(path, map_location="cpu", weights_only=True)
    except Exception:  # refused a global (Namespace, DictConfig, fairseq classes) or not a checkpoint
        pass
    try:
        return torch_load(path, map_location="cpu", weights_only=False, pickle_module=_RESTRICTED_PICKLE)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on bad files
        # torch's first sentence says what broke; what follows is advice for torch's developers
        said = str(err).strip().split("\n")[0].split(". ")[0]
        said = said if len(said) <= 160 else said[:159] + "…"
        raise ModelError(
            f"{path}: truncated or not a torch checkpoint ({type(err).__name__}: {said})", "download the file again"
        ) from None


def plain(obj: Any, _seen: frozenset[int] = frozenset()) -> Any:
    """Plain dicts, lists and values from a checkpoint's `args` / `cfg`.

    Opaque stand-ins are read by the state pickle gave them: omegaconf DictConfig / ListConfig keep their entries
    in `_content`, value nodes their value in `_val` (omegaconf basecontainer.py / nodes.py); argparse.Namespace
    and dataclasses keep their fields as a dict; an Enum member (fairseq's ChoiceEnum) pickles as
    `EnumClass(value)`, so a stand-in built from one primitive and no state is that primitive.
    """
    if id(obj) in _seen:  # omegaconf nodes point back at their parents
        return None
    seen = _seen | {id(obj)}
    if isinstance(obj, argparse.Namespace):
        return plain(vars(obj), seen)
    if isinstance(obj, Opaque):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict state, slot state)
        if isinstance(state, dict):
            if "_content" in state:
                return plain(state["_content"], seen)
            if "_val" in state:
                return plain(state["_val"], seen)
            return {k: plain(v, seen) for k, v in state.items() if not str(k).startswith("_")}
        if state is None and len(obj.args) == 1 and isinstance(obj.args[0], str | int | float | bool):
            return obj.args[0]
        return obj
    if isinstance(obj, dict):
        return {k: plain(v, seen) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v, seen) for v in obj]
    return obj
