"""JSON-RPC 2.0 for the control API: parse a message, check it against the method table, run it, reply.

No transport here (server.py carries the messages) and no methods (methods.py is the table). Every failure
becomes a JSON-RPC error whose message says what to fix. `python -m rtvc.control.rpc --markdown` writes
docs/API.md from the table, so the reference cannot drift from the code.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rtvc.errors import ConfigError

log = logging.getLogger("rtvc.control")

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
UNAUTHORIZED, NOT_FOUND, LOAD_FAILED, NOT_AVAILABLE, BUSY = -32001, -32002, -32003, -32004, -32005
SUPERSEDED = -32006
CLOSE_UNAUTHORIZED, CLOSE_TOO_SLOW, CLOSE_FULL = 4001, 4008, 1013
CLOSE_TOO_MANY = 4029  # requests past control.max_requests_per_s for longer than connection.MAX_BEHIND_S
AUTH_TIMEOUT_S = 10.0
API_VERSION = 1
# how long a client waits for a reply (rtvc's own: the TUI, rtvc ctl): a daemon that never answers is an error; methods
# that do seconds of work in the daemon (a first RVC load imports torch and reads hundreds of MB; a device switch waits
# for the old device; gate.learn listens for up to 10 s) answer when the work is done
CALL_TIMEOUT_S = 30.0
SLOW_METHODS = {"voices.select": 300.0, "devices.select": 60.0, "devices.list": 60.0, "gate.learn": 60.0}


class RpcError(Exception):
    def __init__(self, code: int, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


class Caller(Protocol):
    id: str
    authed: bool


@dataclass(frozen=True)
class Param:
    type: str  # JSON type: boolean | string | number | object | array
    doc: str
    required: bool = True
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class Method:
    handler: Callable[..., Awaitable[Any]]  # async (session, **params) -> result
    doc: str
    returns: str
    params: dict[str, Param] = field(default_factory=dict)
    slow: bool = False  # seconds of work in a thread: runs beside the connection's other requests


_TYPES: dict[str, Callable[[Any], bool]] = {
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and math.isfinite(v)),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_A_TYPE = {  # as messages say it
    "boolean": "a boolean",
    "string": "a string",
    "number": "a number",
    "object": "an object",
    "array": "an array",
}


def dumps(msg: Any) -> str:
    return json.dumps(msg, separators=(",", ":"), allow_nan=False)


def reply(id_: Any, result: Any = None, error: RpcError | None = None) -> str:
    if error is not None:
        return dumps({"jsonrpc": "2.0", "id": id_, "error": {"code": error.code, "message": error.message}})
    return dumps({"jsonrpc": "2.0", "id": id_, "result": result})


def notification(params: dict[str, Any]) -> str:
    return dumps({"jsonrpc": "2.0", "method": "event", "params": params})


@dataclass
class Call:
    id: Any = None
    notify: bool = False  # a request without "id": JSON-RPC sends no reply to it, not even an error
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    error: RpcError | None = None


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class LongNumber:
    """A JSON integer with more digits than Python reads (sys.get_int_max_str_digits(), 4300): valid JSON, kept
    as this so that the request is still answered under its id, and the parameter refused by name."""

    too_large = True  # (rtvc.settings.from_table: "is too large", not "has the wrong type")

    def __init__(self, digits: str):
        self.digits = len(digits.lstrip("-"))
        self.negative = digits.startswith("-")

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def quoted(value: Any) -> str:
    """A value as an error message quotes it: as JSON, cut to 40 characters (a LongNumber by its size)."""
    if isinstance(value, LongNumber):  # (a number, not the string its repr would be quoted as)
        return repr(value)
    try:
        return json.dumps(value, default=repr)[:40]
    except RecursionError:  # (parse's json.loads took it a few frames higher up the stack)
        return "(a value nested too deeply)"


def _parse_int(text: str) -> int | LongNumber:
    limit = sys.get_int_max_str_digits()
    return LongNumber(text) if limit and len(text.lstrip("-")) > limit else int(text)


def parse(message: str | bytes) -> Call:
    """One websocket message -> a Call, or a Call carrying the error to send back."""
    if not isinstance(message, str):
        return Call(error=RpcError(INVALID_REQUEST, "binary frames are not accepted: send JSON as a text frame"))
    if message.startswith("\ufeff"):  # a byte-order mark (some Windows tools send one) is not content
        message = message[1:]
    try:
        req = json.loads(message, parse_constant=_no_constants, parse_int=_parse_int)
    except RecursionError:
        return Call(error=RpcError(INVALID_REQUEST, "the message is nested too deeply: send one flat request object"))
    except ValueError as e:
        return Call(error=RpcError(PARSE_ERROR, f"not valid JSON ({e}): send one JSON-RPC 2.0 request object"))
    if isinstance(req, list):
        return Call(error=RpcError(INVALID_REQUEST, "batches are not supported: send one request per message"))
    if not isinstance(req, dict):
        return Call(error=RpcError(INVALID_REQUEST, "a request is a JSON object with jsonrpc, method, params, id"))
    call = Call(id=req.get("id"))
    if not (call.id is None or isinstance(call.id, str) or _TYPES["number"](call.id)):
        # (a number past what a double holds, 1e400, or past the digits Python reads, cannot be echoed as given)
        huge = isinstance(call.id, LongNumber) or (isinstance(call.id, float) and math.isinf(call.id))
        words = (
            "is a number too large to echo back: use a string or a smaller number"
            if huge
            else "must be a string, a number or null"
        )
        call.id, call.error = None, RpcError(INVALID_REQUEST, f'"id" {words}')
    elif req.get("jsonrpc") != "2.0":
        call.error = RpcError(INVALID_REQUEST, 'add "jsonrpc": "2.0": this server speaks JSON-RPC 2.0')
    elif not isinstance(req.get("method"), str):
        call.error = RpcError(INVALID_REQUEST, '"method" must be a string, e.g. "status.get"')
    elif not isinstance(params := req.get("params", {}), dict | list):
        call.error = RpcError(INVALID_REQUEST, '"params" must be an object (parameters by name), or left out')
    else:  # a valid request: without "id" it is a notification, answered by nothing, not even an error
        call.name, call.notify = req["method"], "id" not in req
        if isinstance(params, list):
            call.error = RpcError(INVALID_PARAMS, '"params" must be an object: parameters are passed by name')
        else:
            call.params = params
    return call


def _check_params(name: str, m: Method, params: dict[str, Any]) -> None:
    for key in params:
        if key not in m.params:
            allowed = ", ".join(m.params) or "none"
            raise RpcError(INVALID_PARAMS, f"{name}: unknown parameter '{key[:40]}': its parameters are {allowed}")
    for key, p in m.params.items():
        if key not in params:
            if p.required:
                raise RpcError(INVALID_PARAMS, f"{name}: missing parameter '{key}' ({p.type}: {p.doc})")
            continue
        v = params[key]
        if p.type == "number" and (isinstance(v, LongNumber) or (isinstance(v, float) and math.isinf(v))):
            # (a number all the same: "must be a number" was said of a 5000-digit one; the range is what it is past)
            where = f": from {p.lo:g} to {p.hi:g}" if p.lo is not None and p.hi is not None else ""
            low = v.negative if isinstance(v, LongNumber) else v < 0  # (-Infinity, -777...: too small)
            raise RpcError(INVALID_PARAMS, f"{name}: '{key}' = {quoted(v)} is too {'small' if low else 'large'}{where}")
        if not _TYPES[p.type](v):
            raise RpcError(INVALID_PARAMS, f"{name}: '{key}' = {quoted(v)} must be {_A_TYPE[p.type]}: {p.doc}")
        if p.lo is not None and p.hi is not None and not p.lo <= v <= p.hi:
            shown = quoted(v)
            raise RpcError(INVALID_PARAMS, f"{name}: '{key}' = {shown} is out of range: from {p.lo:g} to {p.hi:g}")


async def execute(call: Call, caller: Caller, methods: dict[str, Method]) -> str | None:
    """Run a parsed call; the reply to send, or None for a notification."""
    try:
        if call.error is not None:
            raise call.error
        if not caller.authed and call.name != "auth":  # (before the lookup: every method answers this before auth)
            raise RpcError(UNAUTHORIZED, "not authenticated: send auth {token} first (`rtvc token` prints it)")
        m = methods.get(call.name)
        if m is None:
            lower = {name.lower(): name for name in methods}  # (method names are lower case: MUTE.SET was no match)
            near = [lower[n] for n in difflib.get_close_matches(call.name.lower(), lower, n=1, cutoff=0.5)]
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise RpcError(METHOD_NOT_FOUND, f"unknown method '{call.name[:60]}': {hint}server.info lists them")
        _check_params(call.name, m, call.params)
        result = await m.handler(caller, **call.params)
    except RpcError as e:
        return None if call.notify else reply(call.id, error=e)
    except ConfigError as e:  # a value the controller refused: names the key and the allowed range
        return None if call.notify else reply(call.id, error=RpcError(INVALID_PARAMS, str(e)))
    except Exception as e:  # a bug: reported and logged; the daemon keeps serving
        log.exception("%s: %s failed", caller.id, call.name)
        err = RpcError(INTERNAL_ERROR, f"internal error in {call.name}: {type(e).__name__}: {e} (please report it)")
        return None if call.notify else reply(call.id, error=err)
    return None if call.notify else reply(call.id, result)


# -- the reference ------------------------------------------------------------------------------------
_INTRO = """# rtvc control API

Generated from the method table (`rtvc/control/methods.py`) by `python -m rtvc.control.rpc --markdown`;
edit the table, not this file.

## Connecting

- WebSocket `ws://127.0.0.1:47800/rpc` (`control.port` in config.toml), text frames, one JSON-RPC 2.0
  request per message, parameters by name. Batches are refused (-32600).
- Authenticate first: `{"jsonrpc":"2.0","id":1,"method":"auth","params":{"token":"..."}}`, or connect to
  `/rpc?token=...` (tools that cannot send a first message). `rtvc token` prints the token and the dock URL.
  Before `auth`, every other method answers -32001. A wrong token (an empty `?token=` too) closes the
  connection with code 4001, and so does no `auth` within AUTH_S seconds; spaces or a line end around a
  pasted token are not part of it. `rtvc token --new` renews the token: within a second the daemon
  accepts only the new one and closes (4001) the connections that logged in with the old one.
- Browsers: only pages from `http://127.0.0.1:PORT`, `http://localhost:PORT`, the address in `control.bind`
  (the dock, served at `/dock`) and `control.origins`; with `control.allow_remote`, also the dock opened from
  another machine (a page from the address in the Host header). Native tools send no Origin header and are
  allowed. The Host header must name a loopback address or `control.bind`, with the port (DNS rebinding),
  unless `control.allow_remote`.
- Limits: a message over `control.max_frame_kb` KiB closes the connection (1009); past
  `control.max_clients` connections, HTTP 503 (or close 1013); while connections that have not authenticated hold
  slots, a client with the token in its address (`?token=`) takes the oldest one's (closed 1013). A client that
  does not read its messages
  loses meter updates first and is closed (4008) when a reply or state event cannot be queued, or when its
  socket has taken no message for 10 s; if even the close frame cannot be sent (its socket is full), the
  connection is dropped at once. A client that answers no ping (every 10 s, 10 s to answer) is dropped
  (1011): its slot is free within 22 s (a client that stops reading meters at 30 Hz fills no socket for
  minutes: this is what ends it). Up to SEND_QUEUE replies and events wait for a client beyond what its socket
  holds: a client that sends hundreds of requests before it reads any answer is one that does not read.
- Rate: a client's requests are answered at most `control.max_requests_per_s` per second (default 100), after a
  burst of 50 answered at once; those of all clients with the token together at 3 times it, and those of clients
  without it at 20 per second together; a message costs one request per 8 KiB begun. Past it they wait their turn,
  answered in order, none refused (the daemon logs it once per connection): each request takes CPU time the voice
  needs, and one client in a tight loop made the voice crackle. A client with more than 5 s of requests waiting
  at its rate (hundreds sent ahead of their answers) is closed with 4029 ("too many requests"), the rest of them
  unanswered.

```
-> {"jsonrpc":"2.0","id":2,"method":"mute.set","params":{"on":true}}
<- {"jsonrpc":"2.0","id":2,"result":{"on":true}}
<- {"jsonrpc":"2.0","method":"event","params":{"type":"state","changed":["mute","silent"],"by":"client 3",...}}
```

- A request's reply and the events it causes come in no set order: a quick set (`mute.set`, `params.set`)
  is answered before its event; `voices.select` and `profiles.save` send their events (`loading`, then the
  voice) before the reply. Match replies by `id`, and take the state from events or from replies alike.
- A request with no `id` (a JSON-RPC notification) is carried out and not answered; `"id": null` is answered with
  `"id": null`. `auth` on a connection that is logged in answers its client id again with the right token, and
  closes it (4001) with a wrong one.
- When the daemon stops (SIGTERM, Ctrl-C) a subscribed client gets an `engine` event with `state` `stopped`, then
  the close 1001 (going away): reconnect with a delay (a restart of `rtvc serve` keeps the port and the token).
- Refusals before the WebSocket opens are HTTP: 403 with the reason as text (an Origin or Host not allowed),
  503 (too many clients), 426 (a plain GET of `/rpc`), 404 (another path).

## Events (after `events.subscribe`)

| type | when | params |
|---|---|---|
| `state` | any control change, by anyone | `changed` (keys of `state`), `by` (`client N`, `obs`, ...), `state` |
| `engine` | engine state changes (running, voice failed, ...) | `by`: `engine`, `engine` (below), `state` |
| `meters` | `meter_hz`/s | `in_peak`, `in_rms`, `out_peak`, `out_rms` (dBFS; -120: none), `limit_db`, `gate`, timing |

`state` holds `profile`, `voice`, `kind`, `params`, `voice_on`, `monitor`, `mute`, `ptt` {mode, held: how many
clients hold the talk button now, 0 when none}, `silent` (the output is muted now: by `mute`, by push-to-talk
mode with nobody holding, or with no voice; named in `changed` when it changes), `no_voice` (null, or why no voice
plays: the profile `rtvc serve` started with did not load; `profile` is then null, `kind` `none`, `params` {}, and
the output silent, voice on or off, until a `voices.select`; rtvc loads that profile again by itself when its file
or model files change, an event by `profiles`), `gate` {on, threshold_db, hold_ms}, `loading` (a
profile being loaded, or null), `engine` and `links` (outside links such as `obs`, `{}` without `[obs]`: {state,
detail, warnings}, state one of connecting, connected, disconnected, auth failed, stopped (also: `[obs]` set without
`enabled = true`); a change of state, or of the reason it is down, arrives as an event with `changed: ["obs"]`; while
it retries, `detail` keeps why it is down; `warnings`: what `[obs.scenes]` gets wrong now, in words, each a scene
that switches no voice as it stands (a profile missing or that cannot load, a scene renamed in OBS since config.toml
named it, a name OBS has no scene of), `[]` when none; a change of them is an event with `changed: ["obs"]` and
`warned: true`).
`changed: ["profiles"]` (`by`: `profiles`) says a profile was added to, edited in or removed from the profiles
folder (looked at once a second), or that model files a profile names were put in place or moved away, or changed
after a load failed on them (its mark in `voices.list` changed): `profiles` {added, removed, edited, model_files}
names them, and `voices.list` has the new list; a `profiles.save` says it in its own event (`changed: ["profile",
"voice", "profiles"]`, by the client that saved).
`changed: ["devices"]` says a `devices.select` switched the sound devices (or a `devices.list` with `rescan` reopened
them: the same devices, read again), or (`by`: `pipewire`)
that rtvc followed PipeWire's default devices to new ones: `devices.list` has them; `state` holds no devices key
(devices reopened after a failure show in `engine` events: the state goes back to `running`). Under JACK, `changed:
["routing"]` (`by`: `jack`) says connections of rtvc's ports were lost because the program at their other end closed
(`error` says which, and that rtvc connects them again), or were made again when it came back: `routing` {lost,
restored, dropped, waiting}, each a list of [rtvc's port, the other port]; `devices.list`'s `in_use.waiting` lists those
still waited for, also across a reopen of the devices. A connection the user cuts is left cut, and one of a port the
user connects elsewhere meanwhile is `dropped`. Rerouting rtvc's ports (a patchbay) changes `engine.latency`'s device
parts to JACK's figures for the new peers, within a second. A `state` event for a voice that did not load carries
`error`, saying why; where a model file of its profile is why (truncated, of a version rtvc does not run), it names
`profiles` too (`model_files`: that profile), and `voices.list` marks the profile with that error until its file or
those model files change (a `voices.select` of it loads them again all the same). A set that changes nothing
(`mute.set` as it is, `params.set` with the values there) is answered and sends no event. `voices.select` of the
voice already playing loads its profile again (its parameters as the file has them): its events name `loading`,
`profile`, `voice` and `params` though the state may read as before.

The noise gate silences the output while the microphone is quieter than `threshold_db` (dBFS RMS over 10 ms):
it opens at the threshold, closes after `hold_ms` below 6 dB under it and fades out over 100 ms. An opening is
dated back to the start of the window whose level crossed, faded in over 5 ms before it, as far as the output
(which lags by the converter's latency) has not yet played it: a word's start is not cut. `meters.gate` is
`open` or `closed` (`open` while the gate is off); `status.get`'s `engine.gate` has `open` as a boolean and adds
`closed_s`, the seconds of output it has silenced. The gate does not apply to `rtvc convert` (a file).

The output never goes beyond full scale (0 dBFS): where it would (a voice's gain_db raised, a shout), the
limiter lowers the gain just enough, with no added latency, and gives it back at 40 dB/s. `meters.limit_db`
(and `status.get`'s `engine.levels.limit_db`) is what it took off the latest block (0: nothing, the output is
untouched); `engine.limited_blocks` counts the blocks that went beyond full scale. A voice that is limited often
wants a lower gain_db. The limiter does not apply to `rtvc convert` (a float file keeps what is beyond full scale,
and says).

`meters` also holds the block processing time, for a sparkline: `block_ms` (the slowest block since the
previous meters reading, by any client; null if none), `p99_ms` (status.get's `engine.timing.p99_ms`), `budget_ms`
(a block's duration: the real-time limit) and `xruns` (the total so far). `status.get`'s `engine.timing` has
`p50_ms` and `p99_ms` of the last `window_blocks` blocks of the voice playing now (2048 at most: what runs now;
after a voice switch, from the new voice's first block on), and `max_ms`, the slowest block since the start, of
`count`.

`status.get`'s `engine.worker_priority` is the worker thread's scheduling as the system granted it, e.g.
`real-time (SCHED_FIFO 1, below the audio callback's SCHED_FIFO 5)`, or `normal (...)` with the reason and
the fix (stream.realtime off, no permission, or an audio server without real-time scheduling).
`engine.nonfinite` counts blocks that held NaN or infinity and were silenced: `input_blocks` (samples from
the device or clip; replaced by zeros before the voice sees them) and `output_blocks` (a voice's output,
e.g. an fp16 overflow: the block is played as silence and the converter starts clean).
`engine.state` is `voice failed` while the voice raises on its blocks (a GPU out of memory, a driver error):
each such block plays silence (never the dry microphone), the voice is tried again at the next block, and
`engine.voice_errors` {`blocks`, `last`} counts them and quotes the latest error; the devices and the API run
on, so `voices.select` can switch to another voice. A block that converts again makes the state `running`.
`engine.state` is `overloaded` while the voice's median block time exceeds what the worker has per block: the
block's duration (it cannot keep up at all) or the time the prefill guarantees it (`worker_slack_ms`: blocks play
late); `detail` says which, and the fix (a GPU, a longer block, more prefill). A worker that fell behind, or
stalled, drops unconverted the blocks whose output slot has gone by (`engine.skipped_blocks` counts them) and
input the ring overwrote (counted as input overruns), so the latency stays the declared one after it catches up.
`engine.overload` {`blocks`, `last`}: how many blocks were converted while overloaded, and the latest such words.
An audio server that changes its period under running streams (JACK's buffer size, PipeWire's quantum): once
the callbacks have had the new size for a quarter of a second, the engine plans its latency for it (a gap of a
few ms, once); `engine.latency` is then the new one, `engine.detail` says what changed (an `engine` event), and
`engine.period_changes` counts it.
An output or monitor stream on its own device whose callbacks stopped a while (so that it trails the voice by
far more than the prefill) skips ahead to the declared latency when they resume; `xruns.output_skipped_frames`
and `output_skipped_events` count what it never played.
With the virtual microphone (`audio.virtual_mic`) removed from PipeWire while rtvc plays into it, the state stays
`running` and `engine.detail` says that the call hears nothing, and the fix (`rtvc virtual-mic install`), until
rtvc plays into it again. Likewise under JACK when the program that is the input or output device chosen closes (a
USB headset through `alsa_in`, any device under PipeWire's JACK): `running`, and `engine.detail` says which device
is gone and what is not heard, until it is back (rtvc connects it again) or another is chosen. `engine.unheard` is
that text alone ("" otherwise): the dock keeps it on its message line while it holds, the TUI says it there and
shows `engine device gone` on its top line.
An `engine` event's `engine` holds `state`, `detail`, `monitor_error` (below) and `unheard`.
`engine.monitor_device` {`present`, `error`}: whether a monitor (hear myself) stream is open, and why it
stopped if it did (headphones unplugged, or no callbacks for a while): the main output plays on and the state
stays `running`; an `engine` event carries the error as `monitor_error`. A monitor that is lost or removed turns
`monitor` off. `monitor.set` on with no monitor device open is refused (-32002) with the fix; `devices.select`
with `monitor` opens one (an empty string: none), and drops one that was lost when it is not given.
A switch stops the streams and opens them on the new devices (the audio stops for a moment), except on JACK (and
PipeWire's JACK) where the new devices take the streams as they are (the same input channel, one stream or two for
input and output, a monitor or none; mono and stereo speakers alike): there rtvc's running ports are moved to the
new devices' and the audio runs on; the log says "rtvc's JACK ports moved to them". On JACK a switch, a move or a
reopen, cuts only the old device's connections: those the user made to other programs (rtvc's output into OBS)
stay, or are made again on the same ports of each role after a reopen (the first ones, where the new device takes
fewer channels), waited for if their program is closed at the time.
The system's device list is read when rtvc starts. `devices.select` reads it again, stopping the audio for a
moment, when a name it is given is not in it and a new PortAudio (in a child process, the audio running on) lists a
device it lacks (a device plugged in since; a name no device has is refused without a gap; on JACK a client of
exactly that name is moved to without reading it, shown as `[-] NAME` until the list is read again), when the new
devices do not open, and when the current devices failed; `devices.list` with `rescan` does it on request, where
that child's list differs (nothing plugged in or out: nothing stops). Indices then change: the devices
in use, and an index given from the list read before, are found again by name and host API. `devices.list`'s
`in_use.stopped` says why no device runs (one in use is gone), and after a rescan `error` says why the devices in
use did not reopen. On PipeWire's JACK (`audio.virtual_mic`, or under pw-jack) a device left to the default (none
named, or `""` given to `devices.select` for the input or output) is PipeWire's default, and follows it when the
desktop's default changes (a headset plugged in, a choice in the sound settings); `in_use.follows` lists those roles
(hear-myself's speakers among them under `audio.virtual_mic` with no monitor device named). A device named stays.
Under `audio.virtual_mic` the output is rtvc's virtual microphone, what the call records (`in_use.virtual_mic`):
`devices.select` with another `output` is refused (-32002) and names hear-myself's monitor for speakers.
A `rtvc serve` that found no sound devices at its start (no sound card, or a sound server started after it) plays the
virtual device: `in_use.virtual` and `in_use.fallback` (why; the engine's detail says it too). It looks for them (every
3 s whether the system's sound devices changed, PortAudio's list read then or every 30 s) and, once they are there,
starts anew on them with its voice and settings (clients reconnect, on the same port); devices there that it cannot
take (a rate the config asks for that they lack) are said in `in_use.fallback` and the engine's detail.
A `rtvc serve` that started anew (its JACK server restarted, or PortAudio hung: a stream's stop or start, a thread
of its spinning) answers at once, before its devices are back: `in_use.resuming` says why there is no sound yet
(the engine's state is `failed` with the same words), and
`devices.select` is refused (-32004) until they are; it looks for them itself, and starts anew once more when the
JACK server is started again meanwhile (at another rate, say).
Devices in use that failed are looked for every 2 s and reopened when they are back (status says so meanwhile).

## Errors

| code | meaning |
|---|---|
| -32700 | parse error: not JSON |
| -32600 | invalid request (not a JSON-RPC 2.0 request object; a batch; a binary frame) |
| -32601 | method not found (the message suggests the closest name) |
| -32602 | invalid params: the message names the key and the allowed type or range |
| -32603 | internal error (a bug; the daemon keeps serving) |
| -32001 | unauthorized: send `auth` first |
| -32002 | not found: unknown voice or device |
| -32003 | load failed: the voice's files did not load; the current voice stays |
| -32004 | not available here (switching devices on the virtual device; params.set, profiles.save with no voice) |
| -32005 | busy: a voice loads (params.set, profiles.save; a select in an OBS scene's load), devices switch, a learn |
| -32006 | superseded: a later voices.select came in while this one waited for a load; the later one is loaded |

## Methods

| method | params | result | what it does |
|---|---|---|---|
"""


def markdown(methods: dict[str, Method]) -> str:
    rows = []
    for name, m in methods.items():
        ps = []
        for key, p in m.params.items():
            rng = f" {p.lo:g}..{p.hi:g}" if p.lo is not None and p.hi is not None else ""
            ps.append(f"`{key}`{'' if p.required else '?'}: {p.type}{rng}, {p.doc}")
        rows.append(f"| `{name}` | {'<br>'.join(ps) or '-'} | `{m.returns}` | {m.doc} |")
    from rtvc.control.connection import SEND_QUEUE  # (it imports this module)

    intro = _INTRO.replace("AUTH_S", f"{AUTH_TIMEOUT_S:g}").replace("SEND_QUEUE", str(SEND_QUEUE))
    return intro + "\n".join(rows) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m rtvc.control.rpc --markdown > docs/API.md")
    from rtvc.control.methods import METHODS

    sys.stdout.write(markdown(METHODS))
