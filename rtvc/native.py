"""rtvc's compiled audio core (rtvc/_rt.c): the device callbacks and the rings they share with the worker.

It is a plain shared library built with the package (setup.py) and called through ctypes:
- `lib`: PyDLL calls, which keep the GIL (ring operations take microseconds; giving the GIL up and taking
  it back around each would cost more, and would let another thread in mid-block);
- `wait_lib`: the same functions as CDLL calls, which give the GIL up: the worker's doorbell wait.

A checkout whose core was not built fails at import with the command that builds it: there is no Python
stand-in for the callbacks (one would bring back the GIL waits they exist to avoid).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path

import numpy as np

from rtvc.errors import RtvcError

_HERE = Path(__file__).parent
_i64, _i32, _ptr, _f64 = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_double
_ulong = ctypes.c_ulong


def _library_path() -> Path:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = _HERE / f"_rt{suffix}"
        if p.exists():
            return p
    raise RtvcError(
        f"rtvc's audio core is not built (no {_HERE / '_rt'}<suffix> next to rtvc/_rt.c)",
        "build it with `pip install -e .` in the checkout (it needs a C compiler: apt-get install gcc libc6-dev), "
        "or `make run`, which does that",
    )


PATH = _library_path()
lib = ctypes.PyDLL(str(PATH))
wait_lib = ctypes.CDLL(str(PATH))

_SIGNATURES: dict[str, tuple[type | None, list]] = {
    "rtvc_ring_new": (_ptr, [_i64]),
    "rtvc_ring_free": (None, [_ptr]),
    "rtvc_ring_restart": (None, [_ptr]),
    "rtvc_ring_available": (_i64, [_ptr]),
    "rtvc_ring_overwritten": (_i64, [_ptr]),
    "rtvc_ring_write": (_i64, [_ptr, _ptr, _i64, _i64]),
    "rtvc_ring_advance": (None, [_ptr, _i64]),
    "rtvc_ring_skip_overwritten": (_i64, [_ptr]),
    "rtvc_ring_read_into": (_i64, [_ptr, _ptr, _i64]),
    "rtvc_ring_read_timeline": (_i64, [_ptr, _ptr, _i64]),
    "rtvc_ring_skip_to": (_i64, [_ptr, _i64, _i32]),
    "rtvc_now_ns": (_i64, []),
    "rtvc_engine_new": (_ptr, [_i64]),
    "rtvc_engine_free": (None, [_ptr]),
    "rtvc_engine_plan": (None, [_ptr, _i64, _i64, _i64]),
    "rtvc_engine_set_live": (None, [_ptr, _i32]),
    "rtvc_engine_phase": (None, [_ptr, _i32, _i64]),
    "rtvc_engine_ring": (None, [_ptr]),
    "rtvc_engine_wait": (_i32, [_ptr, _f64]),
    "rtvc_duplex": (None, [_ptr, _ptr, _i64, _ptr, _i32, _i64, _ulong]),
    "rtvc_input": (None, [_ptr, _ptr, _i64, _i64, _ulong]),
    "rtvc_play": (None, [_ptr, _i32, _ptr, _i32, _i64, _ulong]),
    "rtvc_layout": (_i32, [_ptr, _i32]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    for _l in (lib, wait_lib):
        _f = getattr(_l, _name)
        _f.restype, _f.argtypes = _res, _args

# the PaStreamCallback every rtvc stream is opened with (its userData: a StreamFields)
PA_CALLBACK = ctypes.cast(lib.rtvc_pa_callback, ctypes.c_void_p).value


def now() -> float:
    """The clock the callbacks stamp `last_callback` with, in seconds (monotonic)."""
    return lib.rtvc_now_ns() * 1e-9


def address(a: np.ndarray, what: str) -> int:
    """The data address of a float32 array the core will read or write."""
    if a.dtype != np.float32:
        raise TypeError(f"{what} must be float32, got {a.dtype}")
    return a.__array_interface__["data"][0]


def stride(a: np.ndarray, what: str) -> int:
    """Samples between consecutive frames of a 1-D float32 array (a channel of an interleaved buffer)."""
    if a.ndim != 1 or a.strides[0] % 4:
        raise TypeError(f"{what} must be one channel of float32 samples, got shape {a.shape}, strides {a.strides}")
    return a.strides[0] // 4
