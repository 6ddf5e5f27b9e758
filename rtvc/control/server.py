"""The control server: a websocket JSON-RPC endpoint (/rpc) and the browser dock's files (/dock).

It runs an asyncio loop on its own thread. This module is the one bridge between threads and that loop:
the controller calls its listeners on whatever thread made a change (a client's request, a voice loading
in a worker thread, the daemon polling the engine), and the listener here only hands the event to the loop
with `loop.call_soon_threadsafe`. Everything else in this file runs on the loop.

Each client has a bounded send queue drained by its own writer task, so a client that stops reading
cannot stall the others: meter updates are dropped when its queue is filling, and it is closed (4008)
when a reply or a state event no longer fits.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import itertools
import logging
import mimetypes
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rtvc import __version__
from rtvc.config import ControlConfig
from rtvc.control import auth, rpc
from rtvc.control.connection import ALL_CLIENTS, BURST, UNAUTHORISED_RATE, Connection, Pace
from rtvc.control.controller import Controller
from rtvc.control.methods import METHODS, Hub
from rtvc.errors import ConfigError

PING_S = 10.0
log = logging.getLogger("rtvc.control")
DOCK_DIR = Path(__file__).parent / "dock"
TOKEN_CHECK_S = 1.0  # how often the token file is looked at (a stat)
# open sockets at most, handshakes and clients together, beyond which a new one is closed at once: a program opening
# sockets and sending nothing took the daemon to its file limit (1024), and its next look at profiles/ ended it
SOCKETS_PER_CLIENT = 4
SOCKETS_SAID_S = 10.0  # sockets closed so are said at most this often
METER_CACHE_S = 0.01  # clients subscribed at different rates share one reading of the levels


_handshakes = {"said": -SOCKETS_SAID_S, "unsaid": 0}  # failed handshakes: when one was last said, how many since


def _one_line(record: logging.LogRecord) -> bool:
    """websockets logs a failed handshake (a port scan, a plain HTTP client) with a traceback: one line does, and one
    every SOCKETS_SAID_S at most, with how many more failed meanwhile (600 sockets opened and closed unused wrote
    600 lines)."""
    if record.exc_info and record.exc_info[1] is not None:
        said = str(record.exc_info[1])
        said = said if len(said) <= 200 else said[:200] + "…"  # (a 5 KB request path came back in it whole)
        record.msg = f"{record.getMessage()}: {type(record.exc_info[1]).__name__}: {said}"
        record.args, record.exc_info, record.exc_text = None, None, None
    if str(record.msg).startswith("opening handshake failed"):
        now = time.monotonic()
        if now - _handshakes["said"] < SOCKETS_SAID_S:
            _handshakes["unsaid"] += 1
            return False
        if _handshakes["unsaid"]:
            record.msg = f"{record.msg} ({_handshakes['unsaid']} more failed in the {SOCKETS_SAID_S:g} s before)"
        _handshakes["said"], _handshakes["unsaid"] = now, 0
    return True


def _file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _listen_fix(cfg: ControlConfig, e: OSError) -> str:
    """What to do about a port the control server could not listen on, by why."""
    if e.errno == errno.EADDRNOTAVAIL:
        return (
            f"control.bind = {cfg.bind!r} is no address of this machine: 127.0.0.1 (this machine only), 0.0.0.0 or :: "
            "(every address), or one `ip address` lists"
        )
    if e.errno == errno.EACCES:
        return "ports under 1024 need root: set control.port to one from 1024 up (47800 is rtvc's)"
    return "another rtvc serve (or another program) uses that port: stop it, or set control.port"


_said_at: dict[str, float] = {}  # a loop error's one line -> when it was last logged


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's errors that are the machine's, not a bug (accept() out of file descriptors: asyncio waits a second
    and accepts again): one line, at most every SOCKETS_SAID_S, not a traceback a second. Others as asyncio says
    them."""
    e = context.get("exception")
    if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
        line = f"control: {context.get('message', 'socket error')}: {e.strerror}; accepting again in a second"
        now = time.monotonic()
        if now - _said_at.get(line, -SOCKETS_SAID_S) >= SOCKETS_SAID_S:
            _said_at[line] = now
            log.warning("%s", line)
        return
    loop.default_exception_handler(context)


class ControlServer:
    def __init__(
        self,
        cfg: ControlConfig,
        controller: Controller,
        token: str,
        port: int | None = None,  # None: cfg.port; 0: any free port (tests)
        devices_in_use: Callable[[], dict[str, Any]] | None = None,
        dock_dir: Path = DOCK_DIR,
        token_file: Path | None = None,  # watched: a token renewed there (`rtvc token --new`) takes over
    ):
        self.cfg = cfg
        self.controller = controller
        self._token = token
        self._token_file = token_file
        self.port = cfg.port if port is None else port
        self.dock_dir = dock_dir.resolve()
        info = {"name": "rtvc", "version": __version__, "max_frame_kb": cfg.max_frame_kb}
        self.hub = Hub(controller, info, devices_in_use or (lambda: {"virtual": True}))
        self.clients: set[Connection] = set()
        self._pace_all = Pace(ALL_CLIENTS * cfg.max_requests_per_s, BURST)  # (all clients together: connection.py)
        self._pace_unauthorised = Pace(UNAUTHORISED_RATE, BURST)
        self._ids = itertools.count(1)
        self._origins: frozenset[str] = frozenset()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._meters: tuple[float, str] = (0.0, "")
        self._blocks_seen = 0  # engine.timer.count at the previous meters reading

    @property
    def url(self) -> str:
        return f"ws://{auth.connect_host(self.cfg, self.port)}/rpc"

    # -- the thread ---------------------------------------------------------------------------------
    @staticmethod
    def check_port(cfg: ControlConfig) -> None:
        """Before the slow parts of a start (voices loading, devices opening): ConfigError, as `start` would
        raise, when the port is taken (a second `rtvc run` learnt it after seconds of loading)."""
        if cfg.port == 0:
            return
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(cfg.bind, cfg.port, type=socket.SOCK_STREAM)[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as the server binds: TIME_WAIT is fine)
                probe.bind(addr)
        except OSError as e:
            raise ConfigError(
                f"the control server cannot listen on {cfg.bind}:{cfg.port}: {e.strerror or e}", _listen_fix(cfg, e)
            ) from None

    def start(self) -> None:
        """Listen; returns once the port is bound. Raises ConfigError if it cannot be."""
        self._thread = threading.Thread(target=self._run_loop, name="rtvc-control", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise ConfigError(
                f"the control server cannot listen on {self.cfg.bind}:{self.port}: {self._error}",
                _listen_fix(self.cfg, self._error),
            )

    def _run_loop(self) -> None:
        """asyncio.run, but for its last step: it waits for the default executor's threads, and a voice may be
        loading in one (a model load cannot be interrupted; from a hung network drive it never ends). Here the
        loop closes without waiting for them; rtvc serve then exits without them."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # (shuts the default executor down without waiting)

    def stop(self) -> None:
        """Close every connection (1001) and end the loop's thread."""
        self.controller.remove_listener(self._on_event)
        if self._loop is not None and self._stop is not None and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def _on_event(self, event: dict[str, Any]) -> None:
        """Controller listener, on any thread: the one hand-over to the loop."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._broadcast, event)
            except RuntimeError:  # the loop has closed: shutting down, nobody left to tell
                pass

    def _capped_connection(self) -> type[ServerConnection]:
        """The server's connection class, counting open sockets: past SOCKETS_PER_CLIENT * max_clients (at least 64)
        the oldest socket still in its opening handshake is closed (the file descriptors are what runs out), said in
        the log at most every SOCKETS_SAID_S. A new one goes on to its handshake: a client with the token (the TUI,
        the dock, rtvc ctl) gets in past a program that keeps opening sockets and sending nothing; clients already in
        are untouched."""
        limit = max(64, SOCKETS_PER_CLIENT * self.cfg.max_clients)
        opening: dict[ServerConnection, None] = {}  # sockets in their opening handshake, oldest first
        counts = {"open": 0, "closed": 0, "said": 0.0}

        class Capped(ServerConnection):
            def connection_made(self, transport: Any) -> None:
                counts["open"] += 1
                super().connection_made(transport)
                if counts["open"] > limit and opening:
                    oldest = next(iter(opening))
                    del opening[oldest]
                    oldest.transport.abort()
                    counts["closed"] += 1
                    now = time.monotonic()
                    if now - counts["said"] >= SOCKETS_SAID_S:
                        counts["said"] = now
                        log.warning(
                            "control: %d sockets open (a program opening connections and sending nothing?): %d in their"
                            " handshake closed, the oldest first, since this was last said; clients already in are"
                            " served", limit, counts["closed"],
                        )  # fmt: skip
                        counts["closed"] = 0
                opening[self] = None

            async def handshake(self, *args: Any, **kwargs: Any) -> None:
                try:
                    await super().handshake(*args, **kwargs)
                finally:
                    opening.pop(self, None)

            def connection_lost(self, exc: Exception | None) -> None:
                counts["open"] -= 1
                opening.pop(self, None)
                super().connection_lost(exc)

        return Capped

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(_loop_error)
        self._stop = asyncio.Event()
        quiet = logging.getLogger("rtvc.control.websockets")  # never DEBUG: frames would show the token
        quiet.setLevel(logging.WARNING)
        quiet.addFilter(_one_line)
        try:
            server = await serve(
                self._serve_client,
                # "::", every address: IPv4's too (asyncio makes a "::" socket IPv6-only: clients on 127.0.0.1, where
                # rtvc's own tools and the URLs it prints go, and on the network's IPv4 found nothing listening)
                None if self.cfg.bind == "::" and self.port else self.cfg.bind,
                self.port,
                create_connection=self._capped_connection(),
                process_request=self._check_request,
                max_size=self.cfg.max_frame_kb * 1024,
                compression=None,  # CPU and the GIL belong to the audio worker; messages are small
                close_timeout=2,
                open_timeout=5,
                # a client that answers no ping is dropped within 22 s (the library's 20 + 20 s held a dead one's
                # slot for 42 s; one that stopped reading only closes with 4008 once its socket is full)
                ping_interval=PING_S,
                ping_timeout=PING_S,
                server_header=f"rtvc/{__version__}",
                logger=quiet,
            )
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self.port = next(iter(server.sockets)).getsockname()[1]
        self._origins = auth.allowed_origins(self.cfg, self.port)
        self.hub.info["port"] = self.port
        self.controller.add_listener(self._on_event)
        watch = asyncio.create_task(self._watch_token()) if self._token_file is not None else None
        self._ready.set()
        await self._stop.wait()
        if watch is not None:
            watch.cancel()
        await self._shutdown(server)

    async def _watch_token(self) -> None:
        """A token renewed in the token file (`rtvc token --new`, after a leak) is the only one from then on:
        new connections need it, and the clients that logged in with the old one are disconnected (4001)."""
        path = self._token_file
        assert path is not None
        # the file's (inode, mtime, size) when last read; none yet: the first look compares the file's token with
        # ours, which was read before the voice preload and the devices (a renewal meanwhile counts)
        seen: tuple[int, int, int] | None = None
        while True:
            await asyncio.sleep(TOKEN_CHECK_S)
            key = _file_key(path)
            if key is None or key == seen:  # (missing: mid-renewal, or removed: the old one stays)
                continue
            seen = key
            try:
                token = auth.read_token(path)
            except (ConfigError, OSError, ValueError) as e:  # (ValueError: not UTF-8)
                log.warning("control: the token file changed but cannot be used (%s); the old token stays", e)
                continue
            if token == self._token:
                continue
            self._token = token
            old = [c for c in self.clients if c.authed]
            for c in old:
                c.close_soon(
                    rpc.CLOSE_UNAUTHORIZED, "the token was renewed (rtvc token --new): connect with the new one"
                )
            log.info("control: token renewed; %d client(s) that used the old one disconnected", len(old))

    async def _shutdown(self, server: Server) -> None:
        server.close()  # 1001 to every client
        try:
            await asyncio.wait_for(server.wait_closed(), 3)
        except TimeoutError:  # clients that do not read cannot take a close frame
            for ws in list(server.connections):
                ws.transport.abort()

    # -- HTTP: the handshake and the dock's files -----------------------------------------------------
    def _check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        for name in ("Host", "Origin"):  # two of either: which one a proxy or browser meant is unknowable
            if (n := len(request.headers.get_all(name))) > 1:
                log.warning("refused a request with %d %s headers", n, name)
                return ws.respond(400, f"more than one {name} header: send one\n")
        bad_host = auth.check_host(request.headers.get("Host"), self.port, self.cfg)
        if bad_host:
            log.warning("refused a request: %s", bad_host)
            return ws.respond(403, bad_host + "\n")
        path, _, query = request.path.partition("?")
        if path == "/dock":  # relative links in the page need the trailing slash; keep ?token=
            return self._respond(308, b"", "text/plain", {"Location": "/dock/" + ("?" + query if query else "")})
        if path.startswith("/dock/"):
            return self._static(ws, unquote(path[len("/dock/") :]) or "index.html")
        if path != "/rpc":
            return ws.respond(404, f"no {path[:80]} here: the API is the websocket at /rpc, the dock is /dock\n")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            response = ws.respond(426, "this is the control API's websocket: connect with a websocket client\n")
            response.headers["Upgrade"] = "websocket"
            return response
        remote_host = request.headers.get("Host") if self.cfg.allow_remote else None
        bad_origin = auth.check_origin(request.headers.get("Origin"), self._origins, remote_host)
        if bad_origin:
            log.warning("refused a browser page: %s", bad_origin)
            return ws.respond(403, bad_origin + "\n")
        if len(self.clients) >= self.cfg.max_clients and not self._room_for(request.path):
            return ws.respond(503, f"too many clients (control.max_clients = {self.cfg.max_clients})\n")
        return None

    def _room_for(self, path: str) -> bool:
        """Whether a client with the right token in its address (?token=, as the TUI and the dock connect) may take
        the slot of a socket that has not sent one: sockets that never authenticate (another user's program on
        this machine, reconnecting every 10 s) could otherwise keep every slot and lock the user out."""
        query = parse_qs(path.partition("?")[2])
        token = query.get("token", [""])[0].strip()  # (as Connection.login takes it)
        waiting = any(not c.authed and not c.closing for c in self.clients)
        return bool(token) and waiting and auth.token_matches(token, self._token)

    def _make_room(self) -> bool:
        """Close the oldest socket that has not authenticated (for a client with the token: _room_for)."""
        waiting = [c for c in self.clients if not c.authed and not c.closing]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.opened)
        oldest.close_soon(rpc.CLOSE_FULL, "too many clients: this slot went to a client with the token")
        log.warning("%s closed unauthenticated: its slot went to a client with the token", oldest.id)
        return True

    def _static(self, ws: ServerConnection, rel: str) -> Response:
        if "\0" in rel:  # no file name holds one; the OS calls would raise
            return ws.respond(404, f"the dock has no file {rel[:80]!r}\n")
        try:
            f = (self.dock_dir / rel).resolve()
            found = f.is_relative_to(self.dock_dir) and f.is_file()
        except OSError:  # (a name too long for the file system: ENAMETOOLONG was a 500)
            found = False
        if not found:
            return ws.respond(404, f"the dock has no file {rel[:80]!r}\n")
        ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        return self._respond(200, f.read_bytes(), ctype + ("; charset=utf-8" if ctype.startswith("text/") else ""))

    @staticmethod
    def _respond(status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> Response:
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),  # the dock's URL holds the token
                *(extra or {}).items(),
            ]
        )
        return Response(status, {200: "OK", 308: "Permanent Redirect"}[status], headers, body)

    # -- websocket clients --------------------------------------------------------------------------
    async def _serve_client(self, ws: ServerConnection) -> None:
        full = len(self.clients) >= self.cfg.max_clients  # several handshakes at once got past the check
        if full and not (ws.request is not None and self._room_for(ws.request.path) and self._make_room()):
            await ws.close(rpc.CLOSE_FULL, f"too many clients (control.max_clients = {self.cfg.max_clients})")
            return
        client = Connection(
            f"client {next(self._ids)}",
            ws,
            self.hub,
            lambda: self._token,
            self.meters_text,
            self.cfg.max_requests_per_s,
            self._pace_all,
            self._pace_unauthorised,
        )
        self.clients.add(client)
        kind = "browser" if ws.request and ws.request.headers.get("Origin") else "native"
        log.info("%s connected (%s)", client.id, kind)
        try:
            # (an empty ?token= is a wrong token, said at once: a tool's unfilled template waited 10 s for auth)
            query = parse_qs(ws.request.path.partition("?")[2], keep_blank_values=True) if ws.request else {}
            if "token" in query and not client.login(query["token"][0]):
                client.close_soon(rpc.CLOSE_UNAUTHORIZED, "wrong token: run `rtvc token` and use the token it prints")
            await client.run(METHODS)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            client.shutdown()
            self.controller.ptt_release(client.id, client.id)  # its talk key goes up with it (an event if held)
            log.info("%s disconnected%s", client.id, client.summary())

    def _broadcast(self, event: dict[str, Any]) -> None:
        if event["changed"] == ["engine"]:
            st = self.controller.engine.status()
            eng = {"state": st.state, "detail": st.detail, "monitor_error": st.monitor_device["error"]}
            eng["unheard"] = st.unheard
            kind, event = "engine", {**event, "type": "engine", "engine": eng}
        else:
            kind = "state"
        text = rpc.notification(event)
        for c in list(self.clients):
            if kind in c.events:
                c.send(text)

    def meters_text(self) -> str:
        """The levels as a meters notification, read at most every METER_CACHE_S whoever asks."""
        now = time.monotonic()
        if now - self._meters[0] > METER_CACHE_S:
            engine = self.controller.engine
            st = engine.status()
            lv = st.levels
            # the worst block since the previous reading: a sparkline of these shows every slow block
            recent = engine.timer.since(self._blocks_seen)
            self._blocks_seen = engine.timer.count
            params = {"type": "meters", "in_peak": lv.in_peak, "in_rms": lv.in_rms}
            params |= {"out_peak": lv.out_peak, "out_rms": lv.out_rms, "limit_db": lv.limit_db}
            params["gate"] = "open" if st.gate["open"] else "closed"  # ("open" while it is off)
            params |= {
                "block_ms": round(float(recent.max()) * 1e3, 3) if len(recent) else None,
                "p99_ms": round(st.timing.p99_ms, 3),
                "budget_ms": round(st.timing.budget_ms, 3),
                "xruns": st.xruns.total,
            }
            self._meters = (now, rpc.notification(params))
        return self._meters[1]
