"""Real-time scheduling for the audio worker thread, as JACK and PipeWire give their audio threads.

On a busy machine the worker competes for a core with everything else (a browser, OBS, the control
clients); under the default scheduler a block can then start milliseconds late and underrun. SCHED_FIFO
at a modest priority lets the worker preempt ordinary threads the moment a block is due. The worker sleeps
between blocks (it waits on the doorbell), so it takes only its processing time; the kernel's RT throttling
keeps a runaway from locking the machine. Linux grants it to root, to users with an `rtprio` limit
(/etc/security/limits.d, the `audio` group on most distributions), and to nobody in some containers.
Whatever happened is reported (status and the latency report), never silently assumed.

The worker must never outrank the audio callbacks: a callback that waits behind a block's processing is a
missed deadline. So it takes real-time scheduling only below the callback threads, as they run:
- where the callback threads are ours (PortAudio's ALSA, PulseAudio, and the virtual device's threads),
  they are raised first, to CALLBACK_PRIORITY (PortAudio's PaAlsa_EnableRealtimeScheduling raises its ALSA
  thread too, higher);
- where an audio server schedules them (JACK: jack2 runs its clients' process threads 5 below the server's
  priority, at 5 by default; PipeWire's JACK at its data loop's), the worker goes below them, and stays on
  the normal scheduler when the server itself runs without real-time scheduling (`jackd --no-realtime`):
  there every client of the graph is an ordinary thread that a real-time worker would delay.
"""

from __future__ import annotations

import os
from typing import NamedTuple

# The lowest real-time priority: above every ordinary thread (UI, browser, OBS's encoder), below every audio
# driver thread (jack2's client threads run at 5 by default; PipeWire's data loop at up to 88), which must be
# able to preempt the worker.
WORKER_PRIORITY = 1
CALLBACK_PRIORITY = 2  # our own callback threads, where nobody else schedules them: just above the worker
_REALTIME = {getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1)}
SUPPORTED = hasattr(os, "sched_setscheduler")  # Linux (Python has no binding on macOS or Windows)
_PERMISSION = (
    "no permission for real-time scheduling: add an rtprio limit for your user, e.g. join the 'audio' group; "
    "see README 'Latency'"
)
# the worker's scheduling before the first callbacks said theirs (the decision waits for them)
AWAITING_CALLBACKS = "normal (real-time once the audio device calls back)"
NON_REALTIME_SERVER = (
    "the audio server's callbacks run without real-time scheduling (jackd --no-realtime?), so a real-time "
    "worker would delay every client of its graph; start the server with real-time scheduling"
)


class Sched(NamedTuple):
    """A thread's scheduling: its policy's name and its real-time priority (0 on the normal scheduler)."""

    policy: str
    priority: int

    @property
    def realtime(self) -> bool:
        return self.priority > 0

    def __str__(self) -> str:
        return f"{self.policy} {self.priority}" if self.realtime else self.policy


def current() -> Sched | None:
    """The calling thread's scheduling (None where the OS gives no way to ask)."""
    if not SUPPORTED:
        return None
    # pid 0: this thread (Linux). RTKit and PipeWire set SCHED_RESET_ON_FORK on the threads they make real-time
    policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    return sched_of(policy, os.sched_getparam(0).sched_priority if policy in _REALTIME else 0)


def sched_of(policy: int, priority: int) -> Sched | None:
    """A scheduling as the OS numbers it (a callback thread's, learnt in C: rtvc/_rt.c); policy -1: unknown."""
    if policy < 0 or not SUPPORTED:
        return None
    names = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR", os.SCHED_OTHER: "SCHED_OTHER"}
    return Sched(names.get(policy, f"policy {policy}"), priority if policy in _REALTIME else 0)


def make_realtime(priority: int = WORKER_PRIORITY) -> str:
    """Give the calling thread SCHED_FIFO `priority`; return what it got, for status."""
    if not SUPPORTED:
        return "normal (this OS has no SCHED_FIFO)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        return f"normal ({_PERMISSION})"
    except OSError as e:
        return f"normal (real-time scheduling refused: {e.strerror})"
    return f"real-time (SCHED_FIFO {priority})"


def make_normal() -> str:
    """Back to the default scheduler for the calling thread."""
    if SUPPORTED:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return "normal"


def demote_inherited(worker: int, keep: set[int]) -> int:
    """On the real-time worker (thread id `worker`): threads it started inherit its SCHED_FIFO, and torch's
    intra-op pool starts from the thread that first runs a parallel operation: an RVC voice on the CPU ran the
    worker and every pool thread, one per core, real-time, and overloaded it held every core (the desktop, OBS and
    the game got the 5 % RT throttling leaves). Threads at the worker's priority other than it and `keep` (the
    callback threads) go back to the normal scheduler; only the worker itself is real-time. How many moved."""
    if not SUPPORTED:
        return 0
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return 0
    moved = 0
    for tid in tids:
        if tid == worker or tid in keep:
            continue
        try:
            policy = os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
            if policy in _REALTIME and os.sched_getparam(tid).sched_priority == WORKER_PRIORITY:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                moved += 1
        except OSError:  # (ended meanwhile)
            continue
    return moved


def make_worker_realtime(callbacks: list[Sched]) -> str:
    """On the worker thread: real-time below the slowest-ranked audio callback thread, or normal with the
    reason. `callbacks`: the scheduling each callback thread reported (after raising it, where ours)."""
    if not SUPPORTED or not callbacks:
        return make_realtime()  # (no way to compare: says what the OS gave)
    lowest = min(callbacks, key=lambda s: s.priority)
    if not lowest.realtime:
        make_normal()
        refused = make_realtime()  # the same request the callbacks made: its refusal names the fix
        if refused.startswith("normal"):
            return refused
        make_normal()
        return f"normal ({NON_REALTIME_SERVER})"
    if lowest.priority <= WORKER_PRIORITY:
        make_normal()
        return f"normal (an audio callback runs at {lowest}: the worker must stay below it)"
    got = make_realtime()
    return f"{got[:-1]}, below the audio callback's {lowest})" if got.startswith("real-time") else got
