"""rtvc.quiet_import: imports made with audio running hold Python's lock as little as they can.

Each library built here records, in its constructor (which runs when the library loads), whether the thread
loading it held the GIL: PyGILState_Check(), no timing. bench/first_rvc_load.py measures what that spares the
audio worker when torch is imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rtvc import quiet_import
from rtvc.converter import StreamingConverter, StreamShape
from rtvc.engine import Engine
from rtvc.quiet_import import quiet_imports
from rtvc.voices.passthrough import PassthroughParams, PassthroughVoice

PROBE = r"""
#include <Python.h>
static int loads = 0, held_at_load = -1;
__attribute__((constructor)) static void at_load(void) { loads++; held_at_load = PyGILState_Check(); }
int probe_loads(void) { return loads; }
int probe_held(void) { return held_at_load; }
static PyObject *held(PyObject *self, PyObject *unused) { return PyLong_FromLong(held_at_load); }
static PyMethodDef methods[] = {{"held_at_load", held, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "NAME", NULL, -1, methods};
PyMODINIT_FUNC PyInit_NAME(void) { return PyModule_Create(&def); }
"""


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> Path:
    """Three copies of the probe, each its own file: gil_plain and gil_quiet (extension modules), libprobe."""
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").exists():
        pytest.skip(f"no Python headers at {include} to build the probe modules (install python3-dev)")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the probe modules (rtvc's own install needs one: apt-get install gcc)")
    out = tmp_path_factory.mktemp("probes")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name, file in (("gil_plain", f"gil_plain{suffix}"), ("gil_quiet", f"gil_quiet{suffix}"), ("p", "libprobe.so")):
        src = out / f"{name}.c"
        src.write_text(PROBE.replace("NAME", name))
        subprocess.run([cc, "-shared", "-fPIC", "-O1", f"-I{include}", str(src), "-o", str(out / file)], check=True)
    return out


def run_python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_extension_module_imported_quietly_loads_without_the_gil(probes):
    got = run_python(f"""
import gc, json, sys, weakref
sys.path.insert(0, {str(probes)!r})
from rtvc.quiet_import import quiet_imports
import gil_plain

class Cycle: pass
c = Cycle(); c.me = c; garbage = weakref.ref(c); del c  # (garbage a full collection frees)
finders = list(sys.meta_path)
frozen = gc.get_freeze_count()
with quiet_imports():
    collecting_inside = gc.isenabled()
    import gil_quiet
    made = [[k] for k in range(1000)]
print(json.dumps({{
    "plain": gil_plain.held_at_load(), "quiet": gil_quiet.held_at_load(),
    "collecting_inside": collecting_inside, "collecting_after": gc.isenabled(),
    "garbage_freed": garbage() is None, "frozen": gc.get_freeze_count() - frozen,
    "finders_as_before": sys.meta_path == finders,
}}))
""")
    assert got["plain"] == 1, "the probe's check is broken: a plain import holds the GIL while the library loads"
    assert got["quiet"] == 0, got
    assert got["collecting_inside"] is False and got["collecting_after"] is True, got
    assert got["garbage_freed"], "the freeze kept garbage made before the imports"
    assert got["frozen"] >= 1000, got  # what was made inside is frozen out of later full collections
    assert got["finders_as_before"], got


def test_a_preopened_library_loads_once_without_the_gil(probes):
    got = run_python(f"""
import ctypes, json, os
from rtvc.quiet_import import preopen
path = os.path.join({str(probes)!r}, "libprobe.so")
first = preopen(path, os.RTLD_GLOBAL | os.RTLD_NOW)
lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)  # (as torch loads its own libraries)
print(json.dumps({{"first": first, "held": lib.probe_held(), "loads": lib.probe_loads(),
                   "missing": preopen(path + ".gone")}}))
""")
    assert got == {"first": True, "held": 0, "loads": 1, "missing": False}


def test_a_quiet_import_that_fails_says_why_and_restores_the_collector(probes):
    got = run_python("""
import gc, json, sys
from rtvc.quiet_import import quiet_imports
finders = list(sys.meta_path)
try:
    with quiet_imports():
        import rtvc_no_such_module  # noqa
except ImportError as e:
    error = str(e)
print(json.dumps({"error": error, "collecting": gc.isenabled(), "finders_as_before": sys.meta_path == finders}))
""")
    assert got == {"error": "No module named 'rtvc_no_such_module'", "collecting": True, "finders_as_before": True}


class _Stalls(PassthroughVoice):
    """Passthrough that stops inside its `stall_at`-th block until the test lets it go."""

    def __init__(self, samplerate: int, stall_at: int):
        super().__init__(samplerate)
        self.calls, self.stall_at = 0, stall_at
        self.stalled, self.go = threading.Event(), threading.Event()
        self.ended = 0.0

    def convert(self, window, tail, params):
        self.calls += 1
        if self.calls == self.stall_at:
            self.stalled.set()
            assert self.go.wait(60)
            self.ended = time.perf_counter()
        return super().convert(window, tail, params)


class _When(importlib.abc.MetaPathFinder):
    """Records when a module was looked for (after a quiet import's wait for the worker)."""

    def __init__(self, name: str):
        self.name, self.at = name, 0.0

    def find_spec(self, fullname, path, target=None):
        if fullname == self.name:
            self.at = time.perf_counter()
        return None


def test_a_quiet_import_waits_for_the_block_the_worker_is_converting(tmp_path):
    """With an engine running, each module of a quiet import waits until the worker has finished its block
    (at most two blocks' time): the importing thread would otherwise share Python's lock with the worker
    mid-block. Here a block stalls for 0.1 s after the import begins, well inside the block's second (a
    loader never waits past it)."""
    sr, period, block = 48000, 256, 48000
    voice = _Stalls(sr, stall_at=3)
    engine = Engine(StreamingConverter(voice, PassthroughParams(), StreamShape(sr, block, 0, 0)), sr, headroom=192)
    engine.set_device(0, 0, separate_streams=False)
    engine.prepare(period)
    engine.start()
    name = f"rtvc_quiet_probe_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n")
    sys.path.insert(0, str(tmp_path))
    when = _When(name)
    sys.meta_path.insert(0, when)
    out = np.zeros((period, 1), dtype=np.float32)
    imported: list[object] = []
    try:
        while not voice.stalled.is_set():
            engine.on_duplex(np.zeros(period, dtype=np.float32), out, period, None)
            time.sleep(0.001)

        def load() -> None:
            with quiet_imports():
                imported.append(importlib.import_module(name).VALUE)

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(0.1)
        voice.go.set()
        loader.join(10)
    finally:
        voice.go.set()
        sys.meta_path.remove(when)
        sys.path.remove(str(tmp_path))
        engine.stop()
    assert imported == [42]
    assert when.at >= voice.ended > 0, "the import ran while the worker was converting a block"
    assert quiet_import._give_way == [], "the stopped engine is still registered"
