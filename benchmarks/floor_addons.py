"""Reference addons for ``proxy_overhead.py --floors``: what mitmproxy itself charges.

``hooks``: the audit addon's hooks (the same host check) doing nothing else — the cost of
being an addon at all. ``defer``: the same, but the response waits for a future resolved on
the event loop's next pass — the least any "relay only after X" guarantee can cost, before
any work or process round trip. Run as ``mitmdump -s floor_addons.py --set floor=hooks|defer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from mitmproxy import ctx, http, tls

_HOSTS = ("127.0.0.1", "localhost")


class Floor:
    """``intercepted`` and ``tls_clienthello`` copy the audit addon's on purpose: a floor must
    cost what they cost, and must not load the audit addon's module (its worker, its config)."""

    def __init__(self) -> None:
        self._cache: dict[str, bool] = {}

    def load(self, loader: Any) -> None:
        loader.add_option("floor", str, "hooks", "hooks | defer")

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
        if not self.intercepted(flow.request.host) or ctx.options.floor != "defer":
            return None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        return fut


addons = [Floor()]
