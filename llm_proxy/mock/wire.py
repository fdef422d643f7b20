"""What the mock server's framings (HTTP/1.1, HTTP/2) exchange with its reply producer.

A framing turns bytes into a `Request`; the reply producer answers it with an `Answer` (header
lines and body pieces ready to frame) or a `Drop` (no reply at all). Keeping the framings to
these types is what lets every scenario (errors, compression, paced SSE, aborts) behave the
same over both protocols without being written twice.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import struct
from dataclasses import dataclass

__all__ = ["STREAM_HEADERS", "Answer", "Drop", "Request", "reset_connection"]

STREAM_HEADERS = b"cache-control: no-cache\r\n"
"""Header lines a streamed answer adds after its `head` (HTTP/1.1 adds its chunked framing)."""


@dataclass(slots=True)
class Request:
    """One parsed HTTP request; headers are lower-cased (last value wins on repeats)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool

    @property
    def path(self) -> str:
        return self.target.partition("?")[0].rstrip("/") or "/"


class Drop(enum.Enum):
    """A request the server answers with nothing: it resets, or it never replies."""

    RESET = "reset"  # a TCP RST of the connection (over HTTP/2, of every stream on it)
    HANG = "hang"  # wait until the client gives up


@dataclass(slots=True)
class Answer:
    """A reply ready for any framing.

    `head` holds `name: value\\r\\n` lines (the framing adds its status line or `:status`,
    and its length or chunking). The body is `pieces` sent in order, each followed by a pause
    of `delay` seconds when pacing a stream, then `tail` (a compressor's last bytes). A whole
    body is one piece of `length` bytes, or its first half when the reply is `aborted`: then
    the framing drops the stream after the pieces instead of ending it.
    """

    status: int
    head: bytes
    pieces: list[bytes]
    streamed: bool = False
    length: int = 0
    tail: bytes = b""
    delay: float = 0.0
    aborted: bool = False


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer gets a TCP RST instead of an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
