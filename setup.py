"""The one compiled part of rtvc: the audio callbacks and their rings (rtvc/_rt.c), loaded with ctypes.

Everything else is in pyproject.toml. `pip install -e .` (or `make run`/`make test`) builds it; it needs a C
compiler (Debian/Ubuntu: gcc, libc6-dev; scripts/system-deps.sh installs them).
"""

from setuptools import Extension, setup

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
