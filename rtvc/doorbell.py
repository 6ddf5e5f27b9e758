"""Wake the worker from the audio callback without taking a lock.

`ring()` is one non-blocking write() on an eventfd (Linux) or a pipe (other POSIX systems); a bell
already rung stays rung. The worker waits in select() with a timeout, so it also notices a device that
stopped calling back.
"""

from __future__ import annotations

import os
import select


class Doorbell:
    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._rfd = self._wfd = fd
            self._token = (1).to_bytes(8, "little")  # eventfd takes a 64-bit counter increment
        else:
            self._rfd, self._wfd = os.pipe()
            os.set_blocking(self._rfd, False)
            os.set_blocking(self._wfd, False)
            self._token = b"\1"

    def ring(self) -> None:
        try:
            os.write(self._wfd, self._token)
        except BlockingIOError:  # pipe full: the bell is already rung
            pass

    def wait(self, timeout: float) -> bool:
        """Block until rung or `timeout` seconds; clears the bell. True if it was rung."""
        ready, _, _ = select.select([self._rfd], [], [], timeout)
        if not ready:
            return False
        try:
            os.read(self._rfd, 4096 if self._rfd != self._wfd else 8)
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        for fd in {self._rfd, self._wfd}:
            os.close(fd)
