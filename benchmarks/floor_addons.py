"""Reference addons for ``proxy_overhead.py --floors``: what mitmproxy itself charges.

``hooks``: the audit addon's hooks (the same host check) doing nothing else — the cost of
being an addon at all. ``defer``: the same, but the response waits for a future resolved on
the event loop's next pass — the least any "relay only after X" guarantee can cost, before
any work or process round trip. ``echo``: the response waits until a child process has echoed
an 8-byte sequence number back over a socketpair — the least any design costs in which another
process must confirm something (a journal append) before the response is relayed, with no work
in that process at all. Run as ``mitmdump -s floor_addons.py --set floor=hooks|defer|echo``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable
from typing import Any

from mitmproxy import ctx, http, tls

_HOSTS = ("127.0.0.1", "localhost")
_SEQ = struct.Struct("!Q")
# the child: read whatever arrived, answer with the last sequence number in it (cumulative)
_ECHO_CHILD = """
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
buf = b""
while data := s.recv(65536):
    buf += data
    whole = len(buf) - len(buf) % 8
    if whole:
        s.sendall(buf[whole - 8:whole])
        buf = buf[whole:]
"""


class _Echo(asyncio.Protocol):
    """The proxy's end of the echo child: futures resolved by cumulative sequence numbers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[None]] = {}
        self.seq = 0
        self.buf = b""

    async def start(self) -> None:
        parent, child = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-c", _ECHO_CHILD, str(child.fileno())],
                                     pass_fds=(child.fileno(),))
        child.close()
        await asyncio.get_running_loop().create_unix_connection(lambda: self, sock=parent)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> asyncio.Future[None]:
        self.seq += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[self.seq] = fut
        assert self.transport is not None
        self.transport.write(_SEQ.pack(self.seq))
        return fut

    def data_received(self, data: bytes) -> None:
        self.buf += data
        usable = len(self.buf) - len(self.buf) % 8
        if not usable:
            return
        (done,) = _SEQ.unpack_from(self.buf, usable - 8)
        self.buf = self.buf[usable:]
        for seq in [s for s in self.waiting if s <= done]:
            self.waiting.pop(seq).set_result(None)


class Floor:
    """``intercepted`` and ``tls_clienthello`` copy the audit addon's on purpose: a floor must
    cost what they cost, and must not load the audit addon's module (its worker, its config)."""

    def __init__(self) -> None:
        self._cache: dict[str, bool] = {}
        self._echo = _Echo()

    def load(self, loader: Any) -> None:
        loader.add_option("floor", str, "hooks", "hooks | defer | echo")

    async def running(self) -> None:
        if ctx.options.floor == "echo":
            await self._echo.start()

    def done(self) -> None:
        if self._echo.transport is not None:
            self._echo.transport.close()
            self._echo.proc.wait(5)

    def intercepted(self, host: str) -> bool:
        hit = self._cache.get(host)
        if hit is None:
            hit = self._cache[host] = host in _HOSTS
        return hit

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        host = data.client_hello.sni or (data.context.server.address or ("",))[0]
        if not self.intercepted(host.lower()):
            data.ignore_connection = True

    def request(self, flow: http.HTTPFlow) -> None:
        self.intercepted(flow.request.host)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.intercepted(flow.request.host)

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if not self.intercepted(flow.request.host) or ctx.options.floor == "hooks":
            return None
        if ctx.options.floor == "echo":
            return self._echo.send()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        return fut


addons = [Floor()]
