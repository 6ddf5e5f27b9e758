"""A virtual audio device: drives the engine's duplex callback from an array and records the output.

Paced, a thread calls back on the audio clock (absolute deadlines, so no drift), as a sound card would:
the no-sound-card run and benchmarks use it. Unpaced, it runs in lockstep with the worker, as fast as
it can, through exactly the same rings and converter: `rtvc convert` and the chunk-invariance tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from rtvc.engine import Engine


class VirtualDevice:
    def __init__(
        self,
        engine: Engine,
        source: np.ndarray,
        period: int | Sequence[int],
        paced: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ):
        """source: (n,) float32 mono. period: frames per callback, or a repeating list of chunk sizes."""
        self.engine = engine
        self.source = np.ascontiguousarray(source, dtype=np.float32)
        self.chunks = [period] if isinstance(period, int) else list(period)
        if not self.chunks or min(self.chunks) < 1:
            raise ValueError("callback sizes must be >= 1 frame")
        self.paced = paced
        self._clock = clock
        self.recording = np.zeros(len(self.source), dtype=np.float32)
        self.frames_done = 0
        self.late_callbacks = 0  # paced: callbacks that started after their deadline (this thread's jitter)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def period(self) -> int:
        return max(self.chunks)

    def start(self) -> None:
        self.engine.set_device(0, 0, separate_streams=False)
        self.engine.prepare(self.period)
        self._thread = threading.Thread(target=self._run, name="rtvc-virtual-device", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.join(5)

    @property
    def done(self) -> bool:
        return self.frames_done >= len(self.source)

    def _run(self) -> None:
        sr = self.engine.samplerate
        n = len(self.source)
        out2d = np.zeros((max(self.chunks), 1), dtype=np.float32)
        pos, k = 0, 0
        t0 = self._clock()
        try:
            while pos < n and not self._stop.is_set():
                size = min(self.chunks[k % len(self.chunks)], n - pos)
                k += 1
                if self.paced:
                    # the callback for [pos, pos+size) fires once that input has "arrived"
                    deadline = t0 + (pos + size) / sr
                    delay = deadline - self._clock()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -size / sr:
                        self.late_callbacks += 1
                out = out2d[:size]
                self.engine.on_duplex(self.source[pos : pos + size], out, size, None)
                self.recording[pos : pos + size] = out[:, 0]
                pos += size
                self.frames_done = pos
                if not self.paced:
                    self.engine.wait_for_worker()
        except BaseException as e:  # surfaced by join()
            self.error = e
