"""Wake the worker from the audio callback without ever making the callback wait.

A raw `_thread` lock serves as a binary semaphore: "locked" means no wake-up is pending. The callback
(the only releaser) posts by releasing it when it is locked, a non-blocking C call that keeps the GIL
(releasing the GIL inside the callback would hand it to the woken worker and make the callback wait
to get it back: measured as JACK xruns at 128-frame periods). The worker (the only acquirer) waits in
`acquire(timeout)`, so it also notices a device that stopped calling back.
"""

from __future__ import annotations

import threading


class Doorbell:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # nothing pending

    def ring(self) -> None:
        """Producer side: never blocks. A bell already rung stays rung."""
        if self._lock.locked():
            try:
                self._lock.release()
            except RuntimeError:  # released meanwhile by a racing ring(); still rung
                pass

    def wait(self, timeout: float) -> bool:
        """Consumer side: block until rung or `timeout` seconds; clears the bell. True if it was rung."""
        return self._lock.acquire(timeout=timeout)

    def close(self) -> None:
        pass
