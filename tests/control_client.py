"""A JSON-RPC client for the control API tests: a real websocket client, every frame kept as it came."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class RpcFailure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Client:
    """Replies are matched by id; notifications queue up in `events`; `frames` holds every text received."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.frames: list[str] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self.closed: asyncio.Future[tuple[int | None, str]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, token: str | None = None, path: str = "/rpc", **kw: Any) -> Client:
        c = cls(await connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10, **kw))
        if token is not None:
            await c.call("auth", token=token)
        return c

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                self.frames.append(text)
                msg = json.loads(text)
                if "id" in msg and msg["id"] in self._waiting:
                    self._waiting.pop(msg["id"]).set_result(msg)
                elif msg.get("method") == "event":
                    self.events.put_nowait(msg["params"])
                else:
                    self.events.put_nowait({"type": "unmatched", "msg": msg})
        except ConnectionClosed:
            pass
        self.closed.set_result((self.ws.close_code, self.ws.close_reason or ""))

    async def send_raw(self, text: str | bytes, id_: Any = None, timeout: float = 10) -> dict[str, Any]:
        """Send anything; the reply carrying `id_` (None: the next reply with id null)."""
        fut = asyncio.get_running_loop().create_future()
        self._waiting[id_] = fut
        await self.ws.send(text)
        return await asyncio.wait_for(fut, timeout)

    async def request(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next, "method": method}
        if params:
            msg["params"] = params
        return await self.send_raw(json.dumps(msg), self._next)

    async def call(self, method: str, **params: Any) -> Any:
        reply = await self.request(method, **params)
        if "error" in reply:
            raise RpcFailure(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]

    async def event(self, kind: str = "state", timeout: float = 5) -> dict[str, Any]:
        while True:
            ev = await asyncio.wait_for(self.events.get(), timeout)
            if ev.get("type") == kind:
                return ev

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait({self._reader}, timeout=5)


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A hand-written HTTP/1.1 request on a plain socket: exactly the bytes we choose (Host included)."""
    h = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in h.items()), "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall("\r\n".join(lines).encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if data.startswith(b"HTTP/1.1 101 ") and b"\r\n\r\n" in data:
                break  # a websocket now: it stays open
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in header_lines)}
    return int(status_line.split()[1]), hdrs, body


WS_UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}
