"""`rtvc ctl`: one request to the running daemon, for a desktop's keyboard shortcuts and for shell scripts.

A desktop's shortcut runs a command (GNOME: Settings > Keyboard > Custom Shortcuts; KDE: Shortcuts > Custom), and
the terminal UI's keys work only while its window has the focus: `rtvc ctl mute` bound to a key mutes the voice from
inside a game. Each call connects to the control API (docs/API.md) as any client does, with this machine's token,
sends its request, prints what it changed in one line and exits: 0 done, 2 refused (the reason and the fix on
stderr, as every rtvc error). Nothing of the engine is imported: a call takes a Python start and a connection.

    rtvc ctl status                                   voice, on/off, mute, gate, latency, xruns
    rtvc ctl mute | voice | monitor | gate | ptt-mode [on | off | toggle]   (toggle when not given)
    rtvc ctl gate learn                               listen to the room for 2 s (quiet), set the threshold
    rtvc ctl select NAME | next | previous            next/previous: in voices.list's order, round
    rtvc ctl pitch +N | -N | =N                       semitones up or down from now, or to N
    rtvc ctl call METHOD [JSON]                       any method; its result printed as JSON
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rtvc.control.rpc import CALL_TIMEOUT_S, SLOW_METHODS
from rtvc.errors import ConfigError, RtvcError

OPEN_TIMEOUT_S = 5.0
# the switches: the action's name -> (the API's name for it, what the line says)
SWITCHES = {
    "mute": ("mute", "mute"),
    "voice": ("voice", "voice changer"),
    "monitor": ("monitor", "hear myself"),
    "gate": ("gate", "noise gate"),
    "ptt-mode": ("ptt.mode", "push-to-talk mode"),
}
ACTIONS = ("status", *SWITCHES, "select", "pitch", "call")
USAGE = (
    "rtvc ctl status | mute|voice|monitor|gate|ptt-mode [on|off|toggle] | select NAME|next|previous | "
    "pitch +N|-N|=N | call METHOD [JSON]"
)


def serve_processes() -> list[str]:
    """The process numbers of this user's `rtvc serve` (`rtvc run` with its UI starts one), from /proc ([] where
    there is none, or no /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.stat().st_uid != os.getuid() or cmdline.parent.name == str(os.getpid()):
                continue
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # (ended meanwhile)
            continue
        for i, arg in enumerate(args[:3]):
            if os.path.basename(arg) == b"rtvc" and args[i + 1 : i + 2] == [b"serve"]:
                found.append(cmdline.parent.name)
                break
    return sorted(found, key=int)


class CallError(RtvcError):
    """The daemon answered the request with an error."""


@dataclass(frozen=True)
class Daemon:
    host: str  # as a URL takes it ([::1] for IPv6)
    port: int
    token: str
    token_file: Path | None = None  # where the token was read (None: given)


class TokenRefused(RtvcError):
    """The daemon closed the connection for a wrong token (4001)."""


class _Refused(Exception):
    """The daemon refused the token (Connection: said by _refused)."""


RENEWED_S = 2.5  # a token file written this recently may not be the daemon's yet (it looks every TOKEN_CHECK_S)


def _renewed_wait(token_file: Path | None) -> float | None:
    """How long to wait before asking again with a token file written a moment ago (None: not so)."""
    try:
        age = time.time() - token_file.stat().st_mtime if token_file is not None else None
    except OSError:
        return None
    return None if age is None or not -1.0 < age < RENEWED_S else RENEWED_S - max(age, 0.0)


def _refused(daemon: Daemon) -> RtvcError:
    return RtvcError(
        f"the daemon at {daemon.host}:{daemon.port} refused the token"
        + (f" in {daemon.token_file}" if daemon.token_file else " given with --token"),
        "the daemon runs as another user or with another $XDG_CONFIG_HOME, or its token was renewed: pass "
        "--token (`rtvc token` where the daemon runs prints it)"
        if daemon.token_file
        else "`rtvc token` where the daemon runs prints it",
    )


class Connection:
    """One authenticated connection, requests answered in turn (events, unasked for, are not subscribed)."""

    def __init__(self, daemon: Daemon):
        try:
            self._open(daemon)
        except _Refused:
            wait = _renewed_wait(daemon.token_file)
            if wait is None:
                raise _refused(daemon) from None
            # (`rtvc token --new` a moment ago: the daemon takes the new token within TOKEN_CHECK_S; a script that
            # renewed it and asked at once was refused, a review)
            time.sleep(wait)
            try:
                self._open(daemon)
            except _Refused:
                raise _refused(daemon) from None

    def _open(self, daemon: Daemon) -> None:
        from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
        from websockets.sync.client import connect

        where = f"{daemon.host}:{daemon.port}"
        try:
            # (no proxy: websockets 15 goes through $HTTP_PROXY by default, 127.0.0.1 too)
            # the token in the address too (never shown: messages name `where`): a daemon whose every slot is held by
            # sockets that sent none gives the oldest one's to a client that has it (rtvc.control.server._room_for)
            address = f"ws://{where}/rpc?token={quote(daemon.token, safe='')}"
            self._ws = connect(address, open_timeout=OPEN_TIMEOUT_S, proxy=None, max_size=2**24)
        except InvalidStatus as e:
            raise RtvcError(
                f"the daemon at {where} refused the connection (HTTP {e.response.status_code}: "
                f"{e.response.body.decode(errors='replace').strip() or 'no reason given'})",
                "see control.max_clients and control.bind in config.toml",
            ) from None
        except TimeoutError as e:  # (before OSError, its base: a port that takes the connection and never answers)
            raise RtvcError(
                f"something at {where} takes connections but does not answer ({e}): an rtvc daemon stopped or hung "
                "(Ctrl-Z in its terminal? a stalled machine?), or another program on that port",
                "`fg` in its terminal if it was stopped there; else restart it (`systemctl --user restart rtvc` for "
                "the service, or stop it and run `rtvc serve` again)",
            ) from None
        except (OSError, InvalidHandshake, InvalidURI) as e:
            serving = serve_processes()
            if serving:  # (a review: a serve starting anew after PipeWire restarted was told to be started, and the
                # one started then took its port: the restarted serve ended)
                raise RtvcError(
                    f"no rtvc daemon answers at {where} ({type(e).__name__}: {e}), but rtvc serve runs (process "
                    f"{', '.join(serving)}): it opens its control port once it has started (up to ~15 s when it starts "
                    "anew after the sound server came back)",
                    "wait a moment and try again, rather than starting another; if it stays so, that serve listens "
                    "elsewhere: give its port with --port",
                ) from None
            raise RtvcError(
                f"no rtvc daemon answers at {where} ({type(e).__name__}: {e})",
                "start it with `rtvc serve` (or `rtvc run`), or give its port with --port",
            ) from None
        self._where = where
        self._next_id = 1
        try:
            self.call("auth", token=daemon.token)
        except (CallError, TokenRefused):  # (refused in the address: the socket closed, 4001; by auth: its error)
            self.close()
            raise _Refused() from None

    def call(self, method: str, /, **params: Any) -> Any:  # (positional: a parameter may be named "method")
        from websockets.exceptions import ConnectionClosed

        request: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params:
            request["params"] = params
        self._next_id += 1
        timeout = SLOW_METHODS.get(method, CALL_TIMEOUT_S)
        try:
            self._ws.send(json.dumps(request))
            while True:
                reply = json.loads(self._ws.recv(timeout=timeout))
                # (an error with no id answers a request the daemon could not read: requests go one at a time)
                if isinstance(reply, dict) and (
                    reply.get("id") == request["id"] or (reply.get("id") is None and "error" in reply)
                ):
                    break
        except TimeoutError:
            raise RtvcError(
                f"the daemon at {self._where} did not answer {method} within {timeout:g} s",
                "see its log (rtvc serve's output)",
            ) from None
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else None
            if code == 4001:
                raise TokenRefused(
                    f"the daemon at {self._where} refused the token ({e.rcvd.reason or 'wrong token'})",
                    "give the one `rtvc token` prints with --token (after `rtvc token --new`, the new one)",
                ) from None
            raise RtvcError(f"the daemon at {self._where} closed the connection during {method} ({e})") from None
        error = reply.get("error")
        if error is not None:
            message = str(error.get("message", error))
            said = message if message.startswith(f"{method}:") else f"{method}: {message}"  # (once, not twice)
            raise CallError(f"{said} ({error.get('code')})")
        return reply.get("result")

    def close(self) -> None:
        self._ws.close()


def daemon_for(cfg: Any, port: int, token: str | None) -> Daemon:
    """The daemon this machine's config points at, with this machine's token unless one is given."""
    from rtvc.control.auth import connect_host, read_token, token_path

    host = connect_host(cfg.control, port).rpartition(":")[0]
    if token is not None:
        return Daemon(host, port, token.strip())
    path = token_path()
    if not path.is_file():
        raise ConfigError(
            f"no token file at {path}: is the daemon running on this machine as this user?",
            "start it with `rtvc serve`, or pass --token (`rtvc token` on the daemon's machine prints it)",
        )
    return Daemon(host, port, read_token(path), path)


def run(daemon: Daemon, action: str, args: list[str]) -> str:
    """Carry out one action; returns the line to print. RtvcError for what the daemon or the user got wrong."""
    check_args(action, args)  # (before connecting: a wrong word is said as such, daemon or none)
    conn = Connection(daemon)
    try:
        if action == "status":
            return status_line(conn.call("status.get"))
        if action in SWITCHES:
            return _switch(conn, action, args)
        if action == "select":
            return _select(conn, args)
        if action == "pitch":
            return _pitch(conn, args)
        return _raw(conn, args)
    finally:
        conn.close()


def check_args(action: str, args: list[str]) -> None:
    """The action's words, checked as the action itself checks them (ConfigError), with no daemon asked."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown action '{action}'", f"use {USAGE}")
    if action == "status":
        _no_more(action, args, 0)
    elif action in SWITCHES:
        _switch_how(action, args)
    elif action == "select":
        _select_name(args)
    elif action == "pitch":
        _pitch_value(args)
    else:
        _raw_call(args)


def _no_more(action: str, args: list[str], most: int) -> None:
    if len(args) > most:
        raise ConfigError(f"'{action}' takes {most or 'no'} argument{'s' if most != 1 else ''}, got {args}", USAGE)


def _switch_how(action: str, args: list[str]) -> str:
    _no_more(action, args, 1)
    how = args[0] if args else "toggle"
    if how not in ("on", "off", "toggle") and not (action == "gate" and how == "learn"):
        also = " (or learn)" if action == "gate" else ""
        raise ConfigError(f"'{action} {how}': say on, off or toggle{also}", f"e.g. rtvc ctl {action} toggle")
    return how


def _switch(conn: Connection, action: str, args: list[str]) -> str:
    how = _switch_how(action, args)
    if action == "gate" and how == "learn":  # (the room for 2 s, the user quiet: the threshold from it)
        got = conn.call("gate.learn")
        room = f"{got['room_db']:g} dBFS at its loudest"  # (digital silence is refused: a muted microphone)
        return f"noise gate on ({got['threshold_db']:g} dBFS; the room: {room})"
    api, words = SWITCHES[action]
    if how == "toggle" and action != "ptt-mode":
        result = conn.call(f"{api}.toggle")
    elif how == "toggle":  # (ptt.mode has no toggle: read it, then set the other way)
        now = conn.call("status.get")["control"]["ptt"]["mode"]
        result = conn.call(f"{api}", on=not now)
    else:
        result = conn.call(f"{api}.set" if action != "ptt-mode" else api, on=how == "on")
    line = f"{words} {'on' if result['on'] else 'off'}"
    if action == "gate" and result["on"]:
        line += f" ({result['threshold_db']:g} dBFS)"
    return line


def _select_name(args: list[str]) -> str:
    if len(args) != 1:
        raise ConfigError("'select' takes one profile name, next or previous", USAGE)
    return args[0]


def _select(conn: Connection, args: list[str]) -> str:
    name = _select_name(args)
    if name in ("next", "previous"):
        listed = conn.call("voices.list")
        names = [v["name"] for v in listed["voices"]]
        loadable = [v["name"] for v in listed["voices"] if not v.get("error")]
        if not loadable:
            raise RtvcError("no voice in the profiles folder can load", "see `rtvc ctl call voices.list`")
        # (the playing voice's place in the whole list, its file's error or not: a profile edited into an error
        # while it played sent next and previous to the ends of the list, a review)
        active, step = listed.get("active"), 1 if name == "next" else -1
        at = names.index(active) if active in names else (-1 if name == "next" else 0)
        name = next(n for k in range(1, len(names) + 1) if (n := names[(at + k * step) % len(names)]) in loadable)
    state = conn.call("voices.select", name=name)
    label = next((v["label"] for v in conn.call("voices.list")["voices"] if v["name"] == state["profile"]), "")
    return f"voice '{state['profile']}'" + (f" ({label})" if label and label != state["profile"] else "")


def _pitch_value(args: list[str]) -> tuple[str, float]:
    if len(args) != 1:
        raise ConfigError("'pitch' takes one number of semitones: +N or -N (from now), or =N (to N)", USAGE)
    text = args[0]
    try:
        value = float(text.removeprefix("="))
    except ValueError:
        raise ConfigError(f"'pitch {text}': not a number of semitones", "e.g. rtvc ctl pitch +1") from None
    if not math.isfinite(value):
        raise ConfigError(f"'pitch {text}': not a number of semitones", "e.g. rtvc ctl pitch +1")
    if text[:1] not in ("+", "-", "="):  # (a bare 3 read as =3 beside -3 read as "3 down" was a trap)
        raise ConfigError(
            f"'pitch {text}': say which: +{text} (up from now) or ={text} (to {text})", "e.g. rtvc ctl pitch =0"
        )
    return text, value


def _pitch(conn: Connection, args: list[str]) -> str:
    text, value = _pitch_value(args)
    got = conn.call("params.get")
    if "pitch" not in got["ranges"]:
        raise RtvcError(
            f"the voice playing ({got['kind']}) has no pitch to change", "select a voice with one (rtvc ctl select)"
        )
    lo, hi = got["ranges"]["pitch"]["min"], got["ranges"]["pitch"]["max"]
    was = got["values"]["pitch"]
    want = was + value if text[0] in "+-" else value  # (=-4: to that pitch)
    pitch = min(max(want, lo), hi)  # (a key pressed once more at the end of the range stays there)
    conn.call("params.set", values={"pitch": pitch})
    edge = ", its highest" if pitch == hi and want > hi else ", its lowest" if pitch == lo and want < lo else ""
    return f"pitch now {pitch:+g} semitones{edge} (was {was:+g})"  # ("pitch +4" after +1 read as a change of 4)


def _not_json(word: str) -> float:
    raise ValueError(f"{word} is not a JSON number")  # (Python's json reads NaN and Infinity; JSON has neither)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond what a number can hold")
    return value


def _raw(conn: Connection, args: list[str]) -> str:
    method, params = _raw_call(args)
    return json.dumps(conn.call(method, **params), indent=2)


def _raw_call(args: list[str]) -> tuple[str, dict[str, Any]]:
    if not args or len(args) > 2:
        raise ConfigError("'call' takes a method and, if it has any, its parameters as one JSON object", USAGE)
    params: Any = {}
    if len(args) == 2:
        try:
            params = json.loads(args[1], parse_constant=_not_json, parse_float=_finite)
        except json.JSONDecodeError as e:
            raise ConfigError(f"the parameters are not JSON ({e})", """quote them, e.g. '{"on": true}'""") from None
        except ValueError as e:
            raise ConfigError(f"the parameters are not JSON ({e})", "give numbers as finite decimals") from None
        if not isinstance(params, dict):
            raise ConfigError("the parameters must be a JSON object of name: value", """e.g. '{"on": true}'""")
    return args[0], params


def status_line(status: dict[str, Any]) -> str:
    c, e = status["control"], status["engine"]
    if c.get("no_voice"):  # (the start profile did not load: silence until a voice is selected)
        parts = [f"no voice, output silent ({c['no_voice']}; `rtvc ctl select NAME` picks one)"]
    else:
        parts = [f"voice '{c['profile']}' {'on' if c['voice_on'] else 'off (microphone as it is)'}"]
    if c.get("loading"):
        parts.append(f"loading '{c['loading']}'")
    parts.append(f"mute {'on' if c['mute'] else 'off'}")
    if c["ptt"]["mode"]:
        parts.append(f"push-to-talk ({'held' if c['ptt']['held'] else 'not held'})")
    parts.append(f"hear myself {'on' if c['monitor'] else 'off'}")
    gate = c["gate"]
    parts.append(f"gate {'on ' + format(gate['threshold_db'], 'g') + ' dBFS' if gate['on'] else 'off'}")
    obs = c.get("links", {}).get("obs")
    if obs and obs.get("state") != "connected":  # (down: `rtvc ctl call status.get` has why)
        parts.append(f"OBS {obs['state']}")
    if obs and obs.get("warnings"):  # ([obs.scenes]'s problems: a scene that will switch no voice; each said below)
        parts.append(f"OBS scenes: {len(obs['warnings'])} problem(s)")
    if e.get("latency"):
        parts.append(f"latency {e['latency']['ms']['total']:.1f} ms")
    parts.append(f"xruns {e['xruns']['total']}")
    line = ", ".join(parts)
    state = e.get("state", "")
    if state != "running" or e.get("detail"):  # (running with a detail: the virtual microphone removed, the call
        # hearing nothing; a program rtvc was connected to gone)
        line += f"; engine {state}" + (f": {e['detail']}" if e.get("detail") else "")
    return "\n".join([line, *(f"  {said}" for said in (obs or {}).get("warnings", []))])
