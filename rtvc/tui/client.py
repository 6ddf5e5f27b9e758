"""The TUI's connection to the daemon: a JSON-RPC client on the control websocket, with reconnect.

It runs on the TUI's own asyncio loop (Textual's), so replies and events reach the widgets without a
thread hand-over. `run()` connects, authenticates, subscribes to state, engine and meter events, hands the
app a fresh snapshot, then reads until the connection ends; then it waits (backoff 0.25 s doubling to 2 s)
and connects again, so a restarted daemon is picked up by itself. A wrong token is not retried (it cannot
get better by itself): `retry()` tries again at once, e.g. after `rtvc token --new`.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from rtvc.control import rpc
from rtvc.control.auth import read_token
from rtvc.errors import ConfigError

# websockets 15 connects through $HTTP(S)_PROXY by default, also to 127.0.0.1 without $NO_PROXY
_NO_PROXY: dict[str, Any] = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
BACKOFF_S = (0.25, 0.5, 1.0, 2.0)  # waits between attempts; the last repeats
# (replies to slow methods come when the work is done; the state events show the work going on meanwhile)
CALL_TIMEOUT_S, SLOW_METHODS = rpc.CALL_TIMEOUT_S, rpc.SLOW_METHODS
METER_HZ = 15.0  # >= 10 Hz meters (the issue), light on the daemon's loop
PING_S = 5.0
FROZEN = "frozen"  # a connected session's end: nothing heard before it (the ping's timeout, the daemon stopped)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    token: str
    # the daemon's token file, when the token came from it: read again at each connection, so a token renewed
    # there (`rtvc token --new`, which disconnects us) is the one the reconnection uses
    token_file: Path | None = None

    def current_token(self) -> str:
        if self.token_file is not None:
            try:
                return read_token(self.token_file)
            except (ConfigError, OSError, ValueError):
                pass  # (the daemon keeps its token too when the file is unusable)
        return self.token

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/rpc"


@dataclass(frozen=True)
class Link:
    """The connection as the app shows it."""

    state: str  # connecting | connected | disconnected | unauthorized
    detail: str = ""
    attempt: int = 0
    client: str = ""  # our id on the daemon ("client 3"): the `by` of our own changes


class CallError(Exception):
    """A request the daemon refused (its message says why), or could not send (not connected)."""

    def __init__(self, method: str, code: int, message: str):
        # the method named once: the daemon's own message may start with it ("profiles.save: no voice plays"), as
        # `rtvc ctl` says it
        super().__init__(message if message.startswith(f"{method}:") else f"{method}: {message}")
        self.method = method
        self.code = code
        self.message = message


class DaemonClient:
    def __init__(
        self,
        endpoint: Endpoint,
        on_link: Callable[[Link], None],
        on_event: Callable[[dict[str, Any]], None],
        on_ready: Callable[[], Awaitable[None]],
        meter_hz: float = METER_HZ,
    ):
        self.endpoint = endpoint
        self.meter_hz = meter_hz
        self._on_link = on_link
        self._on_event = on_event
        self._on_ready = on_ready
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._wake = asyncio.Event()
        self._heard = time.monotonic()  # when the daemon last sent anything
        self.link = Link("connecting")

    def _set(self, link: Link) -> None:
        self.link = link
        self._on_link(link)

    def retry(self) -> None:
        """Try again now (after a wrong token, or to skip the backoff)."""
        self._wake.set()

    async def run(self) -> None:
        """Connect, serve, reconnect; until cancelled."""
        attempt = 0
        while True:
            attempt += 1
            self._set(Link("connecting", self.endpoint.url, attempt))
            refused = await self._session()
            if refused is not None and refused.state == "connected":
                attempt = 0  # it was up: the next wait starts short
                how = (  # (the TUI's own ping timeout was said as the daemon closing the connection)
                    f"stopped answering (nothing for {2 * PING_S:g} s: frozen, or its machine stalled)"
                    if refused.detail == FROZEN
                    else "closed the connection"
                )
                refused = Link("disconnected", f"the daemon at {self.endpoint.url} {how}; reconnecting")
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            assert refused is not None
            self._set(Link(refused.state, refused.detail, attempt))
            self._wake.clear()
            if refused.state == "unauthorized":
                await self._wake.wait()  # no point retrying a wrong token on a timer
                attempt = 0
            else:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass

    async def _session(self) -> Link:
        """One connection, until it ends; how it ended (state 'connected' if it had been up)."""
        url = self.endpoint.url
        token = self.endpoint.current_token()
        # the token in the address too (never shown: `url` is what messages name): a daemon whose every slot is held by
        # sockets that sent none gives the oldest one's to a client that has it (rtvc.control.server._room_for)
        address = f"{url}?token={quote(token, safe='')}"
        try:
            # pings every PING_S, answered within PING_S: a frozen daemon (SIGSTOP, a hung machine) is a lost link
            # within about 10 s, not the ~40 s of the library's defaults (meanwhile the UI showed it as healthy)
            ws = await connect(address, open_timeout=5, close_timeout=1, compression=None, max_size=2**22,
                               ping_interval=PING_S, ping_timeout=PING_S, **_NO_PROXY)  # fmt: skip
        except InvalidStatus as e:
            body = e.response.body.decode(errors="replace").strip() if e.response.body else ""
            return Link("disconnected", f"the daemon at {url} refused the connection: {e.response.status_code} {body}")
        except (InvalidURI, ValueError):  # (its words hold the address, and the address the token: never shown)
            return Link("unauthorized", f"{url} is not an address a websocket can connect to: check --host and --port")
        except TimeoutError:  # (its port took the connection: something is there, and says nothing)
            return Link("disconnected", f"the daemon at {url} does not answer (frozen, or busy starting?); retrying")
        except (OSError, InvalidHandshake) as e:
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            return Link(
                "disconnected",
                f"daemon unreachable at {url}: {why} (start it with `rtvc serve`, or check --host/--port)",
            )
        self._ws = ws
        reader = asyncio.create_task(self._read(ws))
        up = False
        try:
            auth = await self.call("auth", token=token)
            await self.call("events.subscribe", events=["state", "engine", "meters"], meter_hz=self.meter_hz)
            up = True
            self._set(Link("connected", url, 0, auth["client"]))
            await self._on_ready()
            await reader
        except CallError as e:
            if e.code == rpc.UNAUTHORIZED:
                return Link("unauthorized", f"wrong token for {url}: {_without_prefix(e.message)}")
            if not up and ws.close_code == rpc.CLOSE_UNAUTHORIZED:  # (the address's token, refused before auth's reply)
                return Link("unauthorized", f"wrong token for {url}: {_without_prefix(ws.close_reason)}")
            if not up:
                return Link("disconnected", f"{e.method} failed on {url}: {e.message}")
        finally:
            reader.cancel()
            self._ws = None
            self._fail_waiting("the connection closed")
            await ws.close()
        # nothing heard for most of the ping's wait (meters come 15 times a second): the link ended as the daemon froze
        return Link("connected", FROZEN if time.monotonic() - self._heard > PING_S / 2 else "")

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                self._heard = time.monotonic()
                msg = json.loads(text)
                fut = self._waiting.pop(msg.get("id"), None) if "id" in msg else None
                if fut is not None:
                    if not fut.done():
                        fut.set_result(msg)
                elif msg.get("method") == "event":
                    self._on_event(msg["params"])
        except ConnectionClosed:
            pass
        finally:  # (a call sent as the daemon closed, say for a wrong token, gets no reply: it fails now, not in 30 s)
            self._fail_waiting("the connection closed")

    def _fail_waiting(self, why: str) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(CallError("request", 0, why))
        self._waiting.clear()

    async def call(self, method: str, **params: Any) -> Any:
        ws = self._ws
        if ws is None:
            raise CallError(method, 0, f"not connected to the daemon ({self.link.detail or self.endpoint.url})")
        mid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[mid] = fut
        limit = SLOW_METHODS.get(method, CALL_TIMEOUT_S)
        try:
            try:
                await ws.send(rpc.dumps({"jsonrpc": "2.0", "id": mid, "method": method, "params": params}))
            except ConnectionClosed:
                raise CallError(method, 0, "not sent: the connection closed") from None
            # (not wait_for: Python 3.11's raises the reply's error instead of a cancellation that comes with it,
            # and a caller that catches CallError, the status poll, then loops on in a cancelled timer: the UI
            # froze on quit while a reply was pending)
            async with asyncio.timeout(limit):
                reply = await fut
        except ConnectionClosed:
            raise CallError(method, 0, "the connection closed") from None
        except TimeoutError:
            raise CallError(method, 0, f"no reply within {limit:g} s") from None
        finally:
            self._waiting.pop(mid, None)
        if "error" in reply:
            raise CallError(method, reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


def _without_prefix(reason: str) -> str:
    """The daemon's words after its own "wrong token: " (the message said it twice)."""
    return reason.removeprefix("wrong token: ")
