"""The OBS browser dock, end to end: a real headless Chromium opens /dock on a real `rtvc serve --virtual`.

The test clicks with real mouse events (DevTools `Input.dispatchMouseEvent` at the element's box) and asks
the daemon through its own websocket API (a separate client, as a script would) whether anything changed:
another voice, mute, the pitch slider, push-to-talk held then released. It breaks a profile while the page
is open and checks the daemon's error is shown; it changes the monitor from its own client and checks the
page follows; it reads the meters over a second while the virtual device plays speech; it screenshots the
page and checks the PNG (size, colours, the active voice's and mute's highlights); and it restarts the
daemon and checks the page reconnects by itself.

Chromium is driven over the DevTools protocol with the `websockets` package: no selenium, no playwright.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import Daemon, RpcClient, free_port, wait_until
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve
from websockets.typing import Subprotocol

CHROMIUM = Path(shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium")  # Debian, Ubuntu
ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 360, 640  # an OBS dock's size
PROFILES = ("default", "edited", "higher", "passthrough")  # the test breaks "edited" while the dock is open

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs chromium (Debian) or chromium-browser (Ubuntu): scripts/system-deps.sh test",
    ),
    pytest.mark.timeout(150),
]

# The machine has no network: without these Chromium retries its background services and floods the log.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}",
    "--remote-debugging-port=0",
)


# ---- an OBS that answers ---------------------------------------------------------------------------


@contextlib.contextmanager
def obs_stand_in(port: int) -> Iterator[None]:
    """An obs-websocket 5 server on `port` that asks no password and answers every request (the program scene is
    "Starting"): enough for rtvc's OBS link to say "connected". tests/test_obs*.py use a real OBS."""

    def session(ws: ServerConnection) -> None:
        ws.send(json.dumps({"op": 0, "d": {"obsWebSocketVersion": "5.1.0", "rpcVersion": 1}}))  # Hello
        ws.recv(timeout=5)  # Identify
        ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))  # Identified
        for raw in ws:
            d = json.loads(raw)["d"]
            data = {"currentProgramSceneName": "Starting", "scenes": [{"sceneName": "Starting"}]}
            answer = {"requestType": d["requestType"], "requestId": d["requestId"], "responseData": data}
            ws.send(json.dumps({"op": 7, "d": answer | {"requestStatus": {"result": True, "code": 100}}}))

    with serve(session, "127.0.0.1", port, subprotocols=[Subprotocol("obswebsocket.json")]) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            thread.join(5)


# ---- Chromium over the DevTools protocol ------------------------------------------------------------
class Cdp:
    """A minimal DevTools protocol client for one page target."""

    def __init__(self, url: str):
        self.ws = connect(url, open_timeout=10, max_size=64 * 2**20)
        self.next_id = 1
        self.exceptions: list[str] = []
        self.console_errors: list[str] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        mid = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=15))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"DevTools {method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            self.exceptions.append(d.get("exception", {}).get("description") or d.get("text", "?"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))

    def js(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"page script {expression!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    def point(self, testid: str, fx: float = 0.5) -> tuple[float, float]:
        """A point inside the element's box: fx of the way across, half way down."""
        box = self.js(
            f"(() => {{ const e = document.querySelector('[data-testid={json.dumps(testid)}]');"
            " if (!e) return null; e.scrollIntoView({block: 'nearest'}); const r = e.getBoundingClientRect();"
            " return [r.x, r.y, r.width, r.height]; })()"
        )
        assert box and box[2] > 0 and box[3] > 0, f"no visible element with data-testid={testid}"
        return box[0] + fx * box[2], box[1] + box[3] / 2

    def mouse(self, kind: str, x: float, y: float, count: int = 1) -> None:
        """A real mouse event: move, press or release (the left button); count 2 for a double click's second."""
        if kind == "move":
            self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        else:
            down = kind == "press"
            self.send(
                "Input.dispatchMouseEvent",
                type="mousePressed" if down else "mouseReleased",
                x=x,
                y=y,
                button="left",
                buttons=1 if down else 0,
                clickCount=count,
            )

    def click(self, testid: str, fx: float = 0.5) -> None:
        """A left click (move, press, release) at a point of the element's box."""
        x, y = self.point(testid, fx)
        for kind in ("move", "press", "release"):
            self.mouse(kind, x, y)

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def chromium(profile_dir: Path) -> Iterator[Cdp]:
    proc = subprocess.Popen(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cdp: Cdp | None = None
    try:
        active = profile_dir / "DevToolsActivePort"

        def port() -> int | None:
            if proc.poll() is not None:
                pytest.fail(f"chromium exited with {proc.returncode}")
            lines = active.read_text().split() if active.exists() else []
            return int(lines[0]) if lines else None

        dt_port = wait_until("chromium's DevTools port", port, 30)

        def page() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{dt_port}/json/list", timeout=2) as r:
                targets = json.load(r)
            return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

        cdp = Cdp(wait_until("chromium's page target", page, 15))
        cdp.send("Runtime.enable")
        cdp.send("Page.enable")
        cdp.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        yield cdp
    finally:
        if cdp is not None:
            with contextlib.suppress(Exception):
                cdp.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ---- PNG ----------------------------------------------------------------------------------------------
def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit truecolour PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, f"unexpected PNG format {depth=} {colour=}"
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i] for i in range(len(r)) if i % bpp < 3) if bpp == 4 else r for r in rows]


def colours(rows: list[bytes]) -> dict[tuple[int, int, int], int]:
    """Pixel count of each RGB colour."""
    out: dict[tuple[int, int, int], int] = {}
    for r in rows:
        for i in range(0, len(r), 3):
            c = (r[i], r[i + 1], r[i + 2])
            out[c] = out.get(c, 0) + 1
    return out


def near(counts: dict[tuple[int, int, int], int], rgb: tuple[int, int, int], tol: int = 6) -> int:
    return sum(n for c, n in counts.items() if all(abs(a - b) <= tol for a, b in zip(c, rgb, strict=True)))


# ---- the test -----------------------------------------------------------------------------------------
DOM_SUMMARY = """(() => {
  const q = (t) => document.querySelector(`[data-testid="${t}"]`);
  const visible = (e) => !!e && !e.closest('[hidden]') && e.getBoundingClientRect().width > 0;
  const voices = [...document.querySelectorAll('[data-testid^="voice-"]')].filter((e) => e.dataset.name);
  const pitch = q('pitch');
  return {
    voices: voices.map((e) => ({name: e.dataset.name, text: e.textContent, active: e.dataset.active === 'true',
                                disabled: e.disabled, visible: visible(e)})),
    mute: visible(q('mute')) && q('mute').getAttribute('aria-pressed'),
    voice_on: visible(q('voice-on')) && q('voice-on').getAttribute('aria-pressed'),
    monitor: visible(q('monitor')) && q('monitor').getAttribute('aria-pressed'),
    gate: visible(q('gate')) && q('gate').getAttribute('aria-pressed'),
    gate_threshold: q('gate-threshold').textContent,
    gate_learn: visible(q('gate-learn')) && !q('gate-learn').disabled && q('gate-learn').textContent,
    ptt: visible(q('ptt')),
    pitch: visible(pitch) ? {min: +pitch.min, max: +pitch.max, value: +pitch.value,
                              shown: q('pitch-value').textContent} : null,
    meters: visible(q('meter-in')) && visible(q('meter-out')),
    conn: q('conn').dataset.state,
    latency: q('latency').textContent,
    error: q('error').hidden ? null : q('error').textContent,
  };
})()"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "daemon", free_port())
    d.start()
    try:
        yield d
    finally:
        d.stop()


def test_dock_drives_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    with chromium(tmp_path / "chromium") as page:  # starts while the daemon loads
        daemon.wait_ready()
        token = daemon.token()
        api = RpcClient(daemon.port, token)
        try:
            before = api.call("status.get")["control"]
            assert before["profile"] == "default" and before["mute"] is False, before

            # load the dock as OBS would, with the token from its URL
            t0 = time.monotonic()
            page.send("Page.navigate", url=f"http://127.0.0.1:{daemon.port}/dock?token={token}")
            wait_until("the dock's first state", lambda: page.js("document.body?.dataset.ready === '1'"), 15)
            first_state_s = time.monotonic() - t0
            first_state_ms = page.js("window.rtvcDock.firstState")

            dom = page.js(DOM_SUMMARY)
            assert [v["name"] for v in dom["voices"]] == list(PROFILES), dom
            assert all(v["visible"] and not v["disabled"] for v in dom["voices"]), dom
            assert [v["active"] for v in dom["voices"]] == [True, False, False, False], dom
            assert "Deeper" in dom["voices"][0]["text"] and "Higher" in dom["voices"][2]["text"], dom
            assert dom["mute"] == "false" and dom["voice_on"] == "true" and dom["monitor"] == "false", dom
            assert dom["gate"] == "true", dom
            assert dom["ptt"] and dom["meters"] and dom["conn"] == "connected" and dom["error"] is None, dom
            ranges = api.call("params.get")["ranges"]["pitch"]
            assert dom["pitch"] == {"min": ranges["min"], "max": ranges["max"], "value": -4.0, "shown": "-4.0"}, dom
            assert dom["latency"].endswith(" ms") and float(dom["latency"].split()[0]) > 0, dom

            # the meters move while the virtual device plays speech (15 Hz events, ~1 s)
            meters = "['in', 'out'].map((k) => +document.querySelector(`[data-testid=meter-${k}]`).dataset.rms)"
            samples = []
            for _ in range(12):
                samples.append(page.js(meters))
                time.sleep(0.09)
            for k, side in enumerate(("input", "output")):
                seen = [s[k] for s in samples]
                assert len(set(seen)) >= 4 and max(seen) > -50, f"the {side} meter did not move: {seen}"

            # the output limiter at work is shown on the output meter (its peak reads 0.0 dBFS then)
            api.call("params.set", values={"gain_db": 24.0})
            limit = "document.querySelector('[data-testid=meter-out] .meter-db').textContent"
            wait_until("the output meter to show the limiter", lambda: page.js(limit).startswith("lim -"), 5)
            assert float(page.js(limit).split()[1]) < -1.0, page.js(limit)
            api.call("params.set", values={"gain_db": 0.0})

            # a real click on another voice: the daemon switches (asked through its own API, not the page)
            t1 = time.monotonic()
            page.click("voice-higher")
            wait_until("the daemon on 'higher'", lambda: api.call("status.get")["control"]["profile"] == "higher", 10)
            switch_s = time.monotonic() - t1
            wait_until(
                "the page to show 'higher' with its pitch",
                lambda: (d := page.js(DOM_SUMMARY))["voices"][2]["active"] and d["pitch"]["value"] == 4.0,
                5,
            )
            switch_page_s = time.monotonic() - t1

            t2 = time.monotonic()
            page.click("mute")
            wait_until("the daemon muted", lambda: api.call("status.get")["control"]["mute"] is True, 5)
            mute_s = time.monotonic() - t2
            state = api.call("status.get")["control"]
            assert state["profile"] == "higher" and state["mute"] is True and state["silent"] is True, state
            wait_until("the page to show mute", lambda: page.js(DOM_SUMMARY)["mute"] == "true", 5)

            # the noise gate's button switches it off and on again
            page.click("gate")
            wait_until("the gate off", lambda: api.call("status.get")["control"]["gate"]["on"] is False, 5)
            wait_until("the page to show the gate off", lambda: page.js(DOM_SUMMARY)["gate"] == "false", 5)
            page.click("gate")
            wait_until("the gate on again", lambda: api.call("status.get")["control"]["gate"]["on"] is True, 5)
            wait_until(
                "its threshold shown", lambda: page.js(DOM_SUMMARY)["gate_threshold"] == "gate opens at -60 dBFS", 5
            )
            # Learn room: the daemon listens 2 s; its microphone here is the bundled speech, no room: refused, said
            page.click("gate-learn")
            wait_until("the button to say it listens", lambda: page.js(DOM_SUMMARY)["gate_learn"] is False, 5)
            wait_until("the refusal", lambda: "more than a room" in (page.js(DOM_SUMMARY)["error"] or ""), 15)
            wait_until("the button back", lambda: page.js(DOM_SUMMARY)["gate_learn"] == "Learn room", 5)
            assert api.call("status.get")["control"]["gate"]["threshold_db"] == -60.0
            page.click("error-close")
            wait_until("the refusal dismissed", lambda: page.js(DOM_SUMMARY)["error"] is None, 5)

            # the pitch slider: a click three quarters along its track sets the daemon's pitch there
            page.click("pitch", 0.75)
            pitch = wait_until(
                "the daemon's pitch to follow the slider",
                lambda: (v := api.call("params.get")["values"]["pitch"]) > 6.0 and v,
                5,
            )
            assert abs(pitch - (ranges["min"] + 0.75 * (ranges["max"] - ranges["min"]))) < 3, pitch
            wait_until("the page to show the pitch", lambda: page.js(DOM_SUMMARY)["pitch"]["value"] == pitch, 5)

            # push-to-talk: held while the mouse button is down, released when it goes up
            x, y = page.point("ptt")
            page.mouse("move", x, y)
            page.mouse("press", x, y)
            wait_until(
                "the daemon to see the talk key held", lambda: api.call("status.get")["control"]["ptt"]["held"] == 1, 5
            )
            page.mouse("release", x, y)
            wait_until("the talk key released", lambda: api.call("status.get")["control"]["ptt"]["held"] == 0, 5)

            # a profile edited into a broken one while the dock is open: the daemon's error is shown, nothing changes
            daemon.profile("edited").write_text('label = "Edited"\nvoice = "pitch"\npich = 3.0\n')
            page.click("voice-edited")
            error = wait_until("the page to show the daemon's error", lambda: page.js(DOM_SUMMARY)["error"], 5)
            assert "did not load" in error and "pich" in error, error
            assert api.call("status.get")["control"]["profile"] == "higher"
            wait_until(
                "the page to mark the broken voice",
                lambda: page.js("document.querySelector('[data-testid=voice-edited]').classList.contains('broken')"),
                5,
            )

            # the other way: another client turns the voice changer off and the page follows (events, no reload)
            api.call("voice.set", on=False)
            wait_until("the page to show the voice off", lambda: page.js(DOM_SUMMARY)["voice_on"] == "false", 5)
            # a voice another client (or an OBS scene) asks for does not load: the page says why too
            daemon.profile("edited").write_text('label = "Edited"\nvoice = "pitch"\nfrobnicate = 1\n')
            with pytest.raises(AssertionError, match="frobnicate"):
                api.call("voices.select", name="edited")
            wait_until("the page to show the other client's error", lambda: page.js(DOM_SUMMARY)["error"], 5)
            wait_until("its words", lambda: "frobnicate" in (page.js(DOM_SUMMARY)["error"] or ""), 5)
            # the footer: the engine's state, xruns and the block's load
            foot = lambda: page.js("document.getElementById('foot').textContent")  # noqa: E731
            wait_until("the load in the footer", lambda: re.search(r"load \d+%", foot()), 5)

            # another client saves the running voice as a new profile: its button is there, active, at once
            # (the page read the list again only every 16 s)
            api.call("profiles.save", name="saved", label="Saved here")
            wait_until(
                "the page to show the saved profile, active",
                lambda: any(v["name"] == "saved" and v["active"] for v in page.js(DOM_SUMMARY)["voices"]),
                3,
            )
            # a profile copied into the folder by hand gets its button within seconds, and loses it when removed
            # (before: at the next voice change, or the page's 16 s reread)
            names = lambda: [v["name"] for v in page.js(DOM_SUMMARY)["voices"]]  # noqa: E731
            daemon.profile("copied").write_text('label = "Copied in"\nvoice = "pitch"\n')
            wait_until("the copied profile's button", lambda: "copied" in names(), 5)
            daemon.profile("copied").unlink()
            wait_until("its button gone", lambda: "copied" not in names(), 5)

            # the screenshot: a PNG of the dock's size, not blank, the active voice and mute highlighted
            shot = base64.b64decode(page.send("Page.captureScreenshot", format="png")["data"])
            (tmp_path / "dock.png").write_bytes(shot)
            width, height, rows = decode_png(shot)
            assert (width, height) == (WIDTH, HEIGHT)
            counts = colours(rows)
            assert len(counts) >= 16, f"only {len(counts)} colours: blank page?"
            background = max(counts.values())
            assert background < 0.9 * WIDTH * HEIGHT, "the page is almost one colour"
            assert near(counts, (0x3B, 0x82, 0xF6)) > 500, "no active-voice highlight (#3b82f6) in the screenshot"
            assert near(counts, (0x99, 0x1B, 0x1B)) > 500, "no muted highlight (#991b1b) in the screenshot"

            # the daemon restarts: the page reconnects by itself and shows the new daemon's state
            api.close()
            daemon.stop()
            wait_until("the page to notice", lambda: page.js("document.body.dataset.ready") is None, 10)
            daemon.start()
            daemon.wait_ready()
            t3 = time.monotonic()
            wait_until("the page to reconnect", lambda: page.js("window.rtvcDock.connects") == 2, 15)
            reconnect_s = time.monotonic() - t3
            dom = page.js(DOM_SUMMARY)
            assert dom["conn"] == "connected" and dom["voices"][0]["active"] and dom["mute"] == "false", dom

            # a wrong token (say, renewed by `rtvc token --new`): the page says so once and stops knocking
            page.send("Page.navigate", url=f"http://127.0.0.1:{daemon.port}/dock?token={'w' * 43}")
            conn = "document.querySelector('[data-testid=\"conn\"]')?.dataset.state"  # (null while it loads)
            wait_until("the wrong token on the page", lambda: page.js(conn) == "error", 10)
            time.sleep(3)
            assert daemon.log().count("wrong token, closing it") == 1, daemon.log()[-2000:]
            assert "Copy the dock URL again" in page.js(DOM_SUMMARY)["error"]

            assert not page.exceptions, f"page script errors: {page.exceptions}"
            assert "Traceback" not in daemon.log(), daemon.log()
            print(
                f"\ndock: first state {1000 * first_state_s:.0f} ms after navigate ({first_state_ms:.0f} ms after "
                f"navigation start); click -> daemon voice {1000 * switch_s:.0f} ms (page shows its pitch at"
                f" {1000 * switch_page_s:.0f} ms), mute {1000 * mute_s:.0f} ms;"
                f" reconnect {1000 * reconnect_s:.0f} ms after the daemon listens; screenshot {tmp_path / 'dock.png'}"
            )
        finally:
            with contextlib.suppress(Exception):
                api.close()


def test_the_dock_shows_the_obs_link_and_why_it_is_down(tmp_path: Path) -> None:
    """The dock (and the TUI) showed nothing of the OBS link: with OBS gone it said "connected · live" while
    status.get said links.obs "disconnected". A scene mapped to a profile that cannot load is said at start, and
    each change of the link is one log line (the link's own and serve's made two)."""
    d = Daemon(tmp_path / "daemon", free_port())
    closed = free_port()  # (nothing listens: "connection refused")
    d.profile("broken").write_text('voice = "pitch"\n[params]\npitch = 999\n')
    d.config.write_text(
        d.config.read_text() + f'\n[obs]\nenabled = true\nport = {closed}\n[obs.scenes]\n"Gaming" = "broken"\n'
    )
    d.start()
    try:
        with chromium(tmp_path / "chromium") as page:
            d.wait_ready()
            page.send("Page.navigate", url=f"http://127.0.0.1:{d.port}/dock?token={d.token()}")
            wait_until("the dock's first state", lambda: page.js("document.body?.dataset.ready === '1'"), 15)
            shown = "(() => { const e = document.getElementById('obs'); return [e.hidden, e.textContent, e.title]; })()"
            wait_until("the OBS link on the dock", lambda: page.js(shown)[1] == "OBS disconnected", 10)
            hidden, _text, title = page.js(shown)
            assert not hidden and f"127.0.0.1:{closed}: connection refused" in title, title
            # why, on the message line too (the tooltip alone before; the README says the message line)
            error = page.js(DOM_SUMMARY)["error"] or ""
            assert f"OBS disconnected: OBS at 127.0.0.1:{closed}: connection refused" in error, error
            assert "(rtvc keeps trying)" in error and "retrying in" not in error, error
            # an OBS dock is often 250-300 px wide: the header with the link's state fits it (it was 377 px wide)
            for width in (250, 300):
                page.send("Emulation.setDeviceMetricsOverride", width=width, height=HEIGHT, deviceScaleFactor=1,
                          mobile=False)  # fmt: skip
                wide = page.js("[document.documentElement.scrollWidth, document.querySelector('header').scrollWidth]")
                assert max(wide) <= width, (width, wide)
            # OBS back: its top bar said "OBS connected" while the message line still said "OBS disconnected: ...
            # connection refused" until its 12 s were up
            with obs_stand_in(closed):
                link = f"[{shown}[1], {DOM_SUMMARY}.error]"
                _text, error = wait_until(
                    "OBS connected", lambda: (got := page.js(link))[0] == "OBS connected" and got, 10
                )
                assert "OBS disconnected" not in (error or ""), error
                # what [obs.scenes] gets wrong, connected: on the message line (the log alone before: a review), and
                # a mark beside "OBS connected" whose tooltip lists it all
                error = wait_until("the scenes' problems", lambda: (e := page.js(DOM_SUMMARY)["error"] or "")
                                   and "OBS: " in e and e.split(), 10)  # fmt: skip
                error = " ".join(error)
                assert error.startswith("OBS: [obs.scenes] 'Gaming' = 'broken': the profile cannot load now:"), error
                assert "(and 1 more: rtvc ctl status)" in error, error
                warned = page.js("document.getElementById('obs').dataset.warned !== undefined")
                title = page.js(shown)[2]
                assert warned and "[obs.scenes] 'Gaming': OBS has no scene of that name (" in title, title
                # the daemon gone: its link's last state ("OBS connected") is not shown as if still known (a review)
                d.stop()
                visible = "getComputedStyle(document.getElementById('obs')).visibility"
                wait_until("the link's state hidden", lambda: page.js(visible) == "hidden", 10)
        log = d.log()
        assert "[obs.scenes] 'Gaming' = 'broken': the profile cannot load now:" in log and "999" in log, log
        assert "is rtvc's own control port" not in log
        assert log.count("connection refused") == 1, log  # (one line, not one per retry nor two per change)
        assert "OBS link: disconnected" not in log, log
    finally:
        d.stop()


def test_a_daemon_with_no_voice_says_why_on_the_dock_until_a_voice_is_picked(tmp_path: Path) -> None:
    """`rtvc serve` whose start profile did not load comes up with no voice (it stopped at start before): the dock
    says why and that the output is silent, no voice marked playing, until one is clicked."""
    d = Daemon(tmp_path / "daemon", free_port())
    d.profile("default").write_text('label = "Deeper"\nvoice = "pitch"\n[params]\npitch = 99.0\n')
    d.start()
    try:
        with chromium(tmp_path / "chromium") as page:
            d.wait_ready()
            api = RpcClient(d.port, d.token())
            try:
                page.send("Page.navigate", url=f"http://127.0.0.1:{d.port}/dock?token={d.token()}")
                wait_until("the dock's first state", lambda: page.js("document.body?.dataset.ready === '1'"), 15)
                dom = wait_until("the reason on the dock", lambda: (x := page.js(DOM_SUMMARY))["error"] and x, 5)
                assert dom["error"].strip().startswith("voice 'default' (voice.profile) did not load: "), dom
                assert "'params.pitch' = 99.0" in dom["error"] and "The output is silent: pick a voice." in dom["error"]
                assert not any(v["active"] for v in dom["voices"]) and dom["pitch"] is None, dom
                foot = page.js("document.getElementById('foot').textContent")
                assert "no voice: 'default' did not load" in foot, foot
                sticky = page.js("document.getElementById('error').dataset.sticky")
                assert sticky == "1", sticky  # (kept: not an error that goes after 12 s)
                # another error said meanwhile (a voice that cannot load, clicked) takes its place for its 12 s: then
                # the reason is back (it went with that error's box, the output silent and nothing saying why)
                d.profile("edited").write_text('voice = "pitch"\n[params]\npitch = 99.0\n')
                wait_until("the broken voice listed", lambda: any(v["name"] == "edited" and "cannot load" in v["text"]
                           for v in page.js(DOM_SUMMARY)["voices"]), 20)  # fmt: skip
                page.click("voice-edited")
                wait_until("its error", lambda: "edited: " in (page.js(DOM_SUMMARY)["error"] or ""), 5)
                wait_until("the reason back", lambda: "did not load" in (page.js(DOM_SUMMARY)["error"] or ""), 20)
                assert page.js("document.getElementById('error').dataset.sticky") == "1"
                page.click("voice-higher")
                wait_until("higher selected", lambda: api.call("status.get")["control"]["profile"] == "higher", 15)
                wait_until("the reason gone", lambda: page.js(DOM_SUMMARY)["error"] is None, 5)
                dom = page.js(DOM_SUMMARY)
                assert [v["name"] for v in dom["voices"] if v["active"]] == ["higher"] and dom["pitch"], dom
            finally:
                api.close()
    finally:
        d.stop()


def key(page: Cdp, kind: str, name: str) -> None:
    """A real key event: "down" or "up" of Space, Tab or ArrowRight."""
    code = {"Space": (" ", 32), "Tab": ("Tab", 9), "ArrowRight": ("ArrowRight", 39)}[name]
    page.send(
        "Input.dispatchKeyEvent",
        type="keyDown" if kind == "down" else "keyUp",
        key=code[0],
        code=name,
        windowsVirtualKeyCode=code[1],
        **({"text": " "} if kind == "down" and name == "Space" else {}),
    )


def test_the_talk_key_lets_go_wherever_the_focus_went_and_a_hung_daemon_is_said(daemon: Daemon, tmp_path: Path):
    """Space held on "Hold to talk", then Tab (or a click on another control) before it was let go: the key went up
    elsewhere and the talk key stayed held, the voice on air with nobody holding it. A daemon stopped (SIGSTOP) with
    its connection open showed "connected" for as long as it lasted, and clicks made then ran when it woke: now the
    dock says it is not answering within seconds, sends nothing meanwhile, and is back when it answers again."""
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        api = RpcClient(daemon.port, daemon.token())
        try:
            api.call("ptt.mode", on=True)
            page.send("Page.navigate", url=f"http://127.0.0.1:{daemon.port}/dock?token={daemon.token()}")
            wait_until("the dock's first state", lambda: page.js("document.body?.dataset.ready === '1'"), 15)
            held = lambda: api.call("status.get")["control"]["ptt"]["held"]  # noqa: E731
            for away in ("Tab", "click"):
                page.js("document.getElementById('ptt').focus()")
                key(page, "down", "Space")
                wait_until("the talk key held", lambda: held() == 1, 5)
                if away == "Tab":
                    key(page, "down", "Tab")
                    key(page, "up", "Tab")
                else:
                    page.click("gate")
                wait_until("the talk key let go as the focus left", lambda: held() == 0, 5)
                key(page, "up", "Space")
                time.sleep(0.3)
                assert held() == 0 and page.js("document.getElementById('ptt').getAttribute('aria-pressed')") == "false"
            api.call("gate.set", on=True)
            assert daemon.proc is not None
            os.kill(daemon.proc.pid, signal.SIGSTOP)
            try:
                wait_until(
                    "the dock to say the daemon is not answering", lambda: page.js(DOM_SUMMARY)["conn"] == "error", 10
                )
                assert page.js("document.getElementById('conn').textContent") == "not answering"
                assert "rtvc has sent nothing for 5 s" in page.js("document.getElementById('foot').textContent")
                assert page.js("document.getElementById('mute').disabled") is True
                page.js("document.getElementById('mute').disabled = false")  # (a click that comes anyway: not sent)
                page.click("mute")
                time.sleep(0.3)
            finally:
                os.kill(daemon.proc.pid, signal.SIGCONT)
            wait_until("the dock to be back", lambda: page.js(DOM_SUMMARY)["conn"] == "connected", 10)
            time.sleep(1.0)
            assert api.call("status.get")["control"]["mute"] is False  # (the click while it slept was not queued)
            assert page.js("document.getElementById('mute').disabled") is False
            # the playing voice's profile file removed: its button went, and no button said what was on air
            api.call("voices.select", name="higher")
            daemon.profile("higher").unlink()

            def gone() -> dict | None:
                return next((v for v in page.js(DOM_SUMMARY)["voices"] if v["name"] == "higher"), None)

            listed = lambda: [v["name"] for v in api.call("voices.list")["voices"]]  # noqa: E731
            wait_until("the voice list without higher.toml", lambda: "higher" not in listed(), 5)
            time.sleep(1.0)
            shown = gone()
            assert shown and shown["active"] and shown["disabled"] and shown["text"] == "Higherfile removed", shown
            assert sum(v["active"] for v in page.js(DOM_SUMMARY)["voices"]) == 1
        finally:
            with contextlib.suppress(Exception):
                api.close()


def test_a_slider_keeps_the_keyboard_through_voice_switches_is_held_while_a_voice_loads_and_integers_have_one(
    daemon: Daemon, tmp_path: Path, tiny_v2_models: Path
) -> None:
    """A review: every voice switch (another client's, OBS's) rebuilt the sliders and took the keyboard's focus off
    the one the user was on; a slider moved during a voice's load was refused and snapped back (the voice buttons
    are off then); a multi-speaker RVC voice's speaker (an integer) had no slider; a voice's tooltip named its file,
    not its label (cut on the button)."""
    daemon.profile("tiny").write_text(
        f'label = "Tiny RVC voice with a long label"\nvoice = "rvc"\n[model]\npath = "{tiny_v2_models / "v2.pth"}"\n'
        f'content = "{tiny_v2_models / "hubert.pt"}"\nf0 = "yin"\n'
    )
    focused = "document.activeElement && document.activeElement.id"
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        api = RpcClient(daemon.port, daemon.token())
        try:
            open_dock(page, daemon)
            gain = lambda: api.call("params.get")["values"]["gain_db"]  # noqa: E731
            page.js("document.getElementById('more').open = true")
            page.js("document.getElementById('param-gain_db').focus()")
            assert page.js(focused) == "param-gain_db"
            before = gain()
            for kind in ("down", "up"):
                key(page, kind, "ArrowRight")
            wait_until("the step on the daemon", lambda: gain() == before + 0.5, 5)
            api.call("voices.select", name="higher")  # (another client: a Stream Deck, an OBS scene)
            held = "document.getElementById('param-gain_db').getAttribute('aria-disabled')"
            loaded = lambda: (c := api.call("status.get")["control"])["profile"] == "higher" and not c["loading"]  # noqa: E731
            wait_until("'higher' in", loaded, 10)
            wait_until("the page on 'higher'", lambda: page.js(DOM_SUMMARY)["voices"][2]["active"], 5)
            wait_until("the sliders free", lambda: page.js(held) == "false", 5)
            time.sleep(1.0)  # (the page reads the voice's parameters again after it)
            assert page.js(focused) == "param-gain_db"
            before = gain()
            for kind in ("down", "up"):
                key(page, kind, "ArrowRight")
            # (from the new voice's value: the page's hold on the echo of the step before is gone with that voice)
            wait_until("the next step on the daemon", lambda: gain() == before + 0.5, 5)
            assert page.js(DOM_SUMMARY)["error"] is None, page.js(DOM_SUMMARY)["error"]
            title = page.js("document.querySelector('[data-testid=voice-tiny]').title")
            assert title.startswith("Tiny RVC voice with a long label \u2013 tiny (rvc)"), title

            # an RVC voice's load (seconds): the sliders are held, the focus stays, a key changes nothing
            loading = threading.Thread(target=lambda: RpcClient(daemon.port, daemon.token()).call(
                "voices.select", name="tiny"), daemon=True)  # fmt: skip
            loading.start()
            wait_until("the sliders held", lambda: page.js(held) == "true", 10)
            assert page.js(focused) == "param-gain_db"
            before = gain()
            for kind in ("down", "up"):
                key(page, kind, "ArrowRight")
            time.sleep(0.5)
            # nothing sent: sent during the load, the daemon refuses it and the page shows that; the daemon's value
            # is the old voice's still unless the load ended meanwhile (CI's took under 0.5 s)
            now = gain()
            still = loading.is_alive()  # (after the read: the value read was the old voice's while it still loads)
            assert page.js(DOM_SUMMARY)["error"] is None, page.js(DOM_SUMMARY)
            assert now == before or not still, (now, before)
            loading.join(120)
            wait_until("the RVC voice's sliders", lambda: page.js("!!document.getElementById('param-speaker')"), 10)
            wait_until("no longer held", lambda: page.js(held) == "false", 5)
            speaker = api.call("params.get")["ranges"]["speaker"]
            got = page.js("(() => { const e = document.getElementById('param-speaker');"
                          " return [+e.min, +e.max, +e.step, +e.value]; })()")  # fmt: skip
            assert got == [speaker["min"], speaker["max"], 1, 0], (got, speaker)
            assert page.js(focused) == "param-gain_db"  # (still there in the RVC voice: kept)
            assert not page.exceptions, page.exceptions
        finally:
            api.close()


def test_obs_settings_without_enabled_are_said(tmp_path: Path) -> None:
    """[obs] with a port and scenes but no `enabled = true`: rtvc never connected and said nothing at all."""
    d = Daemon(tmp_path / "daemon", free_port())
    d.config.write_text(d.config.read_text() + '\n[obs]\nport = 4461\n[obs.scenes]\n"Gaming" = "higher"\n')
    d.start()
    try:
        d.wait_ready()
        api = RpcClient(d.port, d.token())
        try:
            link = api.call("status.get")["control"]["links"]["obs"]
        finally:
            api.close()
        assert link["state"] == "stopped" and "set enabled = true under [obs]" in link["detail"], link
        assert "[obs] sets obs.port, obs.scenes but not enabled = true: rtvc does not connect to OBS" in d.log()
    finally:
        d.stop()


def open_dock(page: Cdp, daemon: Daemon) -> None:
    """The dock loaded as OBS loads it, with the token in its URL, and its first state shown."""
    page.send("Page.navigate", url=f"http://127.0.0.1:{daemon.port}/dock?token={daemon.token()}")
    wait_until("the dock's first state", lambda: page.js("document.body?.dataset.ready === '1'"), 15)


def test_a_double_click_on_a_slider_keeps_its_value_and_a_click_on_the_playing_voice_brings_its_settings_back(
    daemon: Daemon, tmp_path: Path
) -> None:
    """A double click on Pitch set the voice's neutral 0, not anything the user chose: on air, the streamer's own
    pitch went out with no warning. And a click on the playing voice did nothing: no way back to its saved pitch."""
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        api = RpcClient(daemon.port, daemon.token())
        try:
            open_dock(page, daemon)
            api.call("params.set", values={"pitch": 7.0})
            wait_until("the page to show pitch 7", lambda: page.js(DOM_SUMMARY)["pitch"]["value"] == 7.0, 5)
            r = api.call("params.get")["ranges"]["pitch"]
            width = page.js("document.querySelector('[data-testid=pitch]').getBoundingClientRect().width")
            # on the thumb (16 px wide): the click itself does not move it
            at = (8 + (7.0 - r["min"]) / (r["max"] - r["min"]) * (width - 16)) / width
            x, y = page.point("pitch", at)
            page.mouse("move", x, y)
            for count in (1, 2):
                page.mouse("press", x, y, count)
                page.mouse("release", x, y, count)
            time.sleep(1.0)
            pitch = api.call("params.get")["values"]["pitch"]
            assert abs(pitch - 7.0) <= 1.0, f"a double click on the pitch slider set it to {pitch}"
            assert abs(page.js(DOM_SUMMARY)["pitch"]["value"] - 7.0) <= 1.0

            # the playing voice clicked: its profile's pitch (-4) is back, on the daemon and on the page
            assert page.js(DOM_SUMMARY)["voices"][0]["active"]
            page.click("voice-default")
            wait_until("the daemon's pitch back at -4", lambda: api.call("params.get")["values"]["pitch"] == -4.0, 10)
            wait_until("the page to show it", lambda: page.js(DOM_SUMMARY)["pitch"]["shown"] == "-4.0", 5)
            assert api.call("status.get")["control"]["profile"] == "default"
            dom = page.js(DOM_SUMMARY)
            assert dom["error"] is None and [v["active"] for v in dom["voices"]] == [True, False, False, False], dom
            assert not page.exceptions, page.exceptions
        finally:
            api.close()


CONTROL_BOXES = """[...document.querySelectorAll('button, input, output, .meter')]
  .filter((e) => !e.closest('#error') && e.id !== 'msg-hint' && e.checkVisibility())  // (not a closed More's)
  .map((e) => { const r = e.getBoundingClientRect();
                return [e.id || e.dataset.name || e.className, r.x, r.y, r.width, r.height]; })"""


def test_a_message_moves_no_control(daemon: Daemon, tmp_path: Path) -> None:
    """A message (another client's voice that did not load, the OBS link down) pushed every control down by about
    130 px for its 12 s: a streamer reaching for Mute hit another button. Now it shows where it moves nothing."""
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        api = RpcClient(daemon.port, daemon.token())
        try:
            open_dock(page, daemon)
            before = page.js(CONTROL_BOXES)
            daemon.profile("edited").write_text('label = "Edited"\nvoice = "pitch"\nfrobnicate = 1\n')
            with pytest.raises(AssertionError, match="frobnicate"):
                api.call("voices.select", name="edited")  # (a Stream Deck's key, say)
            wait_until("the message", lambda: "frobnicate" in (page.js(DOM_SUMMARY)["error"] or ""), 5)
            assert page.js(CONTROL_BOXES) == before
            # and it is seen: inside the dock, over no control
            box = page.js("(() => { const r = document.getElementById('error').getBoundingClientRect();"
                          " return [r.x, r.y, r.width, r.height]; })()")  # fmt: skip
            assert box[2] > 0 and box[1] >= 0 and box[1] + box[3] <= HEIGHT, box
            for name, x, y, w, h in before:
                overlap = x < box[0] + box[2] and box[0] < x + w and y < box[1] + box[3] and box[1] < y + h
                assert not overlap, f"the message covers {name}: {box} over {(x, y, w, h)}"
            # (in view: no hint; the page's IntersectionObserver says so after a layout, not at once)
            wait_until("no hint", lambda: page.js("document.getElementById('msg-hint').hidden"), 2)
            page.click("error-close")
            wait_until("the message dismissed", lambda: page.js(DOM_SUMMARY)["error"] is None, 5)
            assert page.js(CONTROL_BOXES) == before

            # a short dock (OBS docks are often 250-400 px high): the message below its fold was seen by nobody
            # (a review); a hint over the latency readout says it is there, moving nothing, and a click shows it
            page.send("Emulation.setDeviceMetricsOverride", width=250, height=400, deviceScaleFactor=1, mobile=False)
            wait_until(
                "laid out at 250 px", lambda: page.js("window.innerWidth === 250 && window.innerHeight === 400"), 5
            )
            time.sleep(0.3)  # (and drawn)
            short = page.js(CONTROL_BOXES)
            with pytest.raises(AssertionError, match="frobnicate"):
                api.call("voices.select", name="edited")
            wait_until("the hint", lambda: page.js("!document.getElementById('msg-hint').hidden"), 5)
            assert page.js(CONTROL_BOXES) == short
            hint = page.js("(() => { const r = document.getElementById('msg-hint').getBoundingClientRect();"
                           " return [r.x, r.y, r.width, r.height]; })()")  # fmt: skip
            assert hint[1] >= 0 and hint[1] + hint[3] <= 400 and hint[0] + hint[2] <= 250, hint
            for name, x, y, w, h in short:
                overlap = x < hint[0] + hint[2] and hint[0] < x + w and y < hint[1] + hint[3] and hint[1] < y + h
                assert not overlap, f"the hint covers {name}: {hint} over {(x, y, w, h)}"
            # scrolled a little (to reach a lower control): the hint stays in the top bar, which stays in view, over
            # no control (fixed to the window, it lay over a voice button or Hear me scrolled under it: a review)
            page.js("window.scrollBy(0, 60)")
            rects = page.js("['msg-hint', 'bar'].map((id) => { const e = id === 'bar' ? document.querySelector('.bar')"
                            " : document.getElementById(id); const r = e.getBoundingClientRect();"
                            " return [r.left, r.top, r.right, r.bottom]; })")  # fmt: skip
            (hl, ht, hr, hb), (bl, bt, br, bb) = rects
            assert page.js("window.scrollY") > 0 and bl <= hl and bt <= ht and hr <= br and hb <= bb, rects
            assert page.js("!document.getElementById('msg-hint').hidden")
            page.click("msg-hint")
            seen = "document.getElementById('error').getBoundingClientRect().bottom <= 400"
            wait_until("the message in view", lambda: page.js(seen), 5)
            wait_until("the hint gone", lambda: page.js("document.getElementById('msg-hint').hidden"), 5)
            assert not page.exceptions, page.exceptions
        finally:
            api.close()


def test_with_many_voices_mute_stays_on_screen_and_the_voice_playing_is_shown(daemon: Daemon, tmp_path: Path):
    """With 38 profiles at 360x640 the voice buttons filled the dock and pushed Mute, Voice and the talk button below
    its fold (a review): a streamer had to scroll to silence the stream. The voices scroll in a box of their own now,
    the controls under it in view, and a voice picked elsewhere (an OBS scene, rtvc ctl) is scrolled into that box's
    view."""
    for k in range(34):
        daemon.profile(f"extra{k:02d}").write_text(f'label = "Extra voice {k}"\nvoice = "pitch"\n')
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        api = RpcClient(daemon.port, daemon.token())
        try:
            open_dock(page, daemon)
            assert len(page.js(DOM_SUMMARY)["voices"]) == 38
            bottom = "(id) => document.getElementById(id).getBoundingClientRect().bottom"
            for control in ("mute", "voice-on", "ptt", "ptt-mode", "meter-out"):
                at = page.js(f"({bottom})('{control}')")
                assert 0 < at <= HEIGHT, f"{control} at {at} px: below the {HEIGHT} px dock"
            assert page.js("document.documentElement.scrollHeight") <= HEIGHT + 1, "the dock itself scrolls"
            # a voice at the end of the list, picked by another client: its button comes into the box's view
            api.call("voices.select", name="extra33")
            wait_until("the page to show 'extra33' playing", lambda: any(
                v["name"] == "extra33" and v["active"] for v in page.js(DOM_SUMMARY)["voices"]), 10)  # fmt: skip
            seen = """(() => { const b = document.querySelector('[data-testid=voice-extra33]').getBoundingClientRect();
                const box = document.getElementById('voices').getBoundingClientRect();
                return b.top >= box.top - 0.5 && b.bottom <= box.bottom + 0.5; })()"""
            wait_until("the playing voice scrolled into view", lambda: page.js(seen), 5)
            shot = base64.b64decode(page.send("Page.captureScreenshot", format="png")["data"])
            (tmp_path / "dock-many.png").write_bytes(shot)  # (kept: what it looks like)
            page.click("mute")
            wait_until("the daemon muted", lambda: api.call("status.get")["control"]["mute"] is True, 5)
            assert not page.exceptions, page.exceptions
        finally:
            api.close()


CUT_OFF = """[...document.querySelectorAll('button, input, output, .meter-db, .latency, .conn, .air')]
  .filter((e) => !e.closest('[hidden]') && e.getBoundingClientRect().width > 0)
  .filter((e) => { const r = e.getBoundingClientRect();
                   return r.left < 0 || r.right > innerWidth + 0.5
                     || (!e.classList.contains('voice') && e.scrollWidth > e.clientWidth + 1); })
  .map((e) => e.id || e.dataset.name || e.className)"""


def test_the_dock_fits_200_px_and_still_looks_right_wide(daemon: Daemon, tmp_path: Path) -> None:
    """OBS docks are often 200 px wide: below about 230 px the dock scrolled sideways, the Gate and talk buttons,
    the pitch's value and the meters' dB cut off. Nothing is cut nor scrolls at 200 px; at 360 px the four toggles
    are one row as before, and at 1600 px too, the voices' names whole. The screenshots are kept (dock-WIDTH.png)."""
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        open_dock(page, daemon)
        wait_until("the meters' dB", lambda: page.js("document.querySelector('#meter-in .meter-db').textContent")
                   .lstrip("-").replace(".", "").isdigit(), 5)  # fmt: skip
        tops = "[...document.querySelectorAll('.toggles button')].map((e) => e.getBoundingClientRect().top)"
        for width in (200, 360, 1600):
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=HEIGHT, deviceScaleFactor=1,
                      mobile=False)  # fmt: skip
            wide = page.js("document.documentElement.scrollWidth")
            assert wide <= width, f"at {width} px the page is {wide} px wide: it scrolls sideways"
            assert page.js(CUT_OFF) == [], f"cut off at {width} px"
            if width > 200:  # (two voices a row at 200 px: "Passthrough" takes its ellipsis there, and only there)
                cut = "[...document.querySelectorAll('.voice')].filter((e) => e.scrollWidth > e.clientWidth)"
                assert page.js(cut + ".map((e) => e.dataset.name)") == [], f"voice names cut at {width} px"
            rows = len(set(page.js(tops)))
            assert rows == (2 if width == 200 else 1), f"the toggles in {rows} rows at {width} px"
            shot = base64.b64decode(page.send("Page.captureScreenshot", format="png")["data"])
            (tmp_path / f"dock-{width}.png").write_bytes(shot)
        assert not page.exceptions, page.exceptions


def test_a_renewed_token_leaves_no_engine_line_of_the_connection_before(daemon: Daemon, tmp_path: Path) -> None:
    """After `rtvc token --new` the dock said the token was refused, and its footer kept "running · xruns 0 ·
    load 6%" from the connection the daemon had closed, as if the engine were still watched."""
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        open_dock(page, daemon)
        foot = "document.getElementById('foot').textContent"
        wait_until("the engine's line", lambda: "load" in page.js(foot), 10)
        env = {**os.environ, "XDG_CONFIG_HOME": str(daemon.xdg)}
        new = subprocess.run([sys.executable, "-m", "rtvc", "token", "--new"], env=env, cwd=daemon.root,
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        assert new.returncode == 0, new.stderr
        wait_until("the refusal", lambda: page.js(DOM_SUMMARY)["conn"] == "error", 10)
        assert "Copy the dock URL again" in page.js(DOM_SUMMARY)["error"]
        shown = page.js(foot)
        assert "running" not in shown and "load" not in shown and "xruns" not in shown, shown


def test_voice_off_is_said_on_the_pill_as_the_streamers_own_voice(daemon: Daemon, tmp_path: Path) -> None:
    """With the voice changer off the microphone goes out as it is: the pill still said a green "live", as with the
    voice on, and a streamer who had pressed Voice off by mistake saw nothing wrong."""
    air = "(() => { const e = document.getElementById('air'); return [e.dataset.state, e.textContent]; })()"
    with chromium(tmp_path / "chromium") as page:
        daemon.wait_ready()
        open_dock(page, daemon)
        wait_until("the pill live", lambda: page.js(air) == ["live", "live"], 10)
        page.js("document.getElementById('voice-on').click()")
        wait_until("the pill on the own voice", lambda: page.js(air) == ["own", "own voice"], 10)
        colour = page.js("getComputedStyle(document.getElementById('air')).backgroundColor")
        assert colour == "rgb(120, 53, 15)", colour  # (amber, not the green of live)
        page.js("document.getElementById('mute').click()")  # (muted wins: nothing goes out)
        wait_until("the pill muted", lambda: page.js(air) == ["silent", "muted"], 10)
        page.js("document.getElementById('mute').click()")
        page.js("document.getElementById('voice-on').click()")
        wait_until("the pill live again", lambda: page.js(air) == ["live", "live"], 10)
        assert not page.exceptions, page.exceptions


def jack_daemon(jack_bare, tmp_path: Path) -> Daemon:
    """`rtvc serve` started on the test's JACK server, its sound card ("system") in and out."""
    d = Daemon(tmp_path / "daemon", free_port())
    d.devices = ["--host-api", "JACK", "--input-device", "system", "--output-device", "system",
                 "--output-channels", "1"]  # fmt: skip
    d.env = {"JACK_DEFAULT_SERVER": jack_bare.name, "JACK_NO_START_SERVER": "1"}
    d.start()
    return d


@pytest.mark.skipif(not shutil.which("jackd"), reason="needs jackd (jackd2): scripts/system-deps.sh test")
def test_a_microphone_whose_jack_program_closed_stays_said_until_it_is_back(jack_bare, tmp_path: Path) -> None:
    """The program chosen as the microphone (a USB headset through alsa_in, any device under PipeWire's JACK) closed:
    the dock said it for 12 s, then "live" with nothing wrong while the voice heard nothing (a review). Now the
    message stays while the device is away, and goes when it is back."""
    from test_device_switch import Program

    program = Program(jack_bare.name, "rtvc-dockmic")
    d = jack_daemon(jack_bare, tmp_path)
    try:
        with chromium(tmp_path / "chromium") as page:
            d.wait_ready()
            open_dock(page, d)
            air = "document.getElementById('air').dataset.state"
            wait_until("the engine live", lambda: page.js(air) == "live", 15)
            # chosen (the streams' connections known to the watch that starts with them: rtvc.audio.switch)
            api = RpcClient(d.port, d.token())
            try:
                assert "rtvc-dockmic" in api.call("devices.select", input="rtvc-dockmic")["in_use"]["input"]
            finally:
                api.close()
            program.kill()
            gone = "the input device 'rtvc-dockmic' is gone (its JACK program closed): the voice hears no microphone"
            # (the routing event's "JACK: rtvc:in_1 lost its connection to rtvc-dockmic:out_1 ..." may come after it
            # and stand for its 12 s; then this comes back in its place)
            wait_until(
                "the loss on the message line", lambda: "rtvc-dockmic" in (page.js(DOM_SUMMARY)["error"] or ""), 10
            )
            time.sleep(13)  # (past an event's 12 s: it stays)
            assert gone in " ".join((page.js(DOM_SUMMARY)["error"] or "").split()), page.js(DOM_SUMMARY)
            assert page.js("document.getElementById('error').dataset.sticky") == "1"
            program = Program(jack_bare.name, "rtvc-dockmic")
            wait_until("the message gone with the device back", lambda: gone not in " ".join(
                (page.js(DOM_SUMMARY)["error"] or "").split()), 15)  # fmt: skip
            assert not page.exceptions, page.exceptions
    finally:
        d.stop()
        program.kill()


@pytest.mark.skipif(not shutil.which("jackd"), reason="needs jackd (jackd2): scripts/system-deps.sh test")
def test_an_engine_whose_devices_went_is_said_in_red_until_it_runs_again(jack_bare, tmp_path: Path) -> None:
    """The JACK server gone under rtvc serve: the dock's pill said "stalled" (or "failed") in the same grey as
    "connecting", the latency and the load stayed at their last numbers, and why was in the footer's small print
    alone. Now the pill is red, the reason stays on the message line, and the latency reads "– ms"."""
    d = jack_daemon(jack_bare, tmp_path)
    try:
        with chromium(tmp_path / "chromium") as page:
            d.wait_ready()
            open_dock(page, d)
            air = "(() => { const e = document.getElementById('air'); return [e.dataset.state, e.textContent]; })()"
            wait_until("the engine live", lambda: page.js(air) == ["live", "live"], 15)
            assert jack_bare.proc is not None

            def in_trouble(states: tuple[str, ...]) -> None:
                state = wait_until("the pill in trouble", lambda: (a := page.js(air))[0] == "trouble" and a[1], 15)
                assert state in states, state
                dom = page.js(DOM_SUMMARY)
                assert dom["latency"] == "\u2013 ms", dom
                assert (dom["error"] or "").strip().startswith(f"engine {state}: "), dom
                assert page.js("document.getElementById('error').dataset.sticky") == "1"
                assert "load" not in page.js("document.getElementById('foot').textContent")
                colour = page.js("getComputedStyle(document.getElementById('air')).backgroundColor")
                assert colour == "rgb(239, 68, 68)", colour  # (--bad)

            # the server stopped a while (SIGSTOP: no callbacks), then on again: the message goes with the trouble
            os.kill(jack_bare.proc.pid, signal.SIGSTOP)
            try:
                in_trouble(("stalled",))
            finally:
                os.kill(jack_bare.proc.pid, signal.SIGCONT)
            wait_until("the engine live again", lambda: page.js(air) == ["live", "live"], 15)
            wait_until("the message gone", lambda: page.js(DOM_SUMMARY)["error"] is None, 5)
            assert page.js(DOM_SUMMARY)["latency"] != "\u2013 ms"
            # the server gone for good
            jack_bare.stop()
            in_trouble(("stalled", "failed"))
            assert page.js("window.rtvcDock.connects") == 1  # (all on one connection: no reload cleared it)
            assert not page.exceptions, page.exceptions
    finally:
        d.stop()
