"""Errors a user can act on.

Every error rtvc raises on bad input says what was wrong and how to fix it, in one line. The CLI prints
`error: <what> (<fix>)` and exits non-zero; the daemon reports it in status and keeps its last good state.
"""


class RtvcError(Exception):
    """An error with a fix. `str()` gives the one line the user sees."""

    def __init__(self, what: str, fix: str = ""):
        self.what = what
        self.fix = fix
        super().__init__(f"{what} ({fix})" if fix else what)


class ConfigError(RtvcError):
    """A bad key or value in config.toml, a profile or a CLI flag."""


class DeviceError(RtvcError):
    """A sound device that cannot be found, opened or kept running."""


class ModelError(RtvcError):
    """A model file that is missing, truncated, of the wrong kind or inconsistent with itself."""


def words(e: BaseException) -> str:
    """An exception in one line: its type and the first line of its message (if any), cut to 200 characters."""
    said = (str(e).splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {said}" if said else type(e).__name__
