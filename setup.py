"""The one compiled part of rtvc: the audio callbacks and their rings (rtvc/_rt.c), loaded with ctypes.

Everything else is in pyproject.toml. `pip install -e .` (or `make run`/`make test`) builds it; it needs a C
compiler (Debian/Ubuntu: gcc, libc6-dev; scripts/system-deps.sh installs them).
"""

import sys

from setuptools import Extension, setup

if sys.platform == "win32":  # (its Windows branches are written, never built or tested)
    raise SystemExit("rtvc builds and is tested on Linux only (macOS untested); see README")

setup(
    ext_modules=[
        Extension(
            "rtvc._rt",
            sources=["rtvc/_rt.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-fvisibility=hidden"],
            libraries=["pthread"],
        )
    ]
)
