"""HTTP/2 framing for the mock LLM server (ALPN "h2"), on the sans-I/O `h2` state machine.

The reply producer is the one HTTP/1.1 uses (it hands back `wire.Answer`s): this module only
turns h2 events into `Request`s and answers into frames. Each stream is answered in a task of
its own, so a slow or hanging stream holds up no other on the connection; DATA goes out within
the peer's flow-control windows (a big body waits for WINDOW_UPDATEs rather than breaking the
protocol), and request bodies are acknowledged as they arrive, so big uploads do not stall.
`reset` resets the TCP connection, as over HTTP/1.1 (every stream on it fails: that is what a
connection reset does); `stream_abort` sends part of the body, then RST_STREAM, the way an
HTTP/2 server fails one response and keeps the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError

from llm_proxy.mock.wire import STREAM_HEADERS, Answer, Drop, Request, reset_connection

__all__ = ["HTTP_VERSION_HEADER", "serve_http2"]

AnswerFor = Callable[[Request], Awaitable[Answer | Drop]]

HTTP_VERSION_HEADER = (b"x-mock-http-version", b"HTTP/2")
"""Sent with every HTTP/2 response, so a test behind a proxy can tell which protocol the
proxy's upstream leg used."""

_READ_SIZE = 65536


async def serve_http2(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer_for: AnswerFor
) -> None:
    """Serve one HTTP/2 connection until the client closes it or sends GOAWAY."""
    await _Http2Connection(reader, writer, answer_for).serve()


@dataclass(slots=True)
class _Stream:
    """A request being received, then answered, and what wakes the task answering it."""

    stream_id: int
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    window_opened: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # reset by the peer


class _Http2Connection:
    """One client connection: reads frames, answers each finished request in a task."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer_for: AnswerFor
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._answer_for = answer_for
        self._h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self._streams: dict[int, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        """Read until the client leaves; answering goes on in the streams' tasks meanwhile."""
        self._h2.initiate_connection()
        try:
            await self._flush()
            while data := await self._reader.read(_READ_SIZE):
                try:
                    events = self._h2.receive_data(data)
                except ProtocolError:  # h2 has queued a GOAWAY saying why
                    await self._flush()
                    return
                if not self._dispatch(events):
                    return
                await self._flush()
        finally:
            await self._cancel_streams()

    def _dispatch(self, events: list[Event]) -> bool:
        """Apply what the client sent; False once it has ended the connection."""
        for event in events:
            if isinstance(event, RequestReceived):
                self._streams[event.stream_id] = _Stream(event.stream_id, list(event.headers))
            elif isinstance(event, DataReceived):
                self._receive_body(event)
            elif isinstance(event, StreamEnded):
                self._start_answering(event.stream_id)
            elif isinstance(event, WindowUpdated):
                self._wake_senders(event.stream_id)
            elif isinstance(event, RemoteSettingsChanged):  # maybe a new initial window size
                self._wake_senders(0)
            elif isinstance(event, StreamReset):
                self._close_stream(event.stream_id)
            elif isinstance(event, ConnectionTerminated):
                return False
        return True

    def _receive_body(self, event: DataReceived) -> None:
        """Keep the bytes and give the window back at once, so uploads never stall."""
        if stream := self._streams.get(event.stream_id):
            stream.body += event.data
        self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _start_answering(self, stream_id: int) -> None:
        if (stream := self._streams.get(stream_id)) is None:
            return
        task = asyncio.create_task(self._answer(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake_senders(self, stream_id: int) -> None:
        """A window opened: on one stream, or (stream 0, new settings) on all of them."""
        streams = self._streams.values() if stream_id == 0 else [self._streams.get(stream_id)]
        for stream in streams:
            if stream is not None:
                stream.window_opened.set()

    def _close_stream(self, stream_id: int) -> None:
        if stream := self._streams.pop(stream_id, None):
            stream.closed.set()
            stream.window_opened.set()  # a sender waiting for a window finds the stream gone

    async def _cancel_streams(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----------------------------------------------------------------- answering one stream

    async def _answer(self, stream: _Stream) -> None:
        try:
            answer = await self._answer_for(_request(stream))
            if answer is Drop.RESET:
                reset_connection(self._writer)
            elif answer is Drop.HANG:
                await stream.closed.wait()
            else:
                await self._send_answer(stream, answer)
        except (ProtocolError, ConnectionError):  # the client reset the stream or left
            pass
        finally:
            self._streams.pop(stream.stream_id, None)

    async def _send_answer(self, stream: _Stream, answer: Answer) -> None:
        """HEADERS, then the pieces as DATA (paced), then END_STREAM, or RST_STREAM for an
        aborted answer."""
        self._h2.send_headers(stream.stream_id, _response_headers(answer))
        await self._flush()
        for piece in answer.pieces:
            await self._send_data(stream, piece)
            if answer.delay:
                await asyncio.sleep(answer.delay)
        if answer.aborted:
            self._h2.reset_stream(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
            await self._flush()
            return
        await self._send_data(stream, answer.tail, end_stream=True)

    async def _send_data(self, stream: _Stream, data: bytes, end_stream: bool = False) -> None:
        """Send within the flow-control windows, waiting for the client to open them (a
        stream reset meanwhile makes h2 raise StreamClosedError, which ends the answer)."""
        if not data and not end_stream:
            return
        view = memoryview(data)
        while True:
            size = min(len(view), self._h2.local_flow_control_window(stream.stream_id),
                       self._h2.max_outbound_frame_size)  # fmt: skip
            if view and size <= 0:
                stream.window_opened.clear()
                await stream.window_opened.wait()
                continue
            last = size == len(view)
            self._h2.send_data(stream.stream_id, bytes(view[:size]), end_stream=end_stream and last)
            view = view[size:]
            await self._flush()
            if last:
                return

    async def _flush(self) -> None:
        if data := self._h2.data_to_send():
            self._writer.write(data)
            await self._writer.drain()


def _request(stream: _Stream) -> Request:
    """A `Request` like HTTP/1.1's: pseudo-headers give method and target, `host` the
    authority; other headers are kept as sent (h2 has them lower-case already)."""
    pseudo: dict[bytes, bytes] = {}
    headers: dict[str, str] = {}
    for name, value in stream.headers:
        if name.startswith(b":"):
            pseudo[name] = value
        else:
            headers[name.decode("latin-1")] = value.decode("latin-1")
    if b":authority" in pseudo:
        headers.setdefault("host", pseudo[b":authority"].decode("latin-1"))
    method = pseudo.get(b":method", b"GET").decode("latin-1")
    target = pseudo.get(b":path", b"/").decode("latin-1")
    return Request(method, target, headers, bytes(stream.body), keep_alive=True)


def _response_headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    """The answer's header lines as h2 pairs, after `:status`; the length when it is known."""
    lines = answer.head + STREAM_HEADERS if answer.streamed else answer.head
    headers = [(b":status", b"%d" % answer.status)]
    for line in lines.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            headers.append((name.strip(), value.strip()))
    if not answer.streamed:
        headers.append((b"content-length", b"%d" % answer.length))
    headers.append(HTTP_VERSION_HEADER)
    return headers
