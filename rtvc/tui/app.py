"""The terminal UI: live control and metering of a running daemon, as a client of its websocket API.

It runs in its own process (the daemon's audio worker never shares a GIL with the UI). What it shows
comes from the daemon: the state events (whoever made the change), meter events at METER_HZ, and a
status poll once a second (latency breakdown, xruns). What the user does becomes API calls; a refusal is
shown on the message line, never as a traceback. `connect=False` gives an app that connects nowhere:
tests feed it a fixed state (`apply_*`) for snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import events, on, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, OptionList, Static

from rtvc.config import GateConfig
from rtvc.settings import describe
from rtvc.tui.client import CallError, DaemonClient, Endpoint, Link
from rtvc.tui.commands import RtvcCommands
from rtvc.tui.gateline import GateLine
from rtvc.tui.keys import ACTIONS, FOOTER, shown
from rtvc.tui.meter import BlockTimes, LevelMeter
from rtvc.tui.screens import DeviceScreen, HelpScreen, SaveScreen
from rtvc.tui.stepper import Stepper
from rtvc.tui.texts import latency_text, scheduling_text, spec_for
from rtvc.tui.toggle import Toggle
from rtvc.tui.voicelist import FilterInput, VoiceListMixin

_GATE_DB = describe(GateConfig)["threshold_db"]  # the threshold's range (the daemon checks it too)
SPARK_POINTS = 60  # block-time history: the last few seconds of meter readings
LEARN_S = 2.0  # `G`: how long the gate listens to the room
# Narrower terminals: below TIGHT_COLS the toggles' row does not fit beside the voice list and goes into three
# columns; below NARROW_COLS the voice list narrows and the toggles take two columns
TIGHT_COLS = 78
NARROW_COLS = 60
STATUS_POLL_S = 1.0
QUIT_DEADLINE_S = 5.0  # a quit by signal that has not ended the app by then ends the process
# the daemon's and the link's advice, as it reads under `rtvc run`, which started the daemon and stops it on quit
RUN_ADVICE = (
    ("restart rtvc serve", "restart rtvc run (q quits it)"),
    ("start it with `rtvc serve`, or check --host/--port", "q quits rtvc run and prints the daemon's log"),
)
READS = ("status.get", "voices.list", "params.get", "devices.list")  # calls that change nothing the user did
STALE_S = 2.0  # no meter event for this long (they come 15 a second): the meters show no reading
MESSAGE_ROWS = 5  # the message line's rows at most (its CSS max-height)
# no meter event for this long: what the user does is not sent (it would run late, when the daemon wakes: a mute
# pressed as the screen asked "is it frozen?" was done after the TUI had quit); the same as the screen's question
QUIET_S = STALE_S
SENT_UNANSWERED = ("the connection closed",)  # rtvc.tui.client's words for a request sent and never answered


class RtvcApp(VoiceListMixin, App[None]):
    TITLE = "rtvc"
    COMMANDS = App.COMMANDS | {RtvcCommands}
    CSS = """
    #link { height: auto; background: $panel; padding: 0 1; }
    #body { height: 1fr; }
    #left { width: 22; border-right: solid $panel; }
    #filter { height: 1; border: none; padding: 0 1; }
    #voices { height: 1fr; border: none; text-wrap: nowrap; text-overflow: ellipsis; }
    #right { width: 1fr; padding: 0 1; overflow-y: auto; scrollbar-size-vertical: 1; }
    #toggles { height: 1; }
    #gate { height: auto; }
    #voice { height: 1; text-style: bold; }
    #params { height: auto; margin: 1 0; }
    #latency { height: auto; }
    #timing-row { height: 1; }
    #blocks { width: 1fr; height: 1; }
    #timing { width: auto; margin-left: 1; }
    #scheduling { height: auto; }
    #message { height: auto; max-height: 5; padding: 0 1; }
    #message.error { color: $error; text-style: bold; }
    .offline #voice, .offline #params, .offline #latency, .offline #timing-row, .offline #scheduling {
        text-opacity: 45%;
    }
    .tight #toggles { layout: grid; grid-size: 3; height: auto; }
    .tight Toggle { margin-right: 0; }
    .narrow #left { width: 16; }
    .narrow #toggles { grid-size: 2; }
    /* (the scrollbar of a short terminal takes the right-hand margin, kept for it: as it came and went with the
       content's height, every line moved a column, and a click aimed at an arrow hit the value) */
    .narrow #right { padding: 0 0 0 1; scrollbar-gutter: stable; }
    """
    ACTIONS = ACTIONS
    BINDINGS: ClassVar[list[Binding]] = [
        # '/' is a priority binding: handled as it arrives, before the keys typed after it are given to the focused
        # widget (they were the app's keys: m muted), and skipped where it is text (action_find_voice)
        *(Binding(k, a, FOOTER.get(k, t), show=k in FOOTER, priority=k == "slash") for k, a, t in ACTIONS),
        Binding("f1", "help", show=False),
        Binding("ctrl+c", "quit", show=False, priority=True),  # (Textual's default only says to press ctrl+q)
        Binding("down", "down", show=False),
        Binding("up", "app.focus_previous", show=False),
        # (where the focused widget takes no such key: a stepper's big steps, the voice list's pages go first)
        Binding("pagedown", "scroll_right(1)", show=False),
        Binding("pageup", "scroll_right(-1)", show=False),
    ]

    def __init__(
        self,
        endpoint: Endpoint | None,
        clock: Callable[[], float] = time.monotonic,
        connect: bool = True,
        own_daemon: Callable[[], str | None] | None = None,
    ):
        super().__init__()
        self.endpoint = endpoint
        # `rtvc run`'s daemon: None while it runs, else what became of it (the link's own words would say to
        # start one with `rtvc serve`, for the daemon `rtvc run` started and that has stopped)
        self.own_daemon = own_daemon
        self.clock = clock
        self.client: DaemonClient | None = None
        if endpoint is not None and connect:
            self.client = DaemonClient(endpoint, self.apply_link, self.apply_event, self._daemon_ready)
        self.link = Link("connecting" if endpoint else "disconnected", "" if endpoint else "no daemon")
        self.state: dict[str, Any] = {}
        self._events = 0  # state and engine events applied (a snapshot asked for before one is older)
        self._engine_trouble = False  # the message line shows an engine error (cleared when it runs again)
        self._obs_state = ""  # the OBS link's state as last said
        self._unheard = ""  # the engine's `unheard`: why nothing is heard while it runs (on the top line)
        self._obs_warned: list[str] = []  # its warnings ([obs.scenes]'s problems) as last said
        self._message: tuple[str, bool] = ("", False)  # the message line's whole text, and whether it is an error
        self._no_voice_said: str | None = None  # why no voice plays, as the message line said it last
        self._gate_calls = 0  # gate.set calls out: a quick gate step starts from _gate_sent, not the state shown
        self._gate_sent: float | None = None
        self._learning = False  # a gate.learn call is out (G)
        self.voices: list[dict[str, Any]] = []
        self.ranges: dict[str, dict[str, Any]] = {}
        self.talking = False
        self.blocks: list[float] = []
        self.meters: dict[str, Any] = {}
        self._timing_text = ""
        self._scheduling_text = ""
        self._meters_at = clock()  # when the last meter event came
        self._quit_deadline: threading.Timer | None = None
        self._frozen_said = False  # the message line asked whether the daemon is frozen
        self._refusal_shown = False  # the message line shows a refusal (the next call that works clears it)
        self._refusal_calls_after = 0  # params.set calls that work and do not clear it yet (show_message)
        self._ours_shown = False  # the message line says what the user's own action did (show_message)
        self._unanswered: list[str] = []  # changes sent that got no answer before the link dropped
        self._acts: asyncio.Queue[Callable[[], Awaitable[None]]] | None = None  # the user's changes to send (_act)

    # -- layout ---------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="link")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield FilterInput(placeholder="/ find a voice", id="filter")
                yield OptionList(id="voices")
            with Vertical(id="right"):
                with Horizontal(id="toggles"):
                    yield Toggle("V", "voice", "toggle('voice')", id="t-voice")
                    yield Toggle("M", "mute", "toggle('mute')", id="t-mute")
                    yield Toggle("H", "hear", "toggle('monitor')", id="t-monitor")
                    yield Toggle("T", "ptt", "toggle_ptt_mode", id="t-ptt")
                    yield Toggle("␣", "talk", "talk", id="t-talk", on_word="TALK")
                yield Static(id="voice")
                yield Vertical(id="params")
                yield LevelMeter("in", self.clock, id="m-in")
                yield GateLine(id="gate")
                yield LevelMeter("out", self.clock, id="m-out")
                yield Static(id="latency")
                with Horizontal(id="timing-row"):
                    yield BlockTimes(id="blocks")
                    yield Static(id="timing")
                yield Static(id="scheduling")
        yield Static(id="message")
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        main = self.screen_stack[0]  # (not a pop-up that is open: the main screen kept the old width's layout)
        main.set_class(event.size.width < TIGHT_COLS, "tight")
        main.set_class(event.size.width < NARROW_COLS, "narrow")
        with contextlib.suppress(NoMatches):  # (a resize before the screen is composed: on_mount draws it)
            self._draw_link(event.size.width)
            self._draw_message(event.size.width)

    def on_mount(self) -> None:
        # SIGTERM (a service manager, `kill`) and SIGHUP (the terminal closed) quit as `q` does: the terminal is
        # restored and `rtvc run` stops its daemon (the default action killed the UI alone, the daemon ran on)
        loop = asyncio.get_running_loop()
        for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
            if sig is not None and hasattr(loop, "add_signal_handler"):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.quit_on_signal, sig)
        self.query_one("#voices", OptionList).focus()
        self._draw_link()
        self.query_one("#timing", Static).update("block time p99 -")
        self.query_one("#latency", Static).update("latency -")
        self._acts = asyncio.Queue()
        self.run_worker(self._send_acts(), name="the user's changes", group="acts")
        if self.client is not None:
            self.run_worker(self.client.run(), name="daemon link", exclusive=True, exit_on_error=False)
            self.set_interval(STATUS_POLL_S, self._poll_status)
            self.set_interval(STALE_S / 2, self._check_readings)  # (its own timer: a status call can hang 30 s)

    def quit_on_signal(self, sig: int) -> None:
        """Quit as `q` does, and make sure the process ends: after its terminal closed, Textual's shutdown has
        hung for good in its writer thread's queue (1 in 6 closes, a helper's hunt; SIGTERM then did nothing,
        only kill -9 ended it). If the app has not returned from run() within QUIT_DEADLINE_S, the process exits
        with 128 + the signal; `rtvc run`'s daemon then stops by its parent-death signal."""
        if self._quit_deadline is None:
            self._quit_deadline = threading.Timer(QUIT_DEADLINE_S, os._exit, (128 + sig,))
            self._quit_deadline.daemon = True
            self._quit_deadline.start()
        self.exit()

    def returned(self) -> None:
        """run() has returned: the deadline of a signal's quit is off (`rtvc run` goes on to stop its daemon)."""
        if self._quit_deadline is not None:
            self._quit_deadline.cancel()

    # -- from the daemon ------------------------------------------------------------------------------
    def apply_link(self, link: Link) -> None:
        before, self.link = self.link, link
        self._draw_link()
        # while not connected what the screen shows of the daemon is its last state: dimmed, the timing's history
        # dropped at the next connection (a restarted daemon's blocks are not the old one's)
        self.screen_stack[0].set_class(link.state != "connected", "offline")
        if link.state == "connected" and before.state != "connected":
            self.blocks = []
        if link.state != "connected":  # what the screen shows of the daemon is not known any more
            self._no_readings()
            self._frozen_said = False  # (the link's own message says it now)
            for t in self.query(Toggle):
                if t.known:
                    t.known = False
                    t.refresh(layout=True)
        ended = self.own_daemon() if self.own_daemon is not None and link.state == "disconnected" else None
        if ended:
            self.show_message(f"the daemon that `rtvc run` started {ended}: q quits and prints its log", error=True)
        elif link.state == "unauthorized" and link.detail.startswith("wrong token"):  # (not tried on a timer)
            if self.endpoint is not None and self.endpoint.token_file is None:  # (--token: r sends the same one again)
                self.show_message(f"{link.detail}; the token given with --token is not (or no longer) the daemon's: run"
                                  " with its token (`rtvc token` on its machine prints it)", True)  # fmt: skip
            else:
                self.show_message(f"{link.detail}; r tries again (the token file mended, or run with --token)", True)
        elif link.state == "disconnected" and self._unanswered:
            self._say_unanswered()
        elif link.state in ("disconnected", "unauthorized"):  # (unauthorized too: an address that is none)
            self.show_message(link.detail, error=True)
        elif link.state == "connected" and before.state != "connected":
            self._unanswered = []
            self.show_message(f"connected to {link.detail} as {link.client}")

    def _draw_link(self, width: int | None = None) -> None:
        """The top line. Under TIGHT_COLS the address loses ws:// and /rpc, under NARROW_COLS the words the colours
        say too (connected, engine, OBS's state): at 40 columns it took three of 24 lines."""
        link = self.link
        width = width or self.size.width  # (a resize's own: the app's size is the old one while it is handled)
        icon, colour = {"connected": ("●", "green"), "connecting": ("◌", "yellow")}.get(link.state, ("✖", "red"))
        where = self.endpoint.url if self.endpoint else "no daemon"
        if self.endpoint and width < TIGHT_COLS:
            where = where.removeprefix("ws://").removesuffix("/rpc")
        extra = f"  attempt {link.attempt}" if link.state == "connecting" and link.attempt > 1 else ""
        engine = self.state.get("engine", "") if link.state == "connected" else ""
        if engine == "running" and self._unheard:
            engine = "device gone"
        narrow = width < NARROW_COLS and link.state == "connected"
        state, gap = ("", " ") if narrow else (f" {link.state}", "  ")
        text = f"rtvc{gap}[{colour}]{icon}{state}[/]{gap}$where{extra}"  # (an IPv6 address has brackets)
        if engine:
            text += f"{gap}{'' if narrow else 'engine '}[{'green' if engine == 'running' else 'red'}]$engine[/]"
        obs = self.state.get("links", {}).get("obs", {}).get("state", "") if link.state == "connected" else ""
        if obs:  # (the daemon's OBS link, with [obs] in its config: the message line says why it is down)
            hue = "green" if obs == "connected" else "yellow" if obs == "connecting" else "red"
            text += f"{gap}OBS [{hue}]{'●' if narrow and obs == 'connected' else '$obs'}[/]"
        self.query_one("#link", Static).update(Content.from_markup(text, where=where, engine=engine, obs=obs))

    async def _daemon_ready(self) -> None:
        """A (re)connection: everything the screen shows, fresh. (Not `_on_ready`: Textual calls a method of that
        name at the app's own start, before any connection: "status.get: not connected" stood on the screen for 5 s
        against a daemon slow to answer, and for good against an address that is none.)"""
        # taken before the request: an event that arrives after this is either newer than the snapshot or, if
        # older, followed on the wire by the events of every later change (events carry the whole state), so
        # the screen's state is then the one to keep. (Taken after the reply, an event landing between the
        # reply and this line was counted as older, and the stale snapshot overwrote it.)
        seen = self._events
        self._meters_at = self.clock()  # (the subscription's first readings are on their way)
        try:
            st = await self._call("status.get")
            listed = await self._call("voices.list")
            params = await self._call("params.get")
        except CallError:
            return  # shown by _call; the connection's own end (if any) reconnects
        # the daemon released a talk key held by the lost connection (push-to-talk ends with its client)
        self.talking = False
        self.query_one("#t-talk", Toggle).set(False)
        if st and listed and params:
            if self._events == seen:  # else an event (another client's change) already showed newer state
                self.apply_state(st["control"])  # (first: the list then puts its cursor on the active voice)
                self.apply_voices(listed["voices"])
                self.apply_status(st["engine"])
            else:  # keep the newer state; take the engine's figures (latency, timing) only
                self.apply_voices(listed["voices"])
                self.apply_status({**st["engine"], "state": None})
                self._mark_active(self.state.get("profile"))
            # (in either case: an engine event that came first on a loaded machine left it unsaid)
            obs = self.state.get("links", {}).get("obs")
            self._obs_warned, self._obs_state = [], obs["state"] if obs else ""
            if obs and obs["state"] in ("disconnected", "auth failed", "stopped"):  # (down before we came: why)
                self.show_message(f"OBS {obs['state']}: {obs['detail'].split('; retrying in ')[0]}", error=True)
            elif obs:
                self._warn_obs(obs)
            await self.apply_params(params)  # last: steppers on screen mean the rest is there too
            await self._say_virtual_device()

    def _warn_obs(self, obs: dict[str, Any]) -> None:
        """[obs.scenes]'s problems (a scene renamed in OBS, a name OBS has not: that scene switches no voice), once
        each time they change; the first, and how many more (`rtvc ctl status` lists them all)."""
        warnings = list(obs.get("warnings") or [])
        if warnings and warnings != self._obs_warned:
            more = f" (and {len(warnings) - 1} more: rtvc ctl status)" if len(warnings) > 1 else ""
            self.show_message(f"OBS: {warnings[0]}{more}", error=True)
        elif not warnings and self._obs_warned and self._message[0].startswith("✖ OBS: "):  # (it stood, mended)
            self.show_message("OBS: [obs.scenes] has no problem now")
        self._obs_warned = warnings

    async def _say_virtual_device(self) -> None:
        """On the virtual device (no sound card, or --virtual) the screen looked as on a microphone: a user who
        expected their own voice heard nothing and was not told why (the words were in the daemon's log alone)."""
        try:
            listing = await self.client.call("devices.list") if self.client is not None else None
        except CallError:
            return  # (the picker, `d`, says why when asked)
        in_use = (listing or {}).get("in_use", {})
        said = self._message[0]
        if in_use.get("virtual") and (not said or said.startswith("connected to ")):  # (not over another message)
            clip = Path(in_use.get("clip") or "a speech clip").name
            why = "no sound card found: " if in_use.get("fallback") else ""
            self.show_message(f"{why}the virtual device plays {clip} as the microphone, in a loop (d: devices)")

    def apply_event(self, ev: dict[str, Any]) -> None:
        try:
            self._apply_event(ev)
        except NoMatches:
            pass  # an event that arrived while the app was closing its screen: nothing left to show it on
        except Exception as e:  # a bug in showing one event: said on the screen; the link and later events go on
            self.show_message(f"could not show the daemon's '{ev.get('type')}' event ({type(e).__name__}: {e})", True)

    def _apply_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("type")
        if kind == "meters":
            self.apply_meters(ev)
            return
        if ev.get("error"):
            self.show_message(ev["error"], error=True)
        if kind == "engine":
            eng = ev["engine"]
            if eng["state"] in ("stalled", "failed", "voice failed", "overloaded"):
                self.show_message(f"engine {eng['state']}: {eng['detail']}", error=True)
                self._engine_trouble = True
            elif eng.get("unheard"):  # (the virtual microphone removed, the device's JACK program closed)
                self.show_message(eng["unheard"], error=True)
                self._engine_trouble = True
            elif eng.get("monitor_error"):
                self.show_message(f"hear myself: {eng['monitor_error']}", error=True)
            elif eng["state"] == "running" and self._engine_trouble:  # (the error would stay on screen)
                self.show_message("engine running again")
                self._engine_trouble = False
            self._set_unheard(eng.get("unheard", ""))
        routing = ev.get("routing", {}) if kind == "state" else {}
        said = [f"{p} connected to {q} again" for p, q in routing.get("restored", [])]
        said += [f"{p} no longer waits for {q} (connected elsewhere)" for p, q in routing.get("dropped", [])]
        if said and not ev.get("error"):
            self.show_message("JACK: " + ", ".join(said))
        obs = ev["state"].get("links", {}).get("obs") if "obs" in ev.get("changed", ()) else None
        if obs:  # (the OBS link's state is on the top line; why it is down, here)
            trouble = obs["state"] in ("disconnected", "auth failed", "stopped")
            why = obs["detail"].split("; retrying in ")[0]  # (the retry's seconds went stale on the line: 1 s for good)
            if trouble or obs["state"] != self._obs_state:
                self.show_message(f"OBS {obs['state']}" + (f": {why}" if trouble else ""), error=trouble)
            if not trouble:
                self._warn_obs(obs)
            self._obs_state = obs["state"]
        self._events += 1
        changed = set(ev.get("changed", ()))
        mine = self.client is not None and ev.get("by") == self.client.link.client
        if kind == "state" and "profile" in changed and not mine and not ev.get("error"):
            # another client's voice change: the message line's "voice 'x'" or its refusal of a voice was stale
            who = ev["state"].get("profile")
            self.show_message(f"{f'voice {who!r}' if who else ev['state'].get('voice')} (by {ev.get('by')})")
        elif kind == "state" and changed and not mine and str(ev.get("by")).startswith("client ") and self._ours_shown:
            # (a review: "hear myself needs a monitor device" stayed red after another client set one and switched
            # it on; "pitch: 99 is past its range ... 24.0 st" beside the 0.0 another client set). Another client's
            # only: a file written into profiles/ (by "profiles") took a refusal that was still true (a second review)
            self.show_message(f"{', '.join(sorted(changed))} changed (by {ev.get('by')})")
        self.apply_state(ev["state"], params=not (mine and changed == {"params"}))
        if changed & {"profile", "voice", "profiles"}:  # (profiles: a file added, edited or removed in profiles/)
            self.refresh_voice_lists()

    @work(group="refresh", exclusive=True, exit_on_error=False)
    async def refresh_voice_lists(self) -> None:
        try:
            listed = await self._call("voices.list")
            params = await self._call("params.get")
        except CallError:
            return
        self.apply_voices(listed["voices"])
        await self.apply_params(params)

    def apply_state(self, st: dict[str, Any], params: bool = True) -> None:
        self.state = st
        self.query_one("#t-voice", Toggle).set(st["voice_on"])
        self.query_one("#t-mute", Toggle).set(st["mute"])
        self.query_one("#t-monitor", Toggle).set(st["monitor"])
        self.query_one("#t-ptt", Toggle).set(st["ptt"]["mode"])
        self.query_one("#t-talk", Toggle).set(self.talking)
        if "gate" in st:
            self.query_one("#gate", GateLine).set_settings(st["gate"])
        loading = f"  loading '{st['loading']}'…" if st.get("loading") else ""
        # the warning first: after the voice's label on a row of its own (height 1) a long label or a narrow terminal
        # cut it off ("OUTPUT" at 100 columns, nothing at 60 with push-to-talk)
        silent = ((" OUTPUT SILENT ", "reverse yellow"), "  ") if st.get("silent") else ()
        # voice off: the microphone goes out as it is, the user's own voice, under the voice's label as if converted
        # (a review: one stray `v` put a streamer's real voice on air, "off" in grey the only change; the dock said
        # "own voice")
        if not silent and st.get("voice_on") is False:
            silent = ((" OWN VOICE ", "bold reverse red"), " (voice off) ")
        # the daemon's words are text, not markup: a label "Miku [JP]" showed as "Miku ", and "[/v2]" crashed
        self.query_one("#voice", Static).update(Content.assemble(*silent, st["voice"], loading))
        if params:
            for s in self.query(Stepper):
                if s.spec.name in st["params"]:  # (while typing too: the typed text shows on top of it)
                    s.value = st["params"][s.spec.name]
        self._mark_active(st["profile"])
        self._draw_link()
        no_voice = st.get("no_voice")  # (the start profile did not load: silence until a voice is picked)
        if no_voice and no_voice != self._no_voice_said:
            self.show_message(f"{no_voice}; output silent: pick a voice in the list (Enter)", error=True)
        self._no_voice_said = no_voice

    def apply_voices(self, voices: list[dict[str, Any]]) -> None:
        self.voices = voices
        self._fill_voice_list()

    async def apply_params(self, params: dict[str, Any]) -> None:
        """Steppers for the voice's parameters (rebuilt when the set of parameters changes)."""
        box = self.query_one("#params", Vertical)
        specs = [s for n, r in params["ranges"].items() if (s := spec_for(n, r)) is not None]
        if [s.spec for s in self.query(Stepper)] != specs:
            # a focused parameter that goes (Textual gave the focus to the widget before it, the talk switch, and the
            # digits typed next were Enter's talk: the microphone open in push-to-talk mode): the parameter of that
            # name keeps it, or nothing has it (a value meant for pitch must not go to the gain)
            # (and a value being typed goes on being typed there: it was dropped unsaid, the Enter then began anew)
            had = self.focused.spec.name if isinstance(self.focused, Stepper) else None
            typed = self.focused.typing if isinstance(self.focused, Stepper) else None
            if had is not None:
                self.screen.set_focus(None)
            await box.remove_children()
            await box.mount_all(Stepper(s, params["values"][s.name], id=f"p-{s.name}") for s in specs)
            if had is not None and self.query(f"#p-{had}"):
                stepper = self.query_one(f"#p-{had}", Stepper)
                self.screen.set_focus(stepper)
                stepper.typing = typed
                stepper.refresh()
            elif typed is not None:
                self.show_message(f"the voice has no {had} now: the value typed for it ({typed or 'none'}) is dropped")
        else:
            for s in self.query(Stepper):
                s.value = params["values"][s.spec.name]
        self.ranges = params["ranges"]

    def _check_readings(self) -> None:
        if self.link.state == "connected" and self.clock() - self._meters_at > STALE_S:
            if not self._frozen_said:
                self._frozen_said = True
                self.show_message(
                    f"no readings from the daemon for {STALE_S:g} s: is it frozen? (the link is dropped after"
                    " 10 s without an answer)",
                    error=True,
                )
            self._no_readings()

    def _no_readings(self) -> None:
        for m in self.query(LevelMeter):
            m.no_reading()
        self.query_one("#gate", GateLine).no_reading()

    def apply_meters(self, ev: dict[str, Any]) -> None:
        self.meters = ev
        self._meters_at = self.clock()
        if self._frozen_said:  # (said only after "is it frozen?": a first reading after connecting says nothing)
            self._frozen_said = False
            self.show_message("readings from the daemon again")
        self.query_one("#m-in", LevelMeter).set_level(ev["in_peak"])
        self.query_one("#gate", GateLine).set_meters(ev)
        self.query_one("#m-out", LevelMeter).set_level(ev["out_peak"], ev.get("limit_db", 0.0))
        if ev.get("block_ms") is not None:
            self.blocks = [*self.blocks[-(SPARK_POINTS - 1) :], ev["block_ms"]]
            self.query_one("#blocks", BlockTimes).show(self.blocks, ev.get("budget_ms") or 0.0)
        if "p99_ms" in ev:
            self._timing(ev["p99_ms"], ev.get("budget_ms", 0.0), ev.get("xruns", 0))

    def apply_status(self, st: dict[str, Any]) -> None:
        self.query_one("#latency", Static).update(latency_text(st))
        sched = scheduling_text(st.get("worker_priority"))
        if sched != self._scheduling_text:
            self._scheduling_text = sched
            self.query_one("#scheduling", Static).update(sched)
        t = st["timing"]
        self._timing(t["p99_ms"], t["budget_ms"], st["xruns"]["total"])
        if st.get("state") and self.state:
            self.state = {**self.state, "engine": st["state"]}
        self._set_unheard(st.get("unheard", ""))

    def _set_unheard(self, unheard: str) -> None:
        """The engine runs, and nothing is heard (a device's JACK program closed, the virtual microphone removed):
        on the top line while it holds, as the dock keeps it (the message line's words go with the next message)."""
        if unheard != self._unheard:
            self._unheard = unheard
            self._draw_link()

    def _timing(self, p99: float, budget: float, xruns: int) -> None:
        xr = f"[bold red]xruns {xruns}[/]" if xruns else "xruns 0"
        text = f"block p99 {p99:.2f}/{budget:.3g} ms  {xr}"  # (a 12.5 ms block: 12.5, not 12)
        if text != self._timing_text:  # a Static update lays the screen out again: only when it changed
            self._timing_text = text
            self.query_one("#timing", Static).update(text)

    def _advice(self, text: str) -> str:
        """The daemon's words as they read here: its advice is for a daemon a user started; `rtvc run` started it."""
        if self.own_daemon is not None:
            for said, meant in RUN_ADVICE:
                text = text.replace(said, meant)
        return text

    def show_message(
        self, text: str, error: bool = False, refusal: bool = False, calls_after: int = 0, ours: bool = False
    ) -> None:
        """The message line. `refusal`: something the user did was refused (a call, a value typed, a voice that
        cannot load): the next call that works clears it, but for the `calls_after` the same action makes (a
        value past its range is set to the end it passed, and said). `ours` (and a refusal): it says what the
        user's own action did, untrue once another client changes the state (_apply_event says that instead)."""
        text = self._advice(text)
        self._refusal_shown, self._refusal_calls_after = refusal, calls_after
        self._ours_shown = ours or refusal
        self._message = (("✖ " if error else "") + text, error)
        self._draw_message()

    def _draw_message(self, width: int | None = None) -> None:
        """The message as its MESSAGE_ROWS rows hold it: a longer one loses its middle, not its end (where the fix is:
        at 40 columns, "hear myself has no device ... or --monitor-device" lost the option that fixes it)."""
        text, error = self._message
        room = (width or self.size.width) - 2  # (its padding)
        most = MESSAGE_ROWS * room - room // 2  # (words wrap short of the edge: half a row spare)
        if len(text) > most > 40:
            head, tail = most // 3, len(text) - (most - most // 3 - 3)
            head = text.rfind(" ", 0, head) if " " in text[head // 2 : head] else head  # (at a space, where near)
            space = text.find(" ", tail, tail + 12)
            text = text[:head].rstrip() + " … " + text[space if space > 0 else tail :].lstrip()
        msg = self.query_one("#message", Static)
        msg.update(Content(text))  # (errors quote labels, paths and "[model]": text, not markup)
        msg.set_class(error, "error")

    # -- the voice list's messages (handled in VoiceListMixin) ---------------------------------------------
    @on(Input.Changed, "#filter")
    def _filter(self) -> None:
        self._fill_voice_list()

    @on(OptionList.OptionSelected, "#voices")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.option_picked(event)

    # -- actions --------------------------------------------------------------------------------------
    async def _call(self, method: str, **params: Any) -> Any:
        """An API call; a refusal goes to the message line (and is raised, for the caller to stop)."""
        quiet = self.clock() - self._meters_at
        if self.client is None:
            err = CallError(method, 0, "not connected to a daemon")
        elif method not in READS and self.link.state == "connected" and quiet > QUIET_S:
            # (sent now, it would run when the daemon wakes, late and unseen: a mute pressed twice undone)
            err = CallError(method, 0, f"not sent: the daemon has sent nothing for {quiet:.0f} s (frozen?); press again"
                            " once its meters move")  # fmt: skip
        else:
            try:
                got = await self.client.call(method, **params)
            except CallError as e:
                err = e
                if method not in READS and e.code == 0 and (e.message in SENT_UNANSWERED or "no reply" in e.message):
                    # (sent: the daemon reads it when it wakes, the TUI on or not; "failed" was untrue then)
                    self._unanswered.append(method)
                    self._say_unanswered()
                    raise
            else:
                if self._refusal_shown and method not in READS:  # (something the user did worked: it is old)
                    if self._refusal_calls_after and method == "params.set":  # (the stepper's own set of it)
                        self._refusal_calls_after -= 1
                    else:
                        self.show_message("")
                return got
        self.show_message(str(err), error=True, refusal=True)
        raise err

    def _act(self, do: Callable[[], Awaitable[None]]) -> None:
        """A change the user made, sent by one worker after those made before it (in the order they were made). The
        key's handler returns at once: awaiting the reply there held every later key, `q` too, for as long as a
        daemon that froze kept the request (until the link dropped, 10 s on)."""
        if self._acts is not None:
            self._acts.put_nowait(do)

    async def _send_acts(self) -> None:
        assert self._acts is not None
        while True:
            do = await self._acts.get()
            try:
                await do()
            except CallError:  # (said by _call)
                pass

    def _say_unanswered(self) -> None:
        """The changes sent that got no answer (the daemon froze, the link dropped), said after why the link went."""
        what = " and ".join(dict.fromkeys(self._unanswered))
        said = f"{what}: sent, unanswered: the daemon may still do it if it wakes (the screen shows what it did once"
        said += " connected again)"
        self.show_message(f"{self.link.detail}; {said}" if self.link.state == "disconnected" else said, error=True)

    @on(Stepper.Changed)
    def _stepped(self, event: Stepper.Changed) -> None:
        self._act(functools.partial(self._set_param, event.stepper, event.value))

    async def _set_param(self, stepper: Stepper, value: float) -> None:
        name = stepper.spec.name
        try:
            await self._call("params.set", values={name: value})
        except CallError:  # refused (out of the voice's range, a voice loading, not sent): the daemon's value again
            # (as its last state said: asking it with params.get failed while disconnected and waited while it was
            # frozen, and the refused value stayed on screen as if it had been set)
            now = self.state.get("params") or {}
            if name in now and stepper.is_attached:
                stepper.value = now[name]

    def action_down(self) -> None:
        """The next widget; from the last one (the gate line), the lines under it first (the output meter, the
        latency, the block times, the scheduling's warning and its fix): on a short terminal no key reached them,
        nothing there takes the focus (a review)."""
        right = self.query_one("#right")
        chain = self.screen.focus_chain
        if chain and self.focused is chain[-1] and right.scroll_y < right.max_scroll_y:
            right.scroll_relative(y=max(1, right.size.height // 2), animate=False)
            return
        self.screen.focus_next()

    def action_scroll_right(self, pages: int) -> None:
        right = self.query_one("#right")
        right.scroll_relative(y=pages * max(1, right.size.height - 1), animate=False)

    def action_toggle(self, what: str) -> None:
        self._act(functools.partial(self._call, f"{what}.toggle"))

    def action_gate_step(self, db: float) -> None:
        self._act(functools.partial(self._gate_step, db))

    async def _gate_step(self, db: float) -> None:
        """Raise or lower the gate's threshold (kept within its range: a step past the end stops there). Steps
        pressed faster than the daemon answers add up: each starts from the last one sent while calls are out
        (from the state shown, which the daemon's event updates only later, ten quick presses made about six)."""
        now = self._gate_sent if self._gate_calls else self.state.get("gate", {}).get("threshold_db")
        if now is None:
            return
        self._gate_sent = want = max(_GATE_DB["min"], min(_GATE_DB["max"], now + db))
        self._gate_calls += 1
        try:
            got = await self._call("gate.set", threshold_db=want)
        except CallError:
            return
        finally:
            self._gate_calls -= 1
        if not self._gate_calls:  # (the reply is the daemon's gate: shown now, before its event)
            self.state = {**self.state, "gate": got}
            self.query_one("#gate", GateLine).set_settings(got)
            if not got["on"]:  # (the gate line shows no threshold while the gate is off)
                self.show_message(
                    f"noise gate threshold {got['threshold_db']:g} dBFS (the gate is off: g turns it on)", ours=True
                )

    @work(group="learn", exit_on_error=False)
    async def action_learn_gate(self) -> None:
        """gate.learn: the daemon listens for LEARN_S while the user is quiet, then sets the gate from the room (a
        worker: the meters and keys carry on meanwhile). A second G meanwhile is said here and sends nothing (an
        exclusive worker cancelled the first, whose answer was lost, and the daemon's refusal of the second stayed)."""
        if self._learning:
            self.show_message(f"listening to the room already: its answer comes within {LEARN_S:g} s")
            return
        self.show_message(f"listening to the room for {LEARN_S:g} s: be quiet ...")
        self._learning = True
        try:
            got = await self._call("gate.learn", seconds=LEARN_S)
        except CallError:
            return
        finally:
            self._learning = False
        self.state = {**self.state, "gate": {k: got[k] for k in ("on", "threshold_db", "hold_ms")}}
        self.query_one("#gate", GateLine).set_settings(self.state["gate"])
        room = f"{got['room_db']:g} dBFS at its loudest"  # (digital silence is refused: a muted microphone)
        self.show_message(f"noise gate on at {got['threshold_db']:g} dBFS (the room: {room})")

    def action_toggle_ptt_mode(self) -> None:
        self._act(self._ptt_mode)

    async def _ptt_mode(self) -> None:
        """ptt.mode has no toggle: the other way from the mode last known, the reply's taken at once (`t t` sent the
        same mode twice 1 time in 4, the reply coming before the first change's event)."""
        got = await self._call("ptt.mode", on=not self.state.get("ptt", {}).get("mode", False))
        self.state = {**self.state, "ptt": {**self.state.get("ptt", {}), "mode": got["on"]}}

    def action_talk(self) -> None:
        self._act(self._talk)

    async def _talk(self) -> None:
        """Terminals report no key releases, so the talk key latches: press to talk, press again to stop."""
        got = await self._call("ptt.release" if self.talking else "ptt.press")
        self.talking = not self.talking
        self.query_one("#t-talk", Toggle).set(self.talking)
        silent = " (output silent)" if got["silent"] else ""
        self.show_message(("talking" if self.talking else "stopped talking") + silent, ours=True)

    def action_find_voice(self) -> None:
        if self.screen is not self.screen_stack[0] or isinstance(self.focused, Input):
            raise SkipAction()  # (a pop-up, or a text field: the key is theirs)
        # at once, not at the next idle (Widget.focus), for the keys already typed after it
        self.screen.set_focus(self.query_one("#filter", Input))

    def action_help(self) -> None:
        keys = [(shown(k), t) for k, _a, t in self.ACTIONS]
        keys += [
            ("up/down, tab", "move between controls (down past the gate line: the lines under it)"),
            ("pgup/pgdn", "on a switch: scroll the right-hand side (a short terminal)"),
            ("left/right +", "step the focused parameter (shift: big steps)"),
            ("home/end", "the focused parameter's lowest / highest value"),
            ("0-9 . - Enter", "type a value for the focused parameter ('-' sets its sign, Esc cancels)"),
            ("ctrl+p", "command palette"),
        ]
        self.push_screen(HelpScreen(keys))

    def action_save_profile(self) -> None:
        if self.link.state != "connected":  # (it offered to save "the active profile ''")
            self.show_message("not connected to the daemon: nothing to save", error=True)
            return
        if self.state.get("no_voice"):  # (it offered to save "the active profile 'None'", which the daemon refused)
            self.show_message("no voice plays: nothing to save (pick a voice in the list first: Enter)", error=True)
            return

        async def save(picked: tuple[str, bool] | None) -> None:
            if picked:
                name, overwrite = picked
                try:
                    got = await self._call("profiles.save", name=name, overwrite=overwrite)
                except CallError:
                    return
                self.show_message(f"{'replaced' if overwrite else 'saved'} profile '{name}' ({got['path']})")

        taken = {v["name"] for v in self.voices}
        self.push_screen(SaveScreen(self.state.get("profile") or "", taken), save)

    @work(group="devices", exclusive=True, exit_on_error=False)
    async def action_devices(self) -> None:
        params: dict[str, Any] = {}
        while True:
            try:
                listing = await self._call("devices.list", **params)
            except CallError:
                return
            if params:
                said = listing.get("error")
                n = len(listing["devices"])
                self.show_message(said or f"device list read again: {n} device{'' if n == 1 else 's'}", bool(said))
            picked = await self.push_screen_wait(DeviceScreen(listing, self._advice))
            if not picked or picked[0] != "rescan":
                break
            params = {"rescan": True}
        if picked:
            kind, device = picked
            try:
                await self._call("devices.select", **{kind: device})
            except CallError:
                return
            gone = f"{kind} device removed" if kind == "monitor" else f"{kind} device switched to the default"
            self.show_message(f"{kind} device switched to {device}" if device else gone)

    def action_reconnect(self) -> None:
        if self.client is None:
            return
        if self.link.state == "connected":
            self.show_message(f"connected to {self.client.endpoint.url}: nothing to reconnect")
            return
        self.show_message(f"reconnecting to {self.client.endpoint.url}…")
        self.client.retry()

    async def _poll_status(self) -> None:
        if self.client is not None and self.link.state == "connected":
            try:
                st = await self.client.call("status.get")
            except CallError:
                return  # a closing connection: the link line says so
            try:
                self.apply_status(st["engine"])
            except NoMatches:
                pass  # the reply landed while the app was closing its screen: nothing left to show it on
