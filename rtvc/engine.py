"""The real-time engine: device callbacks <-> SPSC rings <-> worker thread running the converter.

The callbacks are C (rtvc/_rt.c, through rtvc.callbacks.DeviceSide): a PortAudio stream calls them directly,
a virtual device through `on_duplex` (and tests through `on_input`, `on_output`, `on_monitor`). They copy into
and out of preallocated rings, bump counters and ring the worker's doorbell: no allocation, no logging, no
locks, and no wait for Python's GIL.

The worker takes fixed blocks from the input ring, runs the converter, and writes the output ring (and
the monitor ring). The output ring starts with `prefill` frames of silence; it is read on a fixed
timeline, so an underrun costs a gap but never shifts the latency away from what was declared.

A worker that falls behind (a voice too slow for the block, a stall of the machine) catches up rather than
playing the past: input the ring overwrote while nobody read it and whole blocks whose output slot has already
been played are dropped unconverted (their output would have been dropped as late), and the output of the
input frame at position p always goes to p + prefill. A voice whose typical block takes longer than the worker
is given makes the state OVERLOADED, with the fix in words.
"""

from __future__ import annotations

import gc
import logging
import queue
import sys
import threading
import time

import numpy as np

from rtvc import native, quiet_import
from rtvc.callbacks import MONITOR, OUTPUT, DeviceSide
from rtvc.converter import AFTER, JOINED, InputHistory, StreamingConverter
from rtvc.errors import words
from rtvc.gate import GateSettings, NoiseGate
from rtvc.latency import LatencyBreakdown, PrefillPlan, plan_prefill
from rtvc.limiter import Limiter
from rtvc.priority import AWAITING_CALLBACKS, Sched, current, demote_inherited, make_normal, make_worker_realtime
from rtvc.sola import crossfade, local_correlation
from rtvc.status import EngineStatus, Levels, Xruns
from rtvc.timing import BlockTimer

log = logging.getLogger("rtvc")

# The device callbacks are C and never wait for the GIL (rtvc/_rt.c); the worker does, behind the control
# server's thread: Python's default 5 ms switch interval let that thread hold it for 5 ms at a time. 0.5 ms keeps
# the worker's waits short (and the virtual device's, whose callbacks are called from Python).
SWITCH_INTERVAL_S = 0.0005
NO_CALLBACK_S = 3.0  # started streams with no callback this long are said to be so (status stays "starting")
PERIOD_CHANGED = "the device's period changed"
# the input kept for a voice switched to (StreamingConverter.continue_from): an RVC voice's window at its default 1 s
# context, and more where a converter wants it
HISTORY_S = 1.5
# a switch that crossfades two voices (MIXED) renders the old one's block too only where its block time is at most this
# share of the worker's time per block; a heavier one (RVC) is faded out of what it rendered ahead last block: two
# RVC voices in one block took twice a block's time, and the output underran at switches (a review: 7-9 of 10)
SWITCH_SHARE = 0.25
# The state while the playing voice raises on its blocks (a GPU out of memory, a driver error): the engine plays
# silence for each such block, restarts the voice's stream state and tries it again at the next block; devices
# and worker run on, so another voice can be selected. A live voice is never replaced by the dry microphone.
VOICE_FAILED = "voice failed"
# The state while the voice's median block time (over the last LOAD_WINDOW blocks) exceeds the worker's time per
# block: blocks play late or not at all. Checked every LOAD_EVERY blocks; it clears below 90 % of that time.
OVERLOADED = "overloaded"
LOAD_WINDOW = 16
LOAD_EVERY = 4


class Engine:
    def __init__(
        self,
        converter: StreamingConverter,
        samplerate: int,
        headroom: int,
        monitor: bool = False,
        voice_label: str = "",
        realtime: bool = False,
        gate: GateSettings | None = None,
    ):
        self.converter = converter
        self._next: tuple[StreamingConverter, str] | None = None  # swapped in by the worker at a block edge
        # voices the worker has swapped out, freed on the retire thread: freeing a model voice's tensors
        # (hundreds of MB) took 3-12 ms here, time the worker's block does not have
        self._retired: queue.SimpleQueue[StreamingConverter | None] = queue.SimpleQueue()
        self._retire_thread: threading.Thread | None = None
        self.samplerate = samplerate
        self.block = converter.block
        self.headroom = headroom
        self.voice_label = voice_label
        self.monitor_enabled = monitor  # read by the worker at block boundaries
        self._monitor_now = monitor  # what the monitor played at the last block (the worker's: a switch fades)
        # the noise gate (rtvc.gate): off unless given; `gate.settings` may be replaced from any thread
        self.gate = NoiseGate(samplerate, self.block, gate if gate is not None else GateSettings(on=False))
        self.limiter = Limiter(samplerate, self.block)  # last, on what plays: nothing beyond full scale
        self.muted = False  # mic mute: silence out (speakers and monitor), faded over one block
        # silence out as muted, while rtvc's JACK ports are moved from the device a stream opened on to the one meant
        # (rtvc.audio.io: by_move): not the user's mute; counted (`hold`), as streams of a switch may start while the
        # first ones still move theirs
        self.held = False
        self._holds = 0
        self._holds_lock = threading.Lock()
        self._muted_now = False
        self.has_monitor_device = False  # a monitor stream is open and playing (set by the device layer)
        self.monitor_error = ""  # why the monitor stream stopped (unplugged headphones); "" otherwise
        self._monitor_stalled = False  # monitor_error says its callbacks stopped (and clears if they come back)
        # why no one hears the output while the engine runs on (the device layer: the virtual microphone gone from
        # PipeWire; its streams play on, into nothing): status's detail while nothing else is wrong; "" otherwise
        self.output_unheard = ""
        self.stall_after_s = 0.5  # a stream quiet this long (or 20 periods) is stalled

        cap = max(samplerate, 8 * self.block)  # 1 s or 8 blocks: a stall long enough to notice
        self.device = DeviceSide(cap, self.block)  # (a worker stalled longer finds the newest second waiting)
        self.in_ring, self.out_ring, self.mon_ring = self.device.in_ring, self.device.out_ring, self.device.mon_ring
        self._block_in = np.zeros(self.block, dtype=np.float32)
        self._history = InputHistory(max(round(HISTORY_S * samplerate), converter.history), self.block)
        self._silence = np.zeros(self.block, dtype=np.float32)
        self._ramp = (np.arange(self.block, dtype=np.float32) + 0.5) / self.block  # 0 -> 1 over a block

        self._bell = self.device  # (ring / wait)
        self._all_counters = self.device.counters
        # input or duplex stream, separate output stream, monitor stream
        self._counters, self._out_counters, self._mon_counters = self._all_counters
        self.timer = BlockTimer(self.block / samplerate)
        self._levels = np.full(4, 0.0)  # in peak, in rms, out peak, out rms (linear)
        self.blocks_done = 0
        self.switches_ahead = 0  # MIXED switches faded out of the old voice's output ahead (it was too heavy to render)
        self._done_pos = 0  # the input position the worker is done with (converted or dropped): wait_for_worker
        # blocks holding NaN or infinity: from the input (a driver, a clip) they would poison the voice's
        # state; from a voice (fp16 overflow) they would reach the speakers. Both become silence, counted.
        self.nonfinite_in = 0
        self.nonfinite_out = 0
        self.voice_errors = 0  # blocks on which the voice raised (VOICE_FAILED): silence played instead
        self.voice_error = ""  # the latest such error, in words
        self.skipped_blocks = 0  # dropped unconverted: their output slot had been played (the worker fell behind)
        self.overloaded_blocks = 0  # blocks converted while OVERLOADED
        self.overload = ""  # the latest OVERLOADED detail (kept after it clears, for the report)
        self._load_from = 0  # the first timed block of this voice on these devices (OVERLOADED judges from there)
        self._lag_limit = 0  # frames an output-only stream may trail its ring's writer by (_play: it skips ahead)
        self.watch_load = True  # OVERLOADED when the voice cannot keep up (off for files: no clock to keep up with)
        self.plan: PrefillPlan | None = None
        self.device_latency = (0, 0)
        self.input_one_period = False  # (set_device)
        # the period device_latency is in frames of (0: the one planned for): _period_changed rescales it on the worker
        # while the control thread may store JACK's figures (set_device_latency); the lock keeps them from crossing
        self._latency_at = 0
        self._latency_lock = threading.Lock()
        self.separate_streams = False
        self._state = "starting"
        self._detail = ""
        self._starting_since = 0.0  # (native.now() of the start or the last device switch)
        self._stop = threading.Event()
        self._progress = threading.Event()
        self._idle = threading.Event()  # the worker saw the rings idle (suspend)
        self._block_end = threading.Event()  # set as each block is done (loaders giving way wait on it)
        self._block_start = 0.0  # perf_counter at the latest block's start
        self.in_block = False  # converting a block now (loaders giving way read it: rtvc.quiet_import)
        self._period_was = 0  # the period planned for, while the worker plans anew for another (_period_changed)
        self.period_changes = 0
        self.stall_note = ""  # what the device layer found out about a stall (a JACK server not answering)
        self._light = True  # the voice's blocks take under half their time (loaders give way: stay_off)
        self.realtime = realtime
        self.priority = ""  # what the worker thread got ("" until it has started)
        self._demoted_said = False  # (_demote_helpers: the threads the voice started moved off real-time, logged)
        self._thread: threading.Thread | None = None
        self._prev_switch = sys.getswitchinterval()

    @property
    def realtime(self) -> bool:
        """Real-time scheduling for the worker and our own callback threads (rtvc.priority); any thread may flip
        it: the callback threads apply it at their next call, the worker at its next turn."""
        return self.device.want

    @realtime.setter
    def realtime(self, on: bool) -> None:
        self.device.want = on

    @property
    def _live(self) -> bool:  # set last by prepare(): the callbacks then carry audio
        return self.device.live

    # -- set-up (control thread) ----------------------------------------------------------------
    def set_device(
        self,
        latency_in: int,
        latency_out: int,
        separate_streams: bool,
        ours: tuple[bool, bool, bool] = (True, True, True),
        input_one_period: bool = False,
        monitor_phase: int = 0,
    ) -> None:
        """ours: per stream (input or duplex, separate output, monitor), whether its callback thread is ours to
        schedule, False where an audio server schedules it (JACK); see rtvc.priority. input_one_period: the input
        device's latency is one period of the callbacks, known once they come (`prepare`), not `latency_in`
        (rtvc.audio.io: ALSA). monitor_phase: frames the main output sounds behind the ring's timeline (PortAudio's
        own user buffer on a duplex stream of a fixed period): the monitor stream plays as far behind, heard with
        it (placed at the input's clock, it was a period ahead of the main output and of the declared figure)."""
        self.device.phase(MONITOR, monitor_phase)
        with self._latency_lock:
            # (one period: the last callbacks' until these streams' first come, as a switch's reply says it)
            self.device_latency = (self._counters.period if input_one_period and self._counters.period else latency_in,
                                   latency_out)  # fmt: skip
            self._latency_at = 0
        self.input_one_period = input_one_period
        self.separate_streams = separate_streams
        for c, mine in zip(self._all_counters, ours, strict=True):
            c.ours = mine

    def set_device_latency(self, latency_in: int, latency_out: int, at_period: int) -> None:
        """The devices' latency as an audio server gave it, in frames at its period then (`at_period`; JACK's buffer
        size when asked): stored for the period the engine's figures refer to now, so that a period change around
        the asking is counted once (it was scaled twice when the server's new period came before the worker's
        re-plan, and lost when the re-plan came between the asking and the storing). at_period 0: as they are."""
        with self._latency_lock:
            if at_period not in (self.device.main_period()[0], self._counters.period):
                at_period = 0  # (a period that is neither the callbacks' nor planned: PipeWire's JACK may say so)
            ref = self._latency_at or self._counters.period or at_period
            scale = ref / at_period if at_period else 1.0
            self.device_latency = (round(latency_in * scale), round(latency_out * scale))
            self._latency_at = ref

    def prepare(self, period: int) -> PrefillPlan:
        """Plan the prefill for callbacks of `period` frames and make the rings live."""
        plan = plan_prefill(self.block, period, self.headroom, self.separate_streams)
        if plan.prefill + 2 * self.block > self.out_ring.capacity:
            raise ValueError(f"prefill {plan.prefill} frames does not fit the output ring")
        self.plan = plan
        for ring in (self.in_ring, self.out_ring, self.mon_ring):
            ring.restart()
        self.gate.reset()  # (new streams: it starts open, as at the start)
        self.limiter.reset()
        self._done_pos = 0
        self._load_from = self.timer.count
        self._lag_limit = plan.prefill + 2 * (self.block + period) + self.samplerate // 20
        self.device.plan(self.block, plan.prefill, self._lag_limit)  # (and the main stream's period count anew)
        self.out_ring.write(np.zeros(plan.prefill, dtype=np.float32))
        self.mon_ring.write(np.zeros(plan.prefill, dtype=np.float32))
        with self._latency_lock:  # (figures stored for another period, as a switch's: in this one's frames now)
            if self._latency_at and self._latency_at != period and not self._counters.ours:
                self.device_latency = tuple(round(f * period / self._latency_at) for f in self.device_latency)
            self._latency_at = 0
            if self.input_one_period:
                self.device_latency = (period, self.device_latency[1])
        self._counters.period = period
        self.stall_note = ""  # (new streams, or these planned anew: what a stall found out is old)
        self.device.live = True
        if self._state == "starting":
            self._state, self._detail = "running", ""
        if self._period_was:  # (a re-plan: said in status, and so in the daemon's log and an engine event)
            ms = 1e3 * self.latency().total / self.samplerate
            self._detail = (
                f"{PERIOD_CHANGED} from {self._period_was} to {period} frames (the audio server's "
                f"buffer size): the latency is planned for it, now {ms:.1f} ms"
            )
            self._period_was = 0
        return plan

    def suspend(self, timeout: float = 2.0) -> None:
        """Control thread, with the device streams already stopped (a device switch): the rings go idle and
        the worker waits, between blocks, until `resume`. The voice keeps its state."""
        self.device.host_period = 0
        self._idle.clear()
        self.device.live = False
        # The new streams' callbacks run on new threads: learn them anew. (PortAudio's PulseAudio host API runs
        # every stream on one mainloop thread: one we raised stays raised if the next device is JACK's.)
        for c in self._all_counters:
            c.forget()
        for c in (self._out_counters, self._mon_counters):
            c.callbacks = 0  # the new streams' stall checks start at their first callback (a slow start is no stall)
        self._bell.ring()
        if self._thread is not None and self._thread.is_alive() and not self._idle.wait(timeout):
            raise RuntimeError("the worker did not reach a block edge")

    def resume(self, period: int) -> None:
        """After `suspend` and new streams opened (not started): plan for their period (0: learn it from the
        first callback, as at start) and make the rings live again."""
        for c in self._all_counters:
            c.last_callback = native.now()  # the switch's gap is not a stall
        self._starting_since = native.now()
        if self._state in ("failed", "stalled") and self._thread is not None and self._thread.is_alive():
            self._state, self._detail = "starting", ""  # the devices failed, not the worker: new ones now
        elif self._state == "starting" or self._detail.startswith(PERIOD_CHANGED):
            self._detail = ""  # (new streams: an old period change, or the old ones' silence, is not news)
        if period:
            self.prepare(period)

    @property
    def active(self) -> tuple[StreamingConverter, str]:
        """The converter (and its label) that plays from the next block on: a swapped-in one not yet taken
        by the worker counts, so a change made right after a swap reaches the new voice."""
        nxt = self._next
        return nxt if nxt is not None else (self.converter, self.voice_label)

    def plays(self, converter: StreamingConverter) -> bool:
        """Whether the worker may still run `converter`: the one that plays, or one handed over and not taken
        yet. (Once the worker has swapped another in, it never touches the old one again.)"""
        nxt = self._next
        return converter is self.converter or (nxt is not None and nxt[0] is converter)

    def stay_off(self) -> None:
        """A loader thread (rtvc.quiet_import): returns when it may run without holding up the worker. While
        the worker converts a block, that is when the block ends; between blocks, at once if the next is not
        due within a device period and 2 ms (blocks start as their input completes, up to a period early),
        else when that next block ends. It never waits past the time a block has (a worker that falls behind
        or makes no blocks holds no loader up), nor at all while the voice's blocks take over half their time
        (the loader would get the rest: a 12 s load took minutes beside a heavy voice)."""
        if self._thread is None or threading.current_thread() is self._thread or not self._live:
            return
        if not self._light:  # (a voice that takes most of each block: giving way would starve the loader)
            return
        block_s = self.block / self.samplerate
        start, now = self._block_start, time.perf_counter()
        in_block = self.in_block
        if in_block:
            until = start + block_s
        elif now - start < block_s - self.device.host_period / self.samplerate - 0.002:
            return
        else:
            until = start + 2 * block_s
        if now >= until:
            return
        self._block_end.clear()
        if in_block and not self.in_block:  # (it ended between the look and the clear)
            return
        if self.in_block or self._block_start == start:  # (a block in hand, or the next not begun yet)
            self._block_end.wait(until - now)

    def swap_converter(self, converter: StreamingConverter, voice_label: str) -> None:
        """Any thread: a new voice (already loaded) takes over at the next block, faded in over it."""
        if converter.block != self.block:
            raise ValueError(f"block of {converter.block} frames, the engine runs {self.block}")
        self._next = (converter, voice_label)  # one reference store; the worker takes it

    def relabel(self, converter: StreamingConverter, voice_label: str) -> None:
        """Control thread: a new label for a converter that plays or is about to (its profile was saved under
        another name); a converter that has meanwhile been replaced keeps its old one."""
        nxt = self._next
        if nxt is not None and nxt[0] is converter:
            self._next = (converter, voice_label)
        elif self.converter is converter:
            self.voice_label = voice_label

    def start(self) -> None:
        self._prev_switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        # A full garbage collection walks every object (numpy, scipy, later torch: ~10^5 of them) while
        # holding the GIL, milliseconds the worker's block then waits. Objects alive at start are frozen out
        # of collection; the per-block garbage is young and cheap to collect. (The engine's C memory is in no
        # reference cycle: rtvc.callbacks._Core.)
        gc.collect()
        gc.freeze()
        quiet_import.give_way(self)
        self._state = "running" if self._live else "starting"
        self._detail = ""  # (a restarted serve's wait for its devices: rtvc.serve)
        self._starting_since = native.now()
        self._thread = threading.Thread(target=self._run, name="rtvc-worker", daemon=True)
        self._thread.start()
        if self._retire_thread is None:
            self._retire_thread = threading.Thread(target=self._free_retired, name="rtvc-retire", daemon=True)
            self._retire_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._bell.ring()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._retire_thread is not None:
            self._retired.put(None)  # (after what the worker retired: it is freed first)
            self._retire_thread.join(timeout=5)
            self._retire_thread = None
        sys.setswitchinterval(self._prev_switch)
        quiet_import.give_way(None, owner=self)
        if not self._state.startswith("failed"):
            self._state = "stopped"

    def close(self) -> None:
        """Nothing to release here: the device side's memory (rtvc.callbacks) goes with the last reference to it,
        which every open stream holds."""

    def _free_retired(self) -> None:
        while (old := self._retired.get()) is not None:
            del old  # (the last reference: the voice's models are freed here, off the worker)

    def monitor_opened(self, present: bool) -> None:
        """Device layer, with new streams opened: whether one of them is a monitor (hear-myself) stream. Without
        one, hear-myself is off: it would say on while nothing plays."""
        self.has_monitor_device, self.monitor_error, self._monitor_stalled = present, "", False
        if not present:
            self.monitor_enabled = False

    def monitor_lost(self, detail: str) -> None:
        """Device layer, any thread: the monitor stream died. The main output plays on (the stream, the call),
        so the engine keeps running; hear-myself goes off until a monitor device is selected again."""
        self.has_monitor_device = False
        self.monitor_enabled = False
        self.monitor_error, self._monitor_stalled = detail, False

    @property
    def devices_failed(self) -> bool:
        """The device streams died or stalled (unplugged, server gone): what PortAudio listed may be stale."""
        return self._state in ("failed", "stalled")

    def report_device_error(self, detail: str) -> None:
        """Device layer: the stream died (device unplugged, server gone). Shown in status."""
        self._state = "failed"
        self._detail = detail

    # -- callbacks from Python (a virtual device, tests): the same C code PortAudio calls ---------------
    def on_duplex(self, indata: np.ndarray, outdata: np.ndarray, frames: int, flags) -> None:
        """indata: (frames,) mono view; outdata: (frames, channels)."""
        self.device.duplex(indata, outdata, frames, flags)

    def on_input(self, indata: np.ndarray, frames: int, flags) -> None:
        self.device.input(indata, frames, flags)

    def on_output(self, outdata: np.ndarray, frames: int, flags) -> None:
        self.device.play(OUTPUT, outdata, frames, flags)

    def on_monitor(self, outdata: np.ndarray, frames: int, flags) -> None:
        self.device.play(MONITOR, outdata, frames, flags)

    # -- worker thread --------------------------------------------------------------------------
    def _run(self) -> None:
        block = self.block
        applied: tuple = (False,)
        fresh = False  # input was dropped: the voice restarts its stream state before the next block
        try:
            while not self._stop.is_set():
                # (the flag any thread may flip, and the callback threads' scheduling: applied on this thread)
                want = self.realtime  # (callback threads count once they have applied this same wish)
                wish = (want, *(c.learnt(want) for c in self._all_counters))
                if wish != applied:
                    applied = wish
                    self.priority = self._worker_priority(want, [s for s in wish[1:] if s is not None])
                if not self._live:
                    # period chosen by the host: learnt from the first callback, then the rings go live
                    self._idle.set()
                    self._bell.wait(0.1)
                    if not self._live and self.device.host_period:
                        self.prepare(self.device.host_period)
                    elif self._state == "starting" and native.now() - self._starting_since > NO_CALLBACK_S:
                        # streams that never call back (PipeWire without its session manager links nothing):
                        # "starting" with no word of why, for ever
                        self._detail = (
                            f"no audio callback {NO_CALLBACK_S:g} s after the devices started: the audio server "
                            "does not run them (under PipeWire: is its session manager, WirePlumber, running?)"
                        )
                    continue
                if self.in_ring.available() < block:
                    self._bell.wait(0.05)
                    self._check_device()
                    continue
                if self._period_changed():
                    continue
                fresh = self._drop_stale() or fresh
                if self.in_ring.available() < block:  # (all that was there was stale)
                    self._done_pos = self.in_ring.read_pos
                    self._progress.set()
                    continue
                overruns = self.in_ring.overrun_frames
                self.in_ring.read_into(self._block_in)
                fresh = fresh or self.in_ring.overrun_frames != overruns  # (overwritten as it read)
                self._align(self.in_ring.read_pos - block + self.plan.prefill)
                t0 = time.perf_counter()
                self._block_start, self.in_block = t0, True
                if not np.isfinite(self._block_in).all():
                    self.nonfinite_in += 1
                    np.nan_to_num(self._block_in, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
                nxt = self._next
                if fresh:  # (what came before the gap does not lead into this block)
                    self._history.clear()
                y = self._convert(self.converter, fresh) if nxt is None else self._swap(nxt, fresh)
                self._history.push(self._block_in)
                fresh = False
                if not np.isfinite(y).all():
                    self.nonfinite_out += 1
                    y = np.zeros_like(y)
                    self.converter.reset()  # its overlap and context hold the bad values: start clean
                y = self.gate.process(self._block_in, y, self.converter.latency)
                if self.muted or self.held or self._muted_now:
                    y = self._fade_mute(y)
                y = self.limiter.process(y)
                late = self.out_ring.late_frames
                self.out_ring.write(y)
                late = self.out_ring.late_frames - late  # (its first frames, whose slot had played: dropped)
                if self.has_monitor_device:
                    self.mon_ring.write(self._monitor_block(y))
                self.timer.record(time.perf_counter() - t0)
                self.in_block = False
                self._block_end.set()
                self._meter(self._block_in, y[late:])
                self.blocks_done += 1
                self._done_pos = self.in_ring.read_pos
                if self.watch_load and self.blocks_done % LOAD_EVERY == 0:
                    self._check_load()
                if self.blocks_done % LOAD_EVERY == 1 and self.priority.startswith("real-time"):
                    self._demote_helpers()
                self._progress.set()
        except Exception as e:  # the worker must not die silently: status carries the error
            self._state = "failed"
            self._detail = f"worker: {type(e).__name__}: {e}"
            self._progress.set()

    def _demote_helpers(self) -> None:
        """(The worker, real-time.) The threads it started (torch's intra-op pool, at a voice's first blocks) back to
        the normal scheduler (rtvc.priority.demote_inherited); said once."""
        keep = {c.tid for c in self._all_counters}
        moved = demote_inherited(threading.get_native_id(), keep)
        if moved and not self._demoted_said:
            self._demoted_said = True
            log.info("%d threads the voice started from the real-time worker run on the normal scheduler", moved)

    def _worker_priority(self, want: bool, callbacks: list[Sched]) -> str:
        if not want:
            return make_normal()
        if not callbacks and current() is not None:  # (devices not called back yet: decided at the first call)
            make_normal()
            return AWAITING_CALLBACKS
        return make_worker_realtime(callbacks)

    def _drop_stale(self) -> bool:
        """Before a block: drop the input the ring overwrote unread (a stall longer than the ring) and every
        whole block whose output slot the device has already played (converting it would be wasted: its
        output would be dropped as late). Returns whether any input was dropped."""
        ring, block = self.in_ring, self.block
        lost = ring.skip_overwritten()
        r = ring.read_pos
        late = self.out_ring.read_pos - (r + self.plan.prefill)  # output slots played past this block's
        n = min(late // block, ring.available() // block) if late >= block else 0
        if n:
            ring.skip_to(r + n * block)  # (to a position: frames overwritten meanwhile are not dropped twice)
            self.skipped_blocks += n
        return bool(lost or n)

    def _align(self, target: int) -> None:
        """The output of the block being converted goes to `target` (its input position + prefill): after
        dropped input, the output rings move on by as much, so the latency stays the declared one."""
        for ring in (self.out_ring, self.mon_ring) if self.has_monitor_device else (self.out_ring,):
            if ring.write_pos < target:
                ring.advance(target - ring.write_pos)

    def _check_load(self) -> None:
        """OVERLOADED while the median of the latest blocks' times exceeds the worker's time per block. The
        words name the limits, not the measure (it is in status.timing): they change only with the case."""
        count = self.timer.count
        # (blocks of 2 s at most: with 500 ms blocks 16 took 8 s, and a short run was never judged)
        window = max(LOAD_EVERY, min(LOAD_WINDOW, 2 * self.samplerate // self.block))
        if count - self._load_from < window or self.plan is None:  # (a voice's first blocks may be cold)
            return
        took = float(np.median(self.timer.since(count - window)))
        block_s, slack_s = self.block / self.samplerate, self.plan.slack / self.samplerate
        self._light = took < 0.5 * block_s
        if self._state not in ("running", OVERLOADED):  # (read last: a device failure says more)
            return
        # (each case is left only 10% under its limit, as the state is: a median near a block's time made the words
        # flip between the two cases every second, an event and a log line each time)
        was_block = self._state == OVERLOADED and self._detail.startswith("the voice takes longer than a block")
        if took > block_s or (was_block and took > 0.9 * block_s):
            self._state = OVERLOADED
            # (a GPU named only where the voice can use one here: "device = cuda" was the fix on machines without)
            faster = getattr(self.converter.voice, "faster_here", "")
            self._detail = (
                f"the voice takes longer than a block ({1e3 * block_s:.1f} ms) to convert one: it cannot keep up "
                f"here, and blocks are dropped; {faster + ', ' if faster else ''}raise stream.block_ms, or choose a "
                "lighter voice"
            )
        elif took > slack_s:
            self._state = OVERLOADED
            self._detail = (
                f"the voice takes longer than the {1e3 * slack_s:.1f} ms the worker is given per block, so blocks "
                "play late (gaps): raise stream.prefill_ms above the block time p99"
            )
        elif self._state == OVERLOADED and took < 0.9 * min(slack_s, block_s):
            self._state, self._detail = "running", ""
        if self._state == OVERLOADED:
            self.overloaded_blocks += LOAD_EVERY
            self.overload = self._detail

    def _convert(self, conv: StreamingConverter, fresh: bool = False) -> np.ndarray:
        """One block through `conv` (restarted first if `fresh`: input before this block was dropped); a voice
        that raises gives a block of silence (VOICE_FAILED), counted."""
        try:
            if fresh:
                conv.reset()
            y = conv.process_block(self._block_in)
        except Exception as e:  # the voice's code, torch, CUDA: whatever it raises, the engine runs on
            self.voice_error = words(e)
            self.voice_errors += 1
            if self._state in ("running", OVERLOADED, VOICE_FAILED):  # (a device's failure or stall says more)
                self._detail = f"the voice raised {self.voice_error}; playing silence, retrying each block"
                self._state = VOICE_FAILED
            try:
                conv.reset()  # its window and overlap may hold half a block's work
            except Exception as r:  # retried as it is; the words say so
                self.voice_error += f" (and its reset raised {words(r)})"
            return self._silence
        if self._state == VOICE_FAILED:
            self._state, self._detail = "running", ""
        return y

    def _swap(self, nxt: tuple[StreamingConverter, str], fresh: bool = False) -> np.ndarray:
        """The block where a new voice takes over: joined to the old one's output by its own SOLA crossfade
        where the two stream alike (StreamingConverter.continue_from), else crossfaded with it over the block,
        equal-power for their correlation (two pitches: linearly, -3 dB half-way)."""
        conv = nxt[0]
        how = conv.continue_from(self.converter, None if fresh else self._history.last(conv.history))
        self._history.grow(conv.history)  # (a voice with a longer window: the next switch has it all)
        if how == JOINED:
            y = self._convert(conv)
        elif how == AFTER:
            conv.join_after(self._convert(self.converter, fresh))
            y = self._convert(conv)
        else:
            y = self._mixed(conv, fresh)
        self._retired.put(self.converter)
        self.converter, self.voice_label = nxt
        self._load_from = self.timer.count + 1  # the new voice is judged on its own blocks (this one may run two)
        self.timer.restart(self._load_from)  # (and its status.timing figures)
        if self._next is nxt:  # (another voice may have been handed over meanwhile: it goes next block)
            self._next = None
        return y

    def _mixed(self, conv: StreamingConverter, fresh: bool) -> np.ndarray:
        """A MIXED switch's block: the old voice crossfaded into the new one, equal-power for their correlation,
        over the block where the old one is light enough to render it too (SWITCH_SHARE), else over what the old
        one rendered ahead last block (its SOLA overlap and search: 3-19 ms), at no cost of its own."""
        old = self.converter
        slack_s = (self.plan.slack if self.plan else self.block) / self.samplerate
        ahead = old.ahead
        if fresh or not len(ahead) or old.cost_s <= SWITCH_SHARE * slack_s:
            before = self._convert(old, fresh)
            new = self._convert(conv)
            return crossfade(before, new, self._ramp, local_correlation(before, new, self.samplerate))
        new = self._convert(conv)
        m = min(len(ahead), self.block)
        y = new.copy()
        ramp = ((np.arange(m) + 0.5) / m).astype(np.float32)
        y[:m] = crossfade(ahead[:m], new[:m], ramp, local_correlation(ahead[:m], new[:m], self.samplerate))
        self.switches_ahead += 1
        return y

    def hold(self, on: bool) -> None:
        """Silence out (at once; faded in when the last hold is let go), for as long as a hold is on."""
        with self._holds_lock:
            self._holds = max(0, self._holds + (1 if on else -1))
            self.held = self._holds > 0

    def _monitor_block(self, y: np.ndarray) -> np.ndarray:
        """What hear-myself plays of the block: faded in or out over the block where it was switched (it cut in and
        out in one sample, a click on every toggle: steps of up to 0.13 on a -12 dBFS sine)."""
        on = self.monitor_enabled
        if on == self._monitor_now:
            return y if on else self._silence
        self._monitor_now = on
        return y * (self._ramp if on else 1.0 - self._ramp)

    def _fade_mute(self, y: np.ndarray) -> np.ndarray:
        if self.held:  # (at once: a stream on a device not meant gets no voice at all; faded in after)
            self._muted_now = True
            return self._silence
        muted = self.muted
        if muted == self._muted_now:
            return self._silence  # (only reached while muted)
        self._muted_now = muted
        return y * (1.0 - self._ramp if muted else self._ramp)

    def _meter(self, x: np.ndarray, y: np.ndarray) -> None:
        """`y`: what of the block's output is heard (a block written after its slot played is heard not at all: an
        overloaded voice's meter read -20 dBFS rms over a silent output)."""
        lv = self._levels
        lv[0] = np.abs(x).max()
        lv[1] = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
        lv[2] = np.abs(y).max() if len(y) else 0.0
        lv[3] = np.sqrt(np.mean(np.square(y, dtype=np.float64))) if len(y) else 0.0

    def _period_changed(self) -> bool:
        """The worker: an audio server changed its period under running streams (JACK's buffer size, PipeWire's
        quantum): the prefill planned for the old one underran every cycle and the declared latency was wrong.
        Once the main stream's callbacks have had one other size for a quarter of a second, the rings go idle
        and the worker plans for the period the next callback brings, as at the start (what was in the rings
        is dropped: a gap of a few ms, once). Under JACK the devices' own latency is taken to scale with the
        period: it is asked when the streams start (rtvc.audio.io.DeviceStreams.jack_latency), and a sound card's is
        whole periods (JACK's dummy backend: one of capture and two of playback at 256 frames and at 1024,
        tests/test_jack_live.py); other host APIs' is left as reported. (With audio.period set, PortAudio's own
        buffering keeps the callbacks at that size: a change is not seen here.)"""
        frames, run = self.device.main_period()
        period = self._counters.period
        if not period or frames in (0, period) or run < 4 or run * frames < self.samplerate // 4:
            return False
        self._period_was = period
        if not self._counters.ours:  # (a JACK stream: the server schedules its thread)
            with self._latency_lock:
                ref = self._latency_at or period
                self.device_latency = (
                    round(self.device_latency[0] * frames / ref),
                    round(self.device_latency[1] * frames / ref),
                )
                self._latency_at = frames
        self.period_changes += 1
        self.device.live = False  # (the callbacks play silence and report their size: host_period)
        self.device.host_period = 0
        return True

    def _check_device(self) -> None:
        """A stream whose callbacks stopped without a word from its host API (some never call the finished
        callback for a vanished device): the input or duplex stream, a separate output stream, the monitor."""
        c, out, mon = self._counters, self._out_counters, self._mon_counters
        if self._state == "failed":
            return
        now = native.now()
        limit = max(self.stall_after_s, 20 * (c.period or self.block) / self.samplerate)
        # (the words name the limit, not the time so far: a detail that changed every check would be a new
        # event and log line four times a second)
        if c.callbacks and now - c.last_callback > limit:
            self._state = "stalled"
            self._detail = (
                f"no audio callback for over {limit:.1f} s: {self.stall_note or 'is the device still there?'}"
            )
        elif self.separate_streams and out.callbacks and now - out.last_callback > limit:
            self._state = "stalled"
            self._detail = f"no output callback for over {limit:.1f} s: is the output device still there?"
        elif self._state == "stalled":
            self._state, self._detail, self.stall_note = "running", "", ""
        # the monitor: the main output plays on whatever it does (monitor_lost); back when its callbacks are
        quiet = self.has_monitor_device and mon.callbacks and now - mon.last_callback > limit
        if quiet and not self.monitor_error:
            self.monitor_error = f"no monitor callback for over {limit:.1f} s: is it still there?"
            self._monitor_stalled = True
        elif not quiet and self._monitor_stalled:
            self.monitor_error, self._monitor_stalled = "", False

    def wait_for_worker(self, timeout: float = 60.0) -> None:
        """Block until every complete block written so far has been processed (file conversion).

        A slow voice on a slow machine is waited for as long as blocks keep finishing; only a worker that
        finishes none for `timeout` seconds (hung) raises."""
        deadline, done = time.monotonic() + timeout, self._done_pos
        while self.in_ring.write_pos - self._done_pos >= self.block:
            if self._state == "failed":
                raise RuntimeError(self._detail)
            if self._done_pos != done:
                deadline, done = time.monotonic() + timeout, self._done_pos
            elif time.monotonic() > deadline:
                raise TimeoutError(f"the worker finished no block in {timeout:g} s (block {done}): it is stuck")
            self._progress.wait(0.01)
            self._progress.clear()

    # -- status (any thread) --------------------------------------------------------------------
    def gate_status(self) -> dict:
        g = self.gate
        s = g.settings
        return {
            "on": s.on,
            "threshold_db": s.threshold_db,
            "hold_ms": s.hold_ms,
            "open": g.open or not s.on,
            "closed_s": round(g.closed_frames / self.samplerate, 3),
        }

    def latency(self) -> LatencyBreakdown | None:
        if self.plan is None:
            return None
        return LatencyBreakdown(
            samplerate=self.samplerate,
            device_in=self.device_latency[0],
            block=self.block,
            converter=self.converter.latency,
            prefill=self.plan.prefill - self.block,
            device_out=self.device_latency[1],
        )

    def status(self) -> EngineStatus:
        c = self._counters
        flags = {k: sum(x.pa_flags[k] for x in (c, self._out_counters, self._mon_counters)) for k in c.pa_flags}
        mon = self.has_monitor_device or bool(self.monitor_error)  # (a lost monitor's underruns still count)
        xruns = Xruns(
            input_overrun_frames=self.in_ring.overrun_frames + self.in_ring.overwritten(),
            input_overrun_events=self.in_ring.overrun_events + bool(self.in_ring.overwritten()),
            output_underrun_frames=self.out_ring.underrun_frames,
            output_underrun_events=self.out_ring.underrun_events,
            output_late_frames=self.out_ring.late_frames,
            output_skipped_frames=self.out_ring.overrun_frames + (self.mon_ring.overrun_frames if mon else 0),
            output_skipped_events=self.out_ring.overrun_events + (self.mon_ring.overrun_events if mon else 0),
            monitor_underrun_frames=self.mon_ring.underrun_frames if mon else 0,
            monitor_underrun_events=self.mon_ring.underrun_events if mon else 0,
            portaudio=flags,
            portaudio_events=sum(x.pa_xrun_callbacks for x in (c, self._out_counters, self._mon_counters)),
        )
        # the levels are the last block's: with the devices stalled or gone no block comes, and the last one's
        # stood on the meters (a -6 dBFS tone shown playing under "engine failed", the gate open, limiting): nothing
        # is heard, none is shown
        gone = self.devices_failed
        lv = np.zeros(4) if gone else self._levels.copy()
        gate = self.gate_status() | ({"open": False} if gone else {})
        return EngineStatus(
            state=self._state,
            detail=self._detail or self.output_unheard,
            voice=self.voice_label,
            samplerate=self.samplerate,
            block=self.block,
            period=c.period,
            callbacks=c.callbacks,
            blocks=self.blocks_done,
            latency=self.latency(),
            worker_slack_ms=1e3 * self.plan.slack / self.samplerate if self.plan else 0.0,
            timing=self.timer.stats(),
            xruns=xruns,
            levels=Levels.from_linear(*lv, limit_db=0.0 if gone else self.limiter.reduction_db),
            limited_blocks=self.limiter.limited_blocks,
            monitor=self.monitor_enabled,
            worker_priority=self.priority or "normal",
            nonfinite={"input_blocks": self.nonfinite_in, "output_blocks": self.nonfinite_out},
            voice_errors={"blocks": self.voice_errors, "last": self.voice_error},
            skipped_blocks=self.skipped_blocks,
            period_changes=self.period_changes,
            overload={"blocks": self.overloaded_blocks, "last": self.overload},
            gate=gate,
            monitor_device={"present": self.has_monitor_device, "error": self.monitor_error},
            unheard=self.output_unheard,
        )
