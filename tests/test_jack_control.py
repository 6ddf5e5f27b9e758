"""The control plane costs the engine no xrun, on real PortAudio callbacks paced by JACK.

`rtvc serve` runs as a user runs it (its own process, the default voice, default blocks and settings) on a
JACK dummy server, fed a sine by a C client. Issue 6: 10 websocket clients take meters at 30 Hz while a
driver changes the pitch every 50 ms and times the round trip. Issue 7: the real TUI, headless in its own
process, takes meters at 15 Hz for a minute. In both, the daemon must count no xrun at all.

This shared 2-vCPU VM sometimes stops scheduling every JACK client for milliseconds; jackd then blames
whichever client it was waiting for. A window in which it also blamed the C reference client, with no more
xruns than such stalls explain (STALL_XRUNS per blamed cycle), is the machine's, not rtvc's: it is measured
again, up to four times. Any other window with xruns is followed by a quiet one (as long, nobody attached):
half as many xruns there or more are the machine's of the moment (CI once saw rtvc's worker late in all three
TUI windows, jackd blaming nobody, while test_jack_live's tone, no client attached, missed deadlines in all
its attempts). xruns that neither explains, in three windows, fail the test. (A meter push made to hold
Python's lock for 20 ms fails it: 1,200 xruns a minute, jackd blaming the reference client too.)

Why three and not one: jackd finds a client that was woken but had not finished "Running". A vCPU the
hypervisor takes away while rtvc's client thread runs (this VM reports 10-800 ms of steal a minute) looks
the same as a slow callback, and rtvc's client does more per cycle than the C client upstream of it, so it
is the likelier one to be caught. Measured on this VM (blame states and steal in every window's report):
rtvc's client was blamed alone, "Running", in 1 of 10 windows on a --no-realtime server and in 2 of 4 on a
--realtime one, while `bench/tui_xruns.py` (the same daemon, 60 s without and with the TUI, in turns) saw it
in none of 8, with the TUI or without. A control plane that costs xruns (Python callbacks waiting for the GIL
did) costs them in every window with it, and fails.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from jack_daemon import REFERENCE, JackDaemon, children_cpu, finish
from jack_harness import SERVER_LATE, JackServer, steal_ms

pytestmark = [pytest.mark.jack, pytest.mark.slow]
ATTEMPTS = 4
ALONE_FAILS = 3  # windows with xruns neither a stall nor the quiet window after explains: the test fails
STALL_XRUNS = 4  # rtvc's xrun counts a machine's stall explains, per cycle jackd blamed on a client


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[JackServer, JackDaemon]]:
    server = JackServer(256, role="bare")  # (the name of test_jack_live's bare server: JACK has eight slots)
    server.start()
    daemon = None
    try:
        daemon = JackDaemon(server.name, tmp_path_factory.mktemp("jack-control"), "default")
        daemon.feed_sine()
        time.sleep(1.0)  # start-up (priming, first blocks) belongs to no window
        yield server, daemon
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()


def idle(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {}


def measured(served: tuple[JackServer, JackDaemon], window: Callable[[], dict]) -> dict[str, Any]:
    """window()'s figures, and the daemon's counters, jackd's blame and the steal over it."""
    server, daemon = served
    assert daemon.proc.poll() is None, daemon.log()[-3000:]
    blamed0 = len(server.blame_states())
    steal0 = steal_ms()
    before = daemon.counters()
    t0 = time.monotonic()
    figures = window()
    elapsed = time.monotonic() - t0
    after = daemon.counters()
    states = server.blame_states()[blamed0:]
    got = {k: after[k] - before[k] for k in after}
    engine = daemon.engine()
    assert engine["state"] == "running", daemon.log()[-3000:]
    due = elapsed * engine["latency"]["samplerate"] / engine["latency"]["block"]
    return {
        "figures": figures,
        "elapsed": elapsed,
        "got": got,
        "due": due,
        "blamed": [client for client, _ in states],
        "xruns": max(got["total"], 1 if got["output_late_frames"] else 0),
        "stalls": sum(1 for client, _ in states if client in (REFERENCE, SERVER_LATE)),
        "seen": f"{got}, {due:.0f} blocks due, jackd blamed {states}, {steal_ms() - steal0:.0f} ms stolen",
    }


def without_xrun(served: tuple[JackServer, JackDaemon], what: str, window: Callable[[], dict]) -> dict[str, Any]:
    """window()'s figures from the first window in which the daemon counted no xrun (see the module's doc)."""
    noisy: list[str] = []
    alone: list[str] = []
    for _ in range(ATTEMPTS):
        w = measured(served, window)
        if not w["xruns"]:
            if w["got"]["blocks"] >= 0.98 * w["due"]:  # and the engine kept up all along
                return {**w["figures"], "seconds": round(w["elapsed"], 1), "blocks": w["got"]["blocks"]}
            noisy.append(w["seen"])  # JACK itself ran late (the dummy driver's clock thread starved): no xrun to see
            continue
        # the machine stalled a C client or jackd itself: a stall's cycle costs rtvc its PortAudio flag, the ring's
        # underrun and a late block or two; more than that is not the stall's (a review: a meter push holding Python's
        # lock for 20 ms cost 1,200 xruns a minute, jackd blaming the reference client too in every window)
        if w["stalls"] and w["xruns"] <= STALL_XRUNS * len(w["blamed"]):
            noisy.append(w["seen"])
            continue
        quiet = measured(served, functools.partial(idle, w["elapsed"]))  # nobody attached, as long
        if 2 * quiet["xruns"] >= w["xruns"]:  # the machine's now, load or not
            noisy.append(f"{w['seen']}; and without the load just after: {quiet['seen']}")
            continue
        alone.append(f"{w['seen']}; without the load just after: {quiet['seen']}")
        if len(alone) == ALONE_FAILS:
            pytest.fail(
                f"{what}: rtvc had xruns that neither a stall of the machine (the C reference client or jackd "
                f"late) nor a quiet window just after explain, {ALONE_FAILS} times: {alone}"
            )
    pytest.skip(
        f"{what}: no window without xruns; the machine's (a stall: the C reference client or jackd late too; or "
        f"as many xruns without the load just after) in {len(noisy)} of {ATTEMPTS}: {noisy}; rtvc's alone in "
        f"{len(alone)}: {alone}"
    )


def test_the_worker_does_not_outrank_a_jack_server_without_real_time(served) -> None:
    """stream.realtime is on by default, but this jackd runs --no-realtime: every client of its graph (the C
    reference client too) is an ordinary thread, so the worker stays on the normal scheduler and the log
    says why (rtvc.priority)."""
    daemon = served[1]
    deadline = time.monotonic() + 10
    while "worker scheduling:" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [ln for ln in daemon.log().splitlines() if "worker scheduling:" in ln] or [daemon.log()[-2000:]]
    if "permission" in lines[-1] or "refused" in lines[-1]:
        pytest.skip(f"no real-time scheduling on this machine at all: {lines[-1]}")
    assert "worker scheduling: normal (the audio server's callbacks run without real-time scheduling" in lines[-1]
    assert daemon.engine()["worker_priority"] in lines[-1]


def test_ten_meter_clients_and_parameter_changes_cost_no_xrun(served, capsys) -> None:
    daemon = served[1]

    def window() -> dict[str, Any]:
        load, _ = daemon.load("control", 30.0, 10)
        return finish(load, 30.0)

    got = without_xrun(served, "10 meter clients + a pitch change every 50 ms for 30 s", window)
    assert got["changes"] >= 100, got  # the driver really drove (a round trip + 50 ms each)
    rows = ", ".join(f"{k} {np.median(v):.1f}/{np.percentile(v, 99):.1f}" for k, v in got["times_ms"].items())
    with capsys.disabled():
        print(f"\n0 xruns over {got['seconds']} s ({got['blocks']} blocks), {got['changes']} pitch changes with 10 "
              f"meter clients; round trip p50/p99 ms: {rows}")  # fmt: skip


def test_the_tui_costs_no_xrun_over_a_minute(served, capsys) -> None:
    daemon = served[1]
    cpu: list[float] = []

    def window() -> dict[str, Any]:
        load, cpu0 = daemon.load("tui", 60.0, 15.0)
        got = finish(load, 60.0)
        cpu.append(children_cpu() - cpu0)
        return got

    got = without_xrun(served, "the TUI attached for 60 s at 15 Hz meters", window)
    assert got["link"] == "connected", got
    assert got["meter_updates"] >= 10 * 60, got  # the issue asks >= 10 Hz; it asked 15
    with capsys.disabled():
        print(f"\n0 xruns over {got['seconds']} s ({got['blocks']} blocks) with the TUI attached: "
              f"{got['meter_updates'] / 60:.1f} meter updates/s, TUI process CPU {100 * cpu[-1] / got['seconds']:.0f}% "
              "of a core (start-up included)")  # fmt: skip
