"""Real-time scheduling for the audio worker thread, as JACK and PipeWire give their audio threads.

On a busy machine the worker competes for a core with everything else (a browser, OBS, the control
clients); under the default scheduler a block can then start milliseconds late and underrun. SCHED_FIFO
at a modest priority lets the worker preempt ordinary threads the moment a block is due. The worker sleeps
between blocks (it waits on the doorbell), so it takes only its processing time; the kernel's RT throttling
keeps a runaway from locking the machine. Linux grants it to root, to users with an `rtprio` limit
(/etc/security/limits.d, the `audio` group on most distributions), and to nobody in some containers.
Whatever happened is reported (status and the latency report), never silently assumed.
"""

from __future__ import annotations

import os

# The lowest real-time priority: above every ordinary thread (UI, browser, OBS's encoder), below every audio
# driver thread (JACK's client threads run at the server's priority, 10 by default; PipeWire's data loop
# at up to 88; PortAudio's ALSA callback thread higher still), which must be able to preempt the worker: a
# callback waiting for a block to finish is a missed deadline.
WORKER_PRIORITY = 1


def make_realtime(priority: int = WORKER_PRIORITY) -> str:
    """Give the calling thread SCHED_FIFO `priority`; return what it got, for status."""
    if not hasattr(os, "sched_setscheduler"):
        return "normal (this OS has no SCHED_FIFO)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # pid 0: this thread (Linux)
    except PermissionError:
        return (
            "normal (no permission for real-time scheduling: add an rtprio limit for your user, "
            "e.g. join the 'audio' group; see README 'Latency')"
        )
    except OSError as e:
        return f"normal (real-time scheduling refused: {e.strerror})"
    return f"real-time (SCHED_FIFO {priority})"


def make_normal() -> str:
    """Back to the default scheduler for the calling thread."""
    if hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return "normal"
