"""Importing large modules (torch and what RVC voices use) while the audio worker runs.

Python holds its lock (the GIL) while it loads a native library and while it collects garbage, and the
worker needs that lock for every block. A daemon started without RVC profiles imports torch when a client
first selects an RVC voice, with audio running; done plainly, that stopped the worker for up to 0.4-0.6 s
at once and for 100-300 ms at a time for seconds after, 2.5 s of audio lost in all (`python
bench/first_rvc_load.py`, bench/results/first_rvc_load.json): loading torch's native libraries, and full
garbage collections set off by the hundreds of thousands of objects the import makes. `quiet_imports()`
takes both out of the lock's way:
- an extension module's file is opened first with a dlopen called through ctypes (a CDLL call gives the GIL
  up): the library loads, relocates and runs its constructors while the worker runs, and the import's own
  dlopen then finds it loaded (the same file and flags) and only calls the module's init function;
  `preopen(path)` does the same for a library a package loads itself (torch's own, through ctypes.CDLL);
- the importing thread gives way to the audio worker (the running engine registers itself: `give_way`):
  before each module it waits until the worker has finished its block with most of the block's time left,
  and while the worker converts a block its Python code pauses (`giving_way`: a profile hook on that
  thread). Otherwise the two share the lock: the worker, each time it lets the lock go mid-block (numpy
  does), waits a switch interval (0.5 ms) to have it back, and a 4 ms block took 20-30 ms. (A native call
  that holds the lock, torch's module init for one, still runs to its end.)
- the garbage collector is off during the imports, and what they made is frozen out of later full
  collections (as the engine does with what is alive when it starts). A full collection first frees what
  is garbage already (after the engine's own freeze it walks only what was made since: milliseconds); cyclic
  garbage made during the imports themselves is frozen with them (kept for good: the imports' own is small).
The wait and the dlopen before a module run inside its find_spec, which CPython calls holding the global
import lock: another thread's first import of a module waits meanwhile (the worker imports nothing; a
control thread's lazy import may wait up to two blocks, or a library's load).
The imports are the same imports: what fails fails as before. Where dlopen cannot be called (Windows), only
the collector part applies.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType, ModuleType
from typing import Any, Protocol


def _find_dlopen():
    if os.name != "posix":
        return None
    try:
        fn = ctypes.CDLL(None).dlopen  # (CDLL: the call gives the GIL up; PyDLL would keep it)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return fn


_dlopen = _find_dlopen()
_lock = threading.Lock()  # one quiet import at a time (the collector's state is the process's)


class Worker(Protocol):
    """The audio worker as loaders see it (rtvc.engine.Engine)."""

    in_block: bool  # converting a block now

    def stay_off(self) -> None:
        """Returns when a loader may run without holding the worker up."""


_give_way: list[Worker] = []  # the running engine (`give_way`)
_hooks = threading.local()  # .on: this thread's giving-way hook, while it has one


def give_way(worker: Worker | None, owner: Worker | None = None) -> None:
    """The engine, as it starts: give_way(itself); loaders then give way to it. As it stops: give_way(None,
    owner=itself), which clears it only if it is still the one registered."""
    if worker is not None:
        _give_way[:] = [worker]
    elif owner is None or (_give_way and _give_way[0] is owner):
        _give_way.clear()


@contextmanager
def giving_way() -> Iterator[None]:
    """On a loader thread (a voice loading while another plays): while the worker converts a block, this
    thread's Python code waits for the block to end. The hook on each call costs the loader about a quarter
    more time, and the waits more (the first RVC voice's load: 12.6 -> 18.5 s, bench/first_rvc_load.py);
    nothing where no engine runs, on the worker itself, or beside a voice that takes over half of each block
    (Engine.stay_off)."""
    worker = _give_way[0] if _give_way else None
    if worker is None or sys.getprofile() is not None:  # (no worker, or a profiler already hooked: left alone)
        yield
        return

    def hook(frame: FrameType, event: str, arg: Any) -> None:  # (not called for what it calls itself)
        if worker.in_block:
            worker.stay_off()

    _hooks.on = hook
    sys.setprofile(hook)
    try:
        yield
    finally:
        sys.setprofile(None)
        _hooks.on = None


def _stay_off(worker: Worker) -> None:
    """worker.stay_off() without this thread's giving-way hook: the hook would call it again inside the wait,
    holding the lock of the event the wait is on."""
    hook = getattr(_hooks, "on", None)
    if hook is not None:
        sys.setprofile(None)
    try:
        worker.stay_off()
    finally:
        if hook is not None:
            sys.setprofile(hook)


def preopen(path: str | os.PathLike[str], flags: int | None = None) -> bool:
    """Load the shared library at `path` without holding the GIL, with `flags` (default: those Python's
    imports use) as its later loader will, so that loader's dlopen finds it loaded. False where it could
    not (no dlopen here, no such file, or the library does not load: the later loader then says why)."""
    if _dlopen is None or not os.path.isfile(path):
        return False
    return bool(_dlopen(os.fsencode(path), sys.getdlopenflags() if flags is None else flags))


class _OpenFirst(importlib.abc.MetaPathFinder):
    """First on sys.meta_path during quiet imports: finds each module with the finders after it, and opens an
    extension module's file (preopen) before its loader does."""

    def __init__(self, worker: Worker | None) -> None:
        self._inside = threading.local()
        self._worker = worker

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if getattr(self._inside, "on", False):  # (a finder after us that imports)
            return None
        self._inside.on = True
        try:
            if self._worker is not None:
                _stay_off(self._worker)
            for finder in list(sys.meta_path):
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is None:
                    continue
                if isinstance(spec.loader, importlib.machinery.ExtensionFileLoader) and spec.origin:
                    preopen(spec.origin)
                return spec
            return None
        finally:
            self._inside.on = False


@contextmanager
def quiet_imports() -> Iterator[None]:
    """Imports made inside (by any thread) hold the GIL for as little as they can: native libraries are
    loaded without it, no full garbage collection runs (what was made is frozen out of later ones), and each
    module waits for the audio worker's free time (when an engine runs)."""
    with _lock:
        gc.collect()
        collecting = gc.isenabled()
        gc.disable()
        finder = _OpenFirst(_give_way[0] if _give_way else None)
        sys.meta_path.insert(0, finder)
        try:
            with giving_way():
                yield
        finally:
            sys.meta_path.remove(finder)
            gc.freeze()
            if collecting:
                gc.enable()
