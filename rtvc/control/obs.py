"""rtvc's link to OBS Studio: an obs-websocket 5 client (RPC version 1) that follows OBS's program scene.

The link runs its own asyncio loop on a daemon thread. It connects, identifies (answering OBS's password
challenge), asks for the current program scene and then listens for `CurrentProgramSceneChanged`. When OBS
goes away it reconnects by itself, 0.5 s after the loss and then backing off (doubling to 5 s; every 10 s
after a refused password), so OBS may be started, closed or restarted at any time.

The password only answers OBS's challenge: it is never sent, logged or put in a state detail.
"""

from __future__ import annotations

import asyncio
import base64
import difflib
import hashlib
import inspect
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from rtvc.config import host_ok
from rtvc.errors import ConfigError

log = logging.getLogger(__name__)

OP_HELLO, OP_IDENTIFY, OP_IDENTIFIED, OP_EVENT, OP_REQUEST, OP_RESPONSE = 0, 1, 2, 5, 6, 7
RPC_VERSION = 1
SUBSCRIBE_SCENES = 1 << 2  # EventSubscription.Scenes: CurrentProgramSceneChanged and friends
CLOSE_AUTH_FAILED, CLOSE_UNSUPPORTED_RPC, CLOSE_SESSION_INVALIDATED = 4009, 4010, 4011
FIRST_RETRY_S, MAX_RETRY_S, SLOW_RETRY_S = 0.5, 5.0, 10.0
SCENE_LIST_ID = "rtvc-scene-list"
HANDSHAKE_TIMEOUT_S = 5.0
# program scene changes closer together than this are one, the last delivered: Studio Mode switched off sends the
# preview scene as the program scene, then the program scene again at once (the preview's voice loaded, a review)
SCENE_SETTLE_S = 0.06
_CONNECT_OPTIONS: dict[str, Any] = {
    "subprotocols": [Subprotocol("obswebsocket.json")],
    "open_timeout": HANDSHAKE_TIMEOUT_S,
    "close_timeout": 2,
    "ping_interval": 5,  # a silent OBS (hung, or its machine gone) is noticed within 15 s
    "ping_timeout": 10,
    "compression": None,
    "max_size": 16 * 2**20,
}
if "proxy" in inspect.signature(connect).parameters:  # websockets 15 goes through $HTTPS_PROXY by default
    _CONNECT_OPTIONS["proxy"] = None
_FIX_PASSWORD = (
    "check `password` under [obs] in config.toml against OBS's Tools > WebSocket Server Settings (rtvc reads it"
    " again before each try)"
)
_FIX_SERVER = "is OBS running, with Tools > WebSocket Server Settings > Enable WebSocket server on, at this port?"


@dataclass(frozen=True)
class ObsSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 4455
    password: str = field(default="", repr=False)  # never logged
    scenes: dict[str, str] = field(default_factory=dict)  # OBS scene name -> rtvc profile name

    def __post_init__(self) -> None:
        if allowed := host_ok(self.host):
            raise ConfigError(f"obs host {self.host!r} is not allowed", f"it must be {allowed}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ConfigError(
                f"obs port {self.port!r} is not a TCP port", "use OBS's Tools > WebSocket Server Settings > Server Port"
            )

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def profile_for(self, scene: str) -> str | None:
        """The rtvc profile mapped to an OBS scene, or None when the scene is not mapped."""
        return self.scenes.get(scene)


def renamed(table: dict[str, str], renames: dict[str, str], literal: Iterable[str] = ()) -> dict[str, str]:
    """[obs.scenes] as config.toml has it (edited or not since rtvc started), with the scenes renamed in OBS since
    (ObsLink.renames) under their new names. A name the table maps itself keeps the table's voice, and so does one
    in `literal`, the entries the edit added or changed: written now, they name OBS's scenes as they are now (a
    review: a new scene made under a renamed one's old name, mapped in the file, gave its voice to the renamed one;
    entries not edited still follow their scenes, as the mapping in use does)."""
    literal = frozenset(literal)
    scenes = {
        scene: profile for scene, profile in table.items() if scene in literal or renames.get(scene, scene) == scene
    }
    for scene, profile in table.items():
        if scene in literal:
            continue
        now = renames.get(scene, scene)
        if now != scene:
            scenes.setdefault(now if now not in scenes else scene, profile)
    return scenes


def auth_response(password: str, salt: str, challenge: str) -> str:
    """obs-websocket's answer to a challenge: base64(sha256(base64(sha256(password + salt)) + challenge))."""
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest()).decode()
    return base64.b64encode(hashlib.sha256((secret + challenge).encode()).digest()).decode()


class _Ended(Exception):
    """Why a connection ended: the state to report, what happened, and a fixed retry delay (None: back off)."""

    def __init__(self, state: str, what: str, retry_s: float | None = None) -> None:
        super().__init__(what)
        self.state, self.what, self.retry_s = state, what, retry_s


class ObsLink:
    """Follows OBS's program scene. Callbacks run on the link's thread and must return quickly."""

    def __init__(
        self,
        settings: ObsSettings,
        on_scene: Callable[[str], None],
        on_state: Callable[[str, str], None] | None = None,
        reread: Callable[[], ObsSettings | str | None] | None = None,
        on_check: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_check = on_check  # (given: told when missing_scenes() or the renames may have changed)
        self.on_scene = on_scene
        self.on_state = on_state  # (given: its owner says each state; the link's own lines go to debug)
        # [obs] as config.toml has it now, asked before a retry; a str: why it could not be read (said with the state:
        # a password mended with a slip of TOML left "asks for a password and none is set" on the TUI and the dock)
        self.reread = reread
        self.unread = ""
        self.scene: str | None = None  # the program scene last delivered, over reconnections
        # each name a scene had in OBS while rtvc ran -> its name now (renamed since): config.toml may name it by any
        self.renames: dict[str, str] = {}
        self.obs_scenes: list[str] | None = (
            None  # OBS's scenes, as its scene list and events since said (None: unknown)
        )
        self.state = "stopped"
        self.detail = f"OBS link to {settings.address} not started"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._identified = False
        self._logged: tuple[str, str] = ("", "")

    def start(self) -> None:
        """Start the link's thread (no-op when it runs or the link is disabled in the settings)."""
        if not self.settings.enabled:
            self._report("stopped", "OBS link disabled (set enabled = true under [obs] in config.toml)")
            return
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="rtvc-obs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection cleanly and join the thread (at most `timeout` seconds)."""
        with self._lock:
            self._stopping = True
            thread, loop, wake = self._thread, self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has already finished
                pass
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("OBS link: thread still running %.1f s after stop()", timeout)
                return
        with self._lock:
            self._thread, self._loop, self._wake = None, None, None

    def call_soon(self, fn: Callable[[], None]) -> None:
        """`fn()` on the link's thread, which owns the scene tables (another thread's read of them while a rename
        rewrote them raised "dictionary changed size during iteration"); at once where the link does not run."""
        with self._lock:
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(fn)
                return
            except RuntimeError:  # (the loop has finished)
                pass
        fn()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never expected: the loop catches per connection; say so rather than die silently
            log.exception("OBS link: stopped by an unexpected error")
            self._report("stopped", f"OBS link to {self.settings.address} stopped by an internal error (see log)")

    async def _main(self) -> None:
        with self._lock:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
            if self._stopping:
                self._wake.set()
        wake = self._wake
        delay = FIRST_RETRY_S
        while not wake.is_set():
            addr = self.settings.address  # (read again: config.toml may name another since, _take_new_settings)
            self._report("connecting", f"connecting to OBS at {addr}")
            self._identified = False
            session = asyncio.create_task(self._session())
            waiter = asyncio.create_task(wake.wait())
            await asyncio.wait({session, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not session.done():  # stop(): leaving `async with connect()` closes the connection cleanly
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
                break
            ended = session.result()
            if self._identified:  # a working connection was lost: retry soon
                delay = FIRST_RETRY_S
            if ended.retry_s is not None:
                wait = ended.retry_s
            else:
                wait, delay = delay, min(delay * 2, MAX_RETRY_S)
            unread = f" ({self.unread})" if self.unread else ""
            self._report(ended.state, f"{ended.what}{unread}; retrying in {wait:g} s")
            try:
                await asyncio.wait_for(wake.wait(), wait)
            except TimeoutError:
                pass
            self._take_new_settings()
        self._report("stopped", f"OBS link to {self.settings.address} stopped")

    def _take_new_settings(self) -> None:
        """Before a retry: the host, port and password config.toml holds now (a password mended after "auth failed"
        is tried at once, with no restart); the scenes stay as they started."""
        try:
            now = self.reread() if self.reread is not None else None
        except Exception:  # (the owner's reread says its own errors: this one is unexpected, and said)
            log.warning("OBS link: [obs] not read again: the settings in use stay", exc_info=True)
            return
        self.unread = now if isinstance(now, str) else ""
        if now is None or isinstance(now, str) or not now.enabled:
            return
        was = self.settings
        if (now.host, now.port, now.password) != (was.host, was.port, was.password):
            which = [n for n in ("host", "port", "password") if getattr(now, n) != getattr(was, n)]
            log.info("OBS link: [obs] %s changed in config.toml: trying it", ", ".join(which))
            self.settings = replace(was, host=now.host, port=now.port, password=now.password)

    async def _session(self) -> _Ended:
        """One connection, from TCP connect to close. Returns why it ended; never raises (but CancelledError)."""
        addr = self.settings.address
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        ws: ClientConnection | None = None
        try:
            async with connect(f"ws://{host}:{self.settings.port}", **_CONNECT_OPTIONS) as ws:
                await self._identify(ws)
                self._identified = True
                rid = "rtvc-current-scene"  # one per connection
                request = {"requestType": "GetCurrentProgramScene", "requestId": rid}
                await ws.send(json.dumps({"op": OP_REQUEST, "d": request}))
                listing = {"requestType": "GetSceneList", "requestId": SCENE_LIST_ID}  # ([obs.scenes] checked)
                await ws.send(json.dumps({"op": OP_REQUEST, "d": listing}))
                self._report("connected", f"connected to OBS at {addr}")
                await self._follow(ws, rid)
        except ConnectionClosed as e:
            code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd is not None else (None, "")
            return self._closed(code, reason)
        except ConnectionRefusedError:
            return _Ended("disconnected", f"OBS at {addr}: connection refused ({_FIX_SERVER})")
        except socket.gaierror as e:
            return _Ended("disconnected", f"OBS at {addr}: cannot resolve host {self.settings.host!r} ({e.strerror})")
        except TimeoutError:
            return _Ended("disconnected", f"OBS at {addr}: no answer within {HANDSHAKE_TIMEOUT_S:g} s ({_FIX_SERVER})")
        except OSError as e:
            return _Ended("disconnected", f"OBS at {addr}: cannot connect: {e.strerror or e}")
        except (InvalidHandshake, InvalidURI, ValueError) as e:
            what = f"OBS at {addr}: not an obs-websocket 5 server ({e}); is OBS 28 or newer listening on this port?"
            return _Ended("disconnected", what, MAX_RETRY_S)
        except _Ended as e:
            return e
        except Exception as e:  # keep the link alive whatever happens; the log has the traceback
            log.exception("OBS link: unexpected error")
            return _Ended("disconnected", f"OBS at {addr}: unexpected error {type(e).__name__}: {e}", MAX_RETRY_S)
        return self._closed(ws.close_code, ws.close_reason or "")

    async def _identify(self, ws: ClientConnection) -> None:
        hello = await self._expect(ws, OP_HELLO, "Hello")
        identify: dict[str, Any] = {"rpcVersion": RPC_VERSION, "eventSubscriptions": SUBSCRIBE_SCENES}
        challenge = hello.get("authentication")
        if challenge:
            if not self.settings.password:
                what = f"OBS at {self.settings.address} asks for a password and none is set: {_FIX_PASSWORD}"
                raise _Ended("auth failed", what, SLOW_RETRY_S)
            identify["authentication"] = auth_response(
                self.settings.password, challenge["salt"], challenge["challenge"]
            )
        await ws.send(json.dumps({"op": OP_IDENTIFY, "d": identify}))
        await self._expect(ws, OP_IDENTIFIED, "Identified")

    async def _expect(self, ws: ClientConnection, op: int, name: str) -> dict[str, Any]:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            op_got, data = _decode(await ws.recv())
        if op_got != op:
            raise ValueError(f"expected {name} (op {op}), got op {op_got}")
        return data

    async def _follow(self, ws: ClientConnection, rid: str) -> None:
        """Deliver the answer to GetCurrentProgramScene and every program scene change until the connection ends.
        The answer after a reconnection that names the scene delivered last is not delivered again: the voice
        someone chose since (in the dock, the TUI) stays, as it would have with no reconnection."""
        changed = False  # a change event that came before the answer is newer than (or the same as) the answer
        loop = asyncio.get_running_loop()
        settling: asyncio.TimerHandle | None = None  # the latest change, delivered once SCENE_SETTLE_S passed
        async for raw in ws:
            op, data = _decode(raw)
            event = data.get("eventType") if op == OP_EVENT else None
            if event == "CurrentProgramSceneChanged":
                changed = True
                if settling is not None:
                    settling.cancel()
                name = str(data.get("eventData", {}).get("sceneName", ""))
                settling = loop.call_later(SCENE_SETTLE_S, self._scene, name)
            elif event == "SceneNameChanged":
                got = data.get("eventData", {})
                self._renamed(str(got.get("oldSceneName", "")), str(got.get("sceneName", "")))
            elif event in ("SceneCreated", "SceneRemoved", "SceneListChanged"):
                self._scenes_changed(event, data.get("eventData") or {})
            elif op == OP_RESPONSE and data.get("requestId") == rid:
                status = data.get("requestStatus", {})
                name = str(data.get("responseData", {}).get("currentProgramSceneName", ""))
                if not status.get("result"):
                    log.warning("OBS link: GetCurrentProgramScene failed: %s", status.get("comment", status))
                elif changed:
                    pass
                elif name and name == self.scene:
                    log.info("OBS program scene still %r: the voice playing stays", name)
                else:
                    self._scene(name)
            elif op == OP_RESPONSE and data.get("requestId") == SCENE_LIST_ID:
                scenes = (data.get("responseData") or {}).get("scenes")
                if not data.get("requestStatus", {}).get("result") or not isinstance(scenes, list):
                    log.info("OBS link: GetSceneList gave no list: [obs.scenes] not checked against OBS's scenes")
                else:
                    self.obs_scenes = [str(sc.get("sceneName", "")) for sc in scenes if isinstance(sc, dict)]
                    self.check_scenes()

    def _scenes_changed(self, event: str, got: dict[str, Any]) -> None:
        """OBS's scene list kept as its events say (a scene made or removed since the connection), so that a check
        of [obs.scenes] edited meanwhile is against the scenes OBS has now."""
        if event == "SceneListChanged":
            scenes = got.get("scenes")
            if isinstance(scenes, list):
                self.obs_scenes = [str(sc.get("sceneName", "")) for sc in scenes if isinstance(sc, dict)]
                self._renamed_gone()
                self._checked()
            return
        name = str(got.get("sceneName", ""))
        if self.obs_scenes is None or not name or got.get("isGroup"):
            return
        if event == "SceneCreated" and name not in self.obs_scenes:
            self.obs_scenes.append(name)
        elif event == "SceneRemoved" and name in self.obs_scenes:
            self.obs_scenes.remove(name)
            self._renamed_gone()
        self._checked()  # (a scene made under a name [obs.scenes] has, or one it names removed)

    def _renamed_gone(self) -> None:
        """A scene renamed since, removed from OBS (or gone with its scene collection): the rename is forgotten, the
        file's name for it maps its voice again (a new scene made under that name switched no voice, and the
        warnings said to rename [obs.scenes] to the gone scene's name; a review)."""
        names = self.obs_scenes or []
        scenes = self.settings.scenes
        for was, now in list(self.renames.items()):
            if now in names:
                continue
            del self.renames[was]
            if now in scenes and was not in scenes:
                scenes[was] = scenes.pop(now)
                log.info("OBS scene %r (renamed from %r) is gone: [obs.scenes]' %r maps its voice again", now, was, was)

    def check_scenes(self) -> None:
        """[obs.scenes] names OBS has no scene of (a typo, a scene renamed while rtvc was off): said at each
        connection, and by the owner after an edit of the table while rtvc runs (a review: a typo made mid-stream
        went unsaid until the next connection), as they would otherwise never switch a voice without a word. Runs
        on the link's thread (the owner's on_scene)."""
        for said in self.missing_scenes():
            log.warning("%s", said)
        self._checked()

    def missing_scenes(self) -> list[str]:
        """What check_scenes says: each [obs.scenes] name OBS has no scene of, with the nearest it has."""
        names = self.obs_scenes
        if names is None:  # (not connected yet: said at the connection)
            return []
        said = []
        for scene in [scene for scene in self.settings.scenes if scene not in names]:
            near = difflib.get_close_matches(scene, names, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            said.append(
                f"[obs.scenes] {scene!r}: OBS has no scene of that name ({hint}its scenes: "
                f"{', '.join(repr(n) for n in names) or 'none'}): that voice is never chosen by OBS"
            )
        return said

    def _checked(self) -> None:
        if self.on_check is not None:
            try:
                self.on_check()
            except Exception:
                log.exception("OBS link: on_check failed")

    def _renamed(self, old: str, new: str) -> None:
        """A scene renamed in OBS: its voice follows the new name until rtvc restarts (said, with the fix). The rename
        is kept (self.renames): the owner that reads [obs.scenes] again applies it to the file's table (renamed())."""
        if not (old and new):
            return
        # every name the scene had follows it: the file may have been edited to a name between (a review: "Gaming" ->
        # "Gaming 2", the file mended to "Gaming 2" as said, -> "Gaming 3", and any later edit of [obs.scenes] lost it)
        for was, now in list(self.renames.items()):
            if now == old:
                self.renames[was] = new
        if old not in self.renames:  # (in it: another scene's name before its rename, this scene one made since)
            self.renames[old] = new
        self.renames = {was: now for was, now in self.renames.items() if was != now}  # (renamed back)
        if self.obs_scenes is not None:
            self.obs_scenes = [new if name == old else name for name in self.obs_scenes]
        scenes = self.settings.scenes  # (the dict the owner maps with: it sees the new name too)
        if old in scenes and new not in scenes:
            scenes[new] = scenes.pop(old)
            if self.scene == old:
                self.scene = new
            log.warning(
                "OBS scene %r renamed %r: its voice '%s' follows it until rtvc restarts; rename it in [obs.scenes] in"
                " config.toml", old, new, scenes[new],
            )  # fmt: skip
        self._checked()

    def _closed(self, code: int | None, reason: str) -> _Ended:
        addr = self.settings.address
        if code == CLOSE_AUTH_FAILED:
            return _Ended("auth failed", f"OBS at {addr} refused the password: {_FIX_PASSWORD}", SLOW_RETRY_S)
        if code == CLOSE_UNSUPPORTED_RPC:
            what = f"OBS at {addr} does not speak obs-websocket RPC version {RPC_VERSION}: update OBS to 28 or newer"
            return _Ended("disconnected", what, SLOW_RETRY_S)
        if code == CLOSE_SESSION_INVALIDATED:
            return _Ended("disconnected", f"OBS at {addr} ended our session (kicked in its session list)", SLOW_RETRY_S)
        if code is None:
            return _Ended("disconnected", f"OBS at {addr}: connection lost (OBS closed or crashed?)")
        if code == 1001:
            return _Ended("disconnected", f"OBS at {addr} closed the connection (OBS is shutting down)")
        return _Ended("disconnected", f"OBS at {addr} closed the connection (code {code}{reason and ': '}{reason})")

    def _scene(self, name: str) -> None:
        if not name:
            log.warning("OBS link: OBS reported a program scene without a name; ignored")
            return
        log.debug("OBS link: program scene %r", name)
        self.scene = name
        try:
            self.on_scene(name)
        except Exception:
            log.exception("OBS link: on_scene(%r) failed", name)

    def _report(self, state: str, detail: str) -> None:
        # the log gets each settled state once, and a new reason in it (not every retry); "connecting" goes to
        # debug, and all of it where the owner says the states (on_state: one line per change, not two)
        said = (state, detail.split("; retrying in ")[0])
        quiet = state == "connecting" or said == self._logged or self.on_state is not None
        if state != "connecting":
            self._logged = said
        level = logging.DEBUG if quiet else logging.WARNING if state == "auth failed" else logging.INFO
        log.log(level, "OBS link: %s: %s", state, detail)
        self.state, self.detail = state, detail
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:
                log.exception("OBS link: on_state(%r) failed", state)


def _decode(raw: str | bytes) -> tuple[int, dict[str, Any]]:
    """(op, d) of an obs-websocket message; ValueError when it is not one."""
    msg = json.loads(raw)
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), int) or not isinstance(msg.get("d"), dict):
        raise ValueError(f"not an obs-websocket message: {str(raw)[:80]!r}")
    return msg["op"], msg["d"]
