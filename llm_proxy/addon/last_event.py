"""Spotting, chunk by chunk, the end of a stream's last event.

An SDK returns as soon as it has a stream's last event — ``data: [DONE]`` (OpenAI and the APIs
that copy it), ``event: message_stop`` (Anthropic), ``event: response.completed`` / ``failed``
/ ``incomplete`` (OpenAI Responses) — without reading to the end of the HTTP body. The addon
hands its capture to the worker before it relays the chunk that completes that event (the
blank line after it), so ``kill -9`` of the proxy cannot lose a record whose answer a client
already has. This runs on mitmproxy's event loop for every chunk of every stream: one
substring search per chunk until the event's name or data shows up, then a search for the
blank line, which for a large event (``response.completed`` repeats the whole response) comes
chunks later. A marker split across two chunks is not seen: the capture then goes at the end
of the body, as for any other stream.
"""

from __future__ import annotations

__all__ = ["LastEventWatch", "last_event_markers"]

type Marker = tuple[bytes, bytes]
"""(SSE field, value) of a line that names a stream's last event."""

_CHAT: tuple[Marker, ...] = ((b"data", b"[DONE]"),)
_MESSAGES: tuple[Marker, ...] = ((b"event", b"message_stop"),)
_RESPONSES: tuple[Marker, ...] = tuple(
    (b"event", b"response." + end) for end in (b"completed", b"failed", b"incomplete"))
_BLANK_LINES = (b"\n\n", b"\r\n\r\n")


def last_event_markers(path: str) -> tuple[Marker, ...]:
    """The lines that name the last event of a stream from this API path."""
    if "/messages" in path or "rawpredict" in path.lower():  # Anthropic, also on Vertex AI
        return _MESSAGES
    if "/responses" in path:
        return _RESPONSES
    return _CHAT  # chat and text completions, and every OpenAI-compatible API


class LastEventWatch:
    """Fed every chunk of one stream in order; says which one completes its last event."""

    __slots__ = ("_armed", "_carry", "_done", "_markers")

    def __init__(self, markers: tuple[Marker, ...]) -> None:
        self._markers = markers
        self._armed = False  # the last event has begun: waiting for its blank line
        self._carry = b""  # the previous chunk's last bytes, for a blank line split in two
        self._done = False

    def completes(self, chunk: bytes) -> bool:
        """Whether ``chunk`` completes the stream's last event (True once at most)."""
        if self._done:
            return False
        if self._armed:
            start = 0
            if any(b in self._carry + chunk[:3] for b in _BLANK_LINES):
                self._done = True
                return True
        else:
            start = self._marker_end(chunk)
            if start < 0:
                return False
            self._armed = True
        if any(chunk.find(b, start) >= 0 for b in _BLANK_LINES):
            self._done = True
            return True
        self._carry = chunk[-3:]
        return False

    def _marker_end(self, chunk: bytes) -> int:
        """Where a line naming the last event ends in ``chunk`` (after its value), or -1. The
        value must be the whole line after ``field:``: in a model's text it sits JSON-quoted
        inside a data line."""
        for field, value in self._markers:
            at = chunk.find(value)
            while at >= 0:
                line_start = max(chunk.rfind(b"\n", 0, at), chunk.rfind(b"\r", 0, at)) + 1
                after = at + len(value)
                if (chunk[line_start:at] in (field + b":", field + b": ")
                        and chunk[after:after + 1] in (b"", b"\n", b"\r")):
                    return after
                at = chunk.find(value, at + 1)
        return -1
