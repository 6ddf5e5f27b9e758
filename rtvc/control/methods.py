"""The control API's method table: name -> handler, parameters (by name, typed, ranged), one-line doc.

Handlers are coroutines run on the server's event loop; each drives the `Controller`, which applies the
change at the engine's next block edge and tells every listener. Work that takes seconds (loading a
voice, opening devices) runs in a worker thread so the loop keeps serving the other clients.
docs/API.md is generated from this table (`python -m rtvc.control.rpc --markdown`).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rtvc.audio.switch import AudioLost
from rtvc.config import GateConfig, device_name_ok
from rtvc.control.controller import Controller, LearnBusy, NoVoiceError, Superseded
from rtvc.control.rpc import (
    API_VERSION,
    BUSY,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    LOAD_FAILED,
    NOT_AVAILABLE,
    NOT_FOUND,
    SUPERSEDED,
    UNAUTHORIZED,
    Method,
    Param,
    RpcError,
    quoted,
)
from rtvc.errors import DeviceError, RtvcError, words
from rtvc.settings import describe

EVENT_TYPES = ("state", "engine", "meters")


@dataclass
class Hub:
    """What handlers reach beyond their own connection; made by the server."""

    controller: Controller
    info: dict[str, Any]  # server facts for server.info
    devices_in_use: Callable[[], dict[str, Any]]
    busy: set[str] = field(default_factory=set)  # long operations under way: "voice", "devices"
    selects: Selects = field(default_factory=lambda: Selects())


@dataclass
class Selects:
    """voices.select requests: one loads at a time, and the latest wins (as OBS scenes do, rtvc.control.scenes).
    A request made during a load waits for it, in the one waiting place: a later request for another voice takes
    that place, and the one it held is answered SUPERSEDED without loading. A request for the voice that is
    loading, or waiting, is answered with that request (a double click loads once)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0  # requests loading or waiting to
    loading: tuple[str, asyncio.Future] | None = None  # the voice loading now, and its answer
    waiting: tuple[str, asyncio.Future] | None = None  # the voice to load next, and its answer


class Session(Protocol):
    """One connection, as handlers see it."""

    id: str  # "client 3": the `by` of its changes and the holder of its push-to-talk presses
    authed: bool
    hub: Hub

    def login(self, token: str) -> bool: ...
    def subscribe(self, events: list[str], meter_hz: float | None) -> None: ...


METHODS: dict[str, Method] = {}
_ON = {"on": Param("boolean", "true or false")}


def method(name: str, doc: str, returns: str, params: dict[str, Param] | None = None, slow: bool = False):
    def register(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        METHODS[name] = Method(fn, doc, returns, params or {}, slow)
        return fn

    return register


@method(
    "auth",
    "Authenticate this connection (or connect to /rpc?token=...)",
    "{client, version}",
    {"token": Param("string", "the token `rtvc token` prints")},
)
async def _auth(s: Session, token: str) -> dict[str, Any]:
    if not s.login(token):
        raise RpcError(UNAUTHORIZED, "wrong token: run `rtvc token` on the rtvc machine and send the token it prints")
    return {"client": s.id, "version": s.hub.info["version"]}


@method("server.info", "Server name and version, API version, this client's id, the methods", "object")
async def _info(s: Session) -> dict[str, Any]:
    return {**s.hub.info, "api": API_VERSION, "client": s.id, "methods": list(METHODS), "events": list(EVENT_TYPES)}


@method("status.get", "Engine status (latency, timing, xruns, levels) and the control state", "{engine, control}")
async def _status(s: Session) -> dict[str, Any]:
    return s.hub.controller.status()


@method(
    "voices.list",
    "The voice profiles; `error` says why one cannot load (its model files missing, or damaged as a load of it "
    "found, until they change). Names are the file names, case and all",
    "{voices: [{name, label, voice, active, error?}], active}",
)
async def _voices(s: Session) -> dict[str, Any]:
    from rtvc.profiles import ProfilesUnreadable

    try:
        return {"voices": s.hub.controller.voices(), "active": s.hub.controller.profile}
    except ProfilesUnreadable as e:  # (not an empty list: every voice seemed gone)
        raise RpcError(NOT_AVAILABLE, f"voices.list: {e}") from None


@method(
    "voices.select",
    "Load a profile and switch to it at a block edge (seconds for a model voice; the voice played before comes "
    "back at once, as its profile says). During a load the latest select wins: it waits for the load, and one "
    "overtaken while it waited is answered superseded (-32006)",
    "state",
    {"name": Param("string", "a name from voices.list")},
    slow=True,
)
async def _select(s: Session, name: str) -> dict[str, Any]:
    c, q = s.hub.controller, s.hub.selects
    voices = c.voices()
    known = [v["name"] for v in voices]
    if name not in known:
        # a label, as the TUI, the dock and `rtvc ctl status` show it ('Deeper' for profiles/pitch.toml): say whose
        # (a label that is only the profile's name, its file having none, is no lead: difflib's guess says more)
        said = name.strip().casefold()
        owners = [v["name"] for v in voices if v["label"] != v["name"] and v["label"].casefold() == said]
        if owners:
            whose = " and ".join(f"'{n}'" for n in owners)
            raise RpcError(
                NOT_FOUND,
                f"no voice '{name[:60]}': '{name[:60]}' is the label of voice {whose}: select it by its name, "
                f"{' or '.join(owners)}",
            )
        near = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise RpcError(NOT_FOUND, f"no voice '{name[:60]}': {hint}voices: {', '.join(known) or 'none'}")
    # (a load for an OBS scene, or of the start profile mended, under way: this one waits for it, as for a client's;
    # the latest asked for wins, whoever asked: Controller.intend)
    intent = c.intend(name, s.id)
    if q.waiting is not None:
        if q.waiting[0] == name:
            return await asyncio.shield(q.waiting[1])
        q.waiting[1].set_exception(
            RpcError(SUPERSEDED, f"voice '{q.waiting[0]}' was not loaded: voice '{name}' was selected after it")
        )
        q.waiting = None
    if q.loading is not None and q.loading[0] == name:  # (a double click, or back to it: that load answers)
        return await asyncio.shield(q.loading[1])
    answer = asyncio.get_running_loop().create_future()
    answer.add_done_callback(lambda f: f.cancelled() or f.exception())  # (no "never retrieved" warning)
    q.waiting = (name, answer)
    q.pending += 1
    s.hub.busy.add("voice")
    try:
        async with q.lock:
            if answer.done():  # overtaken while it waited
                return await answer
            q.waiting, q.loading = None, (name, answer)
            try:
                state = await asyncio.to_thread(c.select_voice, name, s.id, intent=intent)
            except Superseded as e:  # (an OBS scene's voice asked for after it)
                err = RpcError(SUPERSEDED, str(e))
                answer.set_exception(err)
                raise err from None
            except RtvcError as e:
                err = RpcError(LOAD_FAILED, f"voice '{name}' did not load, the current voice stays: {e}")
                answer.set_exception(err)
                raise err from None
            except Exception as e:  # a bug: this request's reply says so (rpc.execute logs it); the same for others
                answer.set_exception(RpcError(INTERNAL_ERROR, f"internal error in voices.select: {words(e)}"))
                raise
            except BaseException:
                answer.cancel()
                raise
            finally:
                q.loading = None
            answer.set_result(state)
            return state
    finally:
        q.pending -= 1
        if not q.pending:
            s.hub.busy.discard("voice")


@method(
    "profiles.save",
    "Save the running voice and its current parameters as profiles/NAME.toml; it becomes the active profile",
    "{name, path, state}",
    {
        "name": Param("string", "1-64 ASCII letters, digits, - or _, the first a letter or digit (the file name)"),
        "label": Param(
            "string",
            "what the voice list shows, at most 100 characters (default, and when empty: the label of the profile "
            "replaced, else the name)",
            False,
        ),
        "overwrite": Param(
            "boolean",
            "replace an existing profile of that name (default false); one of the same voice kind keeps its comments",
            False,
        ),
    },
)
async def _save_profile(s: Session, name: str, label: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    c = s.hub.controller
    if "voice" in s.hub.busy or c.loading is not None:
        raise RpcError(BUSY, "a voice is loading: save once it has loaded")
    try:
        return await asyncio.to_thread(c.save_profile, name, label, overwrite, s.id)
    except NoVoiceError as e:
        raise RpcError(NOT_AVAILABLE, str(e)) from None
    except PermissionError as e:  # (the folder cannot be looked into: its permissions)
        raise RpcError(NOT_AVAILABLE, f"profile '{name}' not saved: {e.strerror} ({e.filename}): check the profiles"
                       " folder's permissions") from None  # fmt: skip


@method(
    "params.get",
    "The voice's parameters, with their types, ranges and help (`ranges` leaves out those that do nothing for this"
    " voice: pitch of a voice without F0, index_rate and protect without an .index; params.set refuses them)",
    "{kind, values, ranges}",
)
async def _params(s: Session) -> dict[str, Any]:
    return s.hub.controller.params()


@method(
    "params.set",
    "Change some parameters: all are applied or none",
    "{values}",
    {"values": Param("object", 'name: value, e.g. {"pitch": -3}; ranges in params.get')},
)
async def _set_params(s: Session, values: dict[str, Any]) -> dict[str, Any]:
    c = s.hub.controller
    if "voice" in s.hub.busy or c.loading is not None:  # they would reach the voice that is about to go
        loading = f"voice '{c.loading}'" if c.loading else "another voice"
        raise RpcError(BUSY, f"{loading} is loading with its profile's params: change them once it is in")
    try:
        return {"values": c.set_params(values, s.id)}
    except NoVoiceError as e:
        raise RpcError(NOT_AVAILABLE, str(e)) from None


def _switch(name: str, doc: str, get: Callable[[Controller], bool], set_: str) -> None:
    def apply(s: Session, on: bool) -> dict[str, bool]:
        try:
            return {"on": getattr(s.hub.controller, set_)(on, s.id)}
        except DeviceError as e:  # hear myself with no monitor device: nothing changed
            raise RpcError(NOT_FOUND, f"{name} not switched on: {e}") from None

    async def on(s: Session, on: bool) -> dict[str, bool]:
        return apply(s, on)

    async def toggle(s: Session) -> dict[str, bool]:
        return apply(s, not get(s.hub.controller))

    METHODS[f"{name}.set"] = Method(on, doc, "{on}", _ON)
    METHODS[f"{name}.toggle"] = Method(toggle, f"Flip {name}.set", "{on}")


_switch("voice", "Voice changer on; off passes the microphone through", lambda c: c.voice_on, "set_voice_on")
_switch("monitor", "Hear myself on the monitor device", lambda c: c.engine.monitor_enabled, "set_monitor")
_switch("mute", "Mute the output (faded over one block)", lambda c: c.mute, "set_mute")


def _gate_param(key: str, doc: str) -> Param:
    d = describe(GateConfig)[key]
    return Param("number", f"{doc} (config.toml gate.{key})", False, d["min"], d["max"])


@method(
    "gate.set",
    "The noise gate: the output is silent while the microphone is quieter than the threshold; "
    "the settings given change, the others stay",
    "{on, threshold_db, hold_ms}",
    {
        "on": Param("boolean", "true or false", False),
        "threshold_db": _gate_param("threshold_db", "input level (dBFS RMS) that opens the gate"),
        "hold_ms": _gate_param("hold_ms", "time below the threshold (less 6 dB) before it closes"),
    },
)
async def _gate_set(
    s: Session, on: bool | None = None, threshold_db: float | None = None, hold_ms: float | None = None
) -> dict[str, Any]:
    return s.hub.controller.set_gate(s.id, on, threshold_db, hold_ms)


@method(
    "gate.learn",
    "Listen to the room for `seconds` (be quiet meanwhile), then switch the gate on with its threshold 8 dB over the "
    "loudest the room was (so that the room closes it: it closes 6 dB under the threshold). Refused (-32004) where "
    "the level swung by over 15 dB or rose over -30 dBFS (a voice, typing, a knock), where the input was digital "
    "silence (a muted microphone, or not the one meant), or where no input came (the engine not running): the gate "
    "stays as it was. One at a time: another, while one listens, is refused (-32005)",
    "{on, threshold_db, hold_ms, room_db}: the gate's settings now, and the loudest level heard (dBFS RMS)",
    {"seconds": Param("number", "how long to listen (default 2)", False, 1.0, 10.0)},
    slow=True,
)
async def _gate_learn(s: Session, seconds: float = 2.0) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(s.hub.controller.learn_gate, s.id, float(seconds))
    except LearnBusy as e:
        raise RpcError(BUSY, str(e)) from None
    except RtvcError as e:
        raise RpcError(NOT_AVAILABLE, str(e)) from None


@method("gate.toggle", "Flip the noise gate on or off", "{on, threshold_db, hold_ms}")
async def _gate_toggle(s: Session) -> dict[str, Any]:
    c = s.hub.controller
    return c.set_gate(s.id, not c.engine.gate.settings.on)


@method("ptt.mode", "Push-to-talk mode: silent unless some client holds the talk key", "{on}", _ON)
async def _ptt_mode(s: Session, on: bool) -> dict[str, bool]:
    return {"on": s.hub.controller.set_ptt_mode(on, s.id)}


@method("ptt.press", "Hold the talk key; released by ptt.release or when this connection closes", "{held, silent}")
async def _ptt_press(s: Session) -> dict[str, Any]:
    return {"held": s.hub.controller.ptt_press(s.id, s.id), "silent": s.hub.controller.silent}


@method("ptt.release", "Release this client's talk key", "{held, silent}")
async def _ptt_release(s: Session) -> dict[str, Any]:
    return {"held": s.hub.controller.ptt_release(s.id, s.id), "silent": s.hub.controller.silent}


@method(
    "devices.list",
    "Sound devices, the ones in use (with `stopped`: why none runs), and whether they can be switched",
    "{devices: [{index, name, host_api, max_input, max_output, default_samplerate, low_input_latency, "
    "low_output_latency, by_move}], in_use, switchable, error?}",
    {
        "rescan": Param(
            "boolean",
            "read the system's device list again first, for a device plugged in since rtvc started"
            " (the audio stops for a moment where anything was plugged in or out); `error` says why the devices in use"
            " did not reopen, if they did not",
            False,
        )
    },
    slow=True,
)
async def _devices(s: Session, rescan: bool = False) -> dict[str, Any]:
    """With rescan, a reopen that failed (a device in use is gone) does not fail the listing: the new list is
    what the user needs to choose another; `error` says what happened."""
    from rtvc.audio.devices import list_devices
    from rtvc.audio.devices import rescan as rescan_devices

    error = None
    if rescan:
        if s.hub.controller.device_switcher is not None:
            try:
                await _device_change(s, lambda: s.hub.controller.switch_devices(None, None, s.id, rescan=True))
            except RpcError as e:
                if e.code == BUSY:
                    raise
                error = e.message
        elif resuming := s.hub.devices_in_use().get("resuming"):
            raise RpcError(NOT_AVAILABLE, f"devices.list: {resuming}; it reads the list again itself")
        elif s.hub.devices_in_use().get("virtual"):  # no stream of PortAudio's is open
            try:
                await asyncio.to_thread(rescan_devices)
            except DeviceError as e:
                raise RpcError(NOT_AVAILABLE, f"devices.list: the device list was not read again: {e}") from None
        else:
            raise RpcError(NOT_AVAILABLE, "devices.list: this daemon cannot read the device list again; restart it")
    try:
        found = await asyncio.to_thread(list_devices)
    except DeviceError as e:
        raise RpcError(NOT_AVAILABLE, f"devices.list: {e}") from None
    # (not where every devices.select would be refused: PortAudio stuck on a JACK server that went away; in_use.stopped
    # says why, and the TUI then offers no switch)
    switchable = s.hub.controller.device_switcher is not None and not s.hub.controller.devices_stuck()
    in_use = s.hub.devices_in_use()
    got = {"devices": [vars(d) for d in found], "in_use": in_use, "switchable": switchable}
    return got if error is None else {**got, "error": error}


async def _device_change(s: Session, change: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a switch of sound devices (slow) on a worker thread; one at a time."""
    if "devices" in s.hub.busy:
        raise RpcError(BUSY, "a device switch is under way: wait for it to finish")
    s.hub.busy.add("devices")
    try:
        return await asyncio.to_thread(change)
    except AudioLost as e:  # the old devices had stopped and did not come back: no sound now
        raise RpcError(NOT_AVAILABLE, f"devices not switched, and audio is stopped: {e}") from None
    except DeviceError as e:
        raise RpcError(NOT_FOUND, f"devices not switched, the current ones stay: {e}") from None
    finally:
        s.hub.busy.discard("devices")


_DEV = 'a device index (as a string: "3") or part of its name, from devices.list'


@method(
    "devices.select",
    "Switch the input, output and/or monitor (hear myself) device",
    "{in_use, latency_ms}: the devices now, as devices.list says, and the declared latency with them",
    {
        "input": Param("string", _DEV, False),
        "output": Param("string", _DEV, False),
        "monitor": Param("string", _DEV + "; an empty string for none", False),
    },
    slow=True,
)
async def _select_devices(
    s: Session, input: str | None = None, output: str | None = None, monitor: str | None = None
) -> dict[str, Any]:
    switch = s.hub.controller.device_switcher
    if switch is None:
        in_use = s.hub.devices_in_use()
        if in_use.get("resuming"):  # (a restarted serve whose devices are not back: it looks for them itself)
            raise RpcError(
                NOT_AVAILABLE,
                f"devices.select is not available yet: {in_use['resuming']} (plug them in or mend the sound server; "
                "to use other devices, restart rtvc serve with --input-device / --output-device)",
            )
        where = "on the virtual device" if in_use.get("virtual") else "while this daemon runs"
        if in_use.get("fallback"):  # (serve found no sound card at its start: a sound server started after it)
            raise RpcError(NOT_AVAILABLE, f"devices.select is not available {where}: {in_use['fallback']}")
        raise RpcError(
            NOT_AVAILABLE,
            f"devices.select is not available {where}: "
            "choose devices with audio.input_device/output_device in config.toml and restart rtvc serve",
        )
    if input is None and output is None and monitor is None:
        raise RpcError(INVALID_PARAMS, "devices.select: give input, output, monitor or several (see devices.list)")
    for role, name in (("input", input), ("output", output), ("monitor", monitor)):
        if allowed := device_name_ok(name):  # (a NUL failed deep in a JACK query, as an internal error)
            raise RpcError(INVALID_PARAMS, f"devices.select: {role} {quoted(name)} is no device: it must be {allowed}")
    return await _device_change(s, lambda: s.hub.controller.switch_devices(input, output, s.id, monitor))


@method(
    "events.subscribe",
    "Receive `event` notifications (replaces this client's earlier subscription)",
    "{events, meter_hz (null without meters), state}",
    {
        "events": Param("array", "of state, engine, meters (default: state and engine)", False),
        "meter_hz": Param("number", "meter updates per second, with meters (default 10)", False, 1, 30),
    },
)
async def _subscribe(s: Session, events: list[Any] | None = None, meter_hz: float | None = None) -> dict[str, Any]:
    asked = ["state", "engine"] if events is None else events
    bad = [e for e in asked if not isinstance(e, str) or e not in EVENT_TYPES]
    if bad:
        shown = quoted(bad[0])
        raise RpcError(INVALID_PARAMS, f"events.subscribe: unknown event type {shown}: choose from {EVENT_TYPES}")
    chosen = list(dict.fromkeys(asked))
    if meter_hz is not None and "meters" not in chosen:
        raise RpcError(INVALID_PARAMS, 'events.subscribe: meter_hz is the rate of "meters": add "meters" to events')
    hz = (meter_hz or 10.0) if "meters" in chosen else None
    s.subscribe(chosen, hz)
    return {"events": chosen, "meter_hz": hz, "state": s.hub.controller.state()}


@method("events.unsubscribe", "Stop all event notifications to this client", "{events}")
async def _unsubscribe(s: Session) -> dict[str, Any]:
    s.subscribe([], None)
    return {"events": []}
