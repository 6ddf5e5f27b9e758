"""One websocket client of the control server: its requests in, its replies and events out, on the loop.

Outgoing messages go through a bounded queue drained by the connection's own writer task, in order (a reply
before the events its change caused; a slow method's changes, made on a worker thread, are announced as they
happen: their events can come before its reply). A client that stops reading fills its queue: meter updates
are dropped first (counted), and when a reply or a state event no longer fits, or one message has waited
STALL_S for the socket to take it, the client is closed (4008) so the daemon never buffers without bound or
waits on it (a client subscribed to meters alone never filled the queue: it kept its slot for ever).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from rtvc.control import auth, rpc
from rtvc.control.methods import Hub

log = logging.getLogger("rtvc.control")
SEND_QUEUE = 256  # messages waiting for a client (after the socket's and websockets' own buffers)
SOCKET_SEND_BUFFER = 128 * 1024  # the kernel's share, fixed: autotuning would hold megabytes for a stuck client
METER_ROOM = 16  # meters are sent only while fewer than this many messages wait: state events come first
KICK_TIMEOUT_S = 1.0
STALL_S = 10.0  # a message the socket has not taken in this long: the client stopped reading
# Requests are taken at most control.max_requests_per_s per client, and ALL_CLIENTS times that from all together: a
# client's parse, dispatch and reply hold Python's lock, which the audio worker needs for each block. A review: one
# local client looping on a request (a Stream Deck plugin polling status.get, a chat bot's bug), even without the
# token, made the voice crackle from ~500-800 requests/s (status.get at 891/s: 0.72 s of gaps in 10 s). Past the
# rate a client's requests wait their turn (read, not answered yet): answered later, in order. A fader sending
# params.set at 60 Hz, a plugin polling at 10 Hz are far under the default 100. A message costs a request per
# MESSAGE_BYTES begun.
# Clients that have not sent the token share a small budget of their own: they have nothing to ask but `auth`, and
# twenty of them sending 60 KB frames put half a second of wait on an authorised client's push-to-talk (a review).
# A client with more than MAX_BEHIND_S of requests waiting at its rate is closed (4029, said). (Left in its socket
# instead, they held its pong to the keepalive ping unread, and it was dropped (1011) with its requests, unsaid: a
# second review; a knob's changes answered 11 s late are no use either.)
ALL_CLIENTS = 3
BURST = 50.0  # requests answered at once before the rate holds
UNAUTHORISED_RATE = 20.0  # requests per second from all clients without the token, together
MAX_BEHIND_S = 5.0
MESSAGE_BYTES = 8192
_background: set[asyncio.Task[Any]] = set()  # tasks that outlive their connection (a voice still loading)


class Pace:
    """A token bucket that lends: take() returns how long to wait before the request it is asked for."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.level, self._t = burst, time.monotonic()

    def take(self, cost: float) -> float:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self._t) * self.rate) - cost
        self._t = now
        return max(0.0, -self.level / self.rate)


class Connection:
    def __init__(
        self,
        id_: str,
        ws: ServerConnection,
        hub: Hub,
        token: Callable[[], str],
        meters: Callable[[], str],
        rate: float = 100.0,  # control.max_requests_per_s
        pace_all: Pace | None = None,  # the server's, shared by its clients
        pace_unauthorised: Pace | None = None,  # the server's, shared by its clients without the token
    ):
        self.id = id_
        self.ws = ws
        self.hub = hub
        self.authed = False
        self.opened = time.monotonic()
        self.events: frozenset[str] = frozenset()
        self.meter_hz: float | None = None
        self.closing = False
        self.dropped_meters = 0
        self._token = token  # the daemon's token now (`rtvc token --new` changes it while we run)
        self._meters = meters
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)
        self._close_after_reply: tuple[int, str] | None = None
        self._queue: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue(SEND_QUEUE)
        self._writer = asyncio.create_task(self._write())
        self._meter_task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._pace = Pace(rate, BURST)
        self._pace_all = pace_all or Pace(ALL_CLIENTS * rate, BURST)
        self._pace_unauthorised = pace_unauthorised or Pace(UNAUTHORISED_RATE, BURST)
        self.paced = 0  # requests that waited for the rate (said once in the log, counted in the summary)
        self._queued = 0  # the cost of the messages read and not yet answered

    # -- what handlers see (methods.Session) ----------------------------------------------------------
    def login(self, token: str) -> bool:
        """`token` without the spaces or line end a paste may bring (a token has none of its own)."""
        if auth.token_matches(token.strip() if isinstance(token, str) else token, self._token()):
            self.authed = True
            return True
        log.warning("%s: wrong token, closing it", self.id)
        self._close_after_reply = (rpc.CLOSE_UNAUTHORIZED, "wrong token: run `rtvc token` and use the token it prints")
        return False

    def subscribe(self, events: list[str], meter_hz: float | None) -> None:
        self.events = frozenset(events)
        if meter_hz != self.meter_hz:
            if self._meter_task is not None:
                self._meter_task.cancel()
            self._meter_task = asyncio.create_task(self._send_meters(meter_hz)) if meter_hz else None
            self.meter_hz = meter_hz

    # -- in -----------------------------------------------------------------------------------------
    async def run(self, methods: dict[str, rpc.Method]) -> None:
        """Serve requests until the client goes, or is sent away. Its messages are read as they come (its socket
        read, its pongs to the keepalive taken: a client waiting on the rate was dropped by the keepalive, its
        requests lost unsaid), and answered at the rate (_paced)."""
        inbox: asyncio.Queue[tuple[str | bytes, int] | BaseException | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(inbox))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + rpc.AUTH_TIMEOUT_S
        try:
            while not self.closing:
                try:
                    # (looked at on each message too: with a backlog, get() returns without a wait, and a client
                    # sending without the token held its slot past the deadline: a review)
                    if not self.authed and loop.time() >= deadline:
                        raise TimeoutError
                    async with asyncio.timeout_at(None if self.authed else deadline):
                        item = await inbox.get()
                except TimeoutError:
                    self.close_soon(rpc.CLOSE_UNAUTHORIZED, f"no auth within {rpc.AUTH_TIMEOUT_S:g} s: send auth first")
                    break
                if isinstance(item, BaseException):
                    raise item
                if item is None:  # (closed for too many requests)
                    break
                message, cost = item
                self._queued -= cost
                await self._paced(cost)
                call = rpc.parse(message)
                m = methods.get(call.name)
                if m is not None and m.slow and self.authed and call.error is None:
                    task = asyncio.create_task(self._answer(call, methods))  # the loop keeps serving this client too
                    _background.add(task)
                    task.add_done_callback(_background.discard)
                else:
                    await self._answer(call, methods)
                # the writer's turn: frames already buffered come back from recv() without a wait, and a quick answer
                # has none either, so a burst of requests from a client that reads filled the queue unsent (4008)
                await asyncio.sleep(0)
        finally:
            reader.cancel()
        await asyncio.wait({self._writer}, timeout=2 * KICK_TIMEOUT_S)  # let the writer deliver the close frame

    async def _read(self, inbox: asyncio.Queue[tuple[str | bytes, int] | BaseException | None]) -> None:
        """The client's messages into `inbox`, each with its cost; past MAX_BEHIND_S of them at its rate, the client
        is closed (4029) and None put; the connection's end (ConnectionClosed) is put as it is."""
        limit = BURST + MAX_BEHIND_S * self._pace.rate
        try:
            while True:
                message = await self.ws.recv()
                cost = 1 + len(message) // MESSAGE_BYTES
                self._queued += cost
                if self._queued > limit:
                    log.warning(
                        "%s sends requests faster than %g/s, over %g s of them waiting: closed "
                        "(control.max_requests_per_s)", self.id, self._pace.rate, MAX_BEHIND_S,
                    )  # fmt: skip
                    self.close_soon(
                        rpc.CLOSE_TOO_MANY,
                        f"too many requests: over {MAX_BEHIND_S:g} s of them at {self._pace.rate:g}/s waiting "
                        "(control.max_requests_per_s)",
                    )
                    inbox.put_nowait(None)
                    return
                inbox.put_nowait((message, cost))
        except Exception as e:  # (ConnectionClosed: the client went; another: raised where recv() raised it before)
            inbox.put_nowait(e)

    async def _paced(self, cost: int) -> None:
        """Wait for this request's turn: the client's own rate, and all clients' (those with the token), or that of
        the clients without it."""
        shared = self._pace_all if self.authed else self._pace_unauthorised
        wait = max(self._pace.take(cost), shared.take(cost))
        if wait <= 0:
            return
        if not self.paced:
            log.info(
                "%s sends requests faster than %g/s (all clients: %g/s): they are answered at that rate, so that "
                "the audio keeps its share of the CPU (control.max_requests_per_s)", self.id, self._pace.rate,
                self._pace_all.rate,
            )  # fmt: skip
        self.paced += 1
        await asyncio.sleep(wait)

    async def _answer(self, call: rpc.Call, methods: dict[str, rpc.Method]) -> None:
        text = await rpc.execute(call, self, methods)
        if text is not None:
            self.send(text)
        if self._close_after_reply is not None:
            self.close_soon(*self._close_after_reply)

    # -- out ----------------------------------------------------------------------------------------
    def send(self, text: str, droppable: bool = False) -> None:
        if self.closing:
            return
        if droppable and self._queue.qsize() >= METER_ROOM:
            self.dropped_meters += 1
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self._kick()

    def close_soon(self, code: int, reason: str) -> None:
        """Close after the messages already queued."""
        if self.closing:
            return
        self.closing = True
        try:
            self._queue.put_nowait((code, reason))
        except asyncio.QueueFull:
            self._kick()

    def _kick(self, why: str = "") -> None:
        """A client that does not read: no polite wait behind its full buffers."""
        self.closing = True
        why = why or f"{self._queue.qsize()} queued"
        log.warning("%s does not read its messages (%s): closing it", self.id, why)
        self._writer.cancel()
        task = asyncio.create_task(self._close_or_abort(rpc.CLOSE_TOO_SLOW, "too slow: read your messages"))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _close_or_abort(self, code: int, reason: str) -> None:
        if self.ws.transport.get_write_buffer_size() > 0:  # it stopped reading: a close frame could not get out
            self.ws.transport.abort()
            return
        try:
            await asyncio.wait_for(self.ws.close(code, reason), KICK_TIMEOUT_S)
        except (TimeoutError, ConnectionClosed):
            pass
        self.ws.transport.abort()

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, tuple):
                    await self.ws.close(*item)
                    return
                try:
                    async with asyncio.timeout(STALL_S):
                        await self.ws.send(item)
                except TimeoutError:
                    self._kick(f"its socket took nothing for {STALL_S:g} s")
                    return
        except ConnectionClosed:
            pass

    async def _send_meters(self, hz: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += 1.0 / hz
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                due = loop.time()  # the loop was busy: carry on at the rate, no burst to catch up
            self.send(self._meters(), droppable=True)

    def shutdown(self) -> None:
        for task in (self._writer, self._meter_task):
            if task is not None:
                task.cancel()

    def summary(self) -> str:
        s = f" after {time.monotonic() - self._started:.1f} s"
        s += f", {self.dropped_meters} meter updates dropped" if self.dropped_meters else ""
        s += f", {self.paced} requests held to the rate" if self.paced else ""
        # why, when it did not leave politely: the close rtvc sent (1011 keepalive ping timeout: a ping unanswered),
        # else the one it got (1006: the connection ended without one)
        protocol = getattr(self.ws, "protocol", None)
        sent = getattr(protocol, "close_sent", None)
        first = not getattr(protocol, "close_rcvd_then_sent", False)  # (an echo of the client's close is not ours)
        if sent is not None and first and sent.code not in (1000, 1001):
            return s + f" (closed by rtvc: {sent.code}{' ' + sent.reason if sent.reason else ''})"
        code = getattr(self.ws, "close_code", None)
        if code not in (None, 1000, 1001, 1005):
            s += f" (close {code}{': ' + self.ws.close_reason if self.ws.close_reason else ''})"
        return s
