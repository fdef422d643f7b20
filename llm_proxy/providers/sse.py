"""Server-Sent Events splitting, tolerant of what real proxies see.

Follows the WHATWG event-stream rules (``field: value`` lines, ``:`` comments, several
``data:`` lines joined by newlines, a blank line ends an event) and additionally dispatches
the last event when the stream ends without its blank line: a client that hangs up
mid-stream still leaves a record, and the events it did receive count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["SSEEvent", "iter_events_at", "split_events"]

type SSEEvent = tuple[str | None, str]
"""(event name or None, data)."""


def split_events(text: str) -> list[SSEEvent]:
    """Split an event-stream body into ``(event, data)`` pairs, in order.

    Line ends may be ``\\n``, ``\\r\\n`` or ``\\r``. ``str.splitlines`` is not used because it
    also splits on U+2028/U+0085, which JSON allows unescaped inside a ``data:`` payload.
    Events without data (e.g. a bare ``event:`` line) are dropped, as the spec says.
    """
    if not text:
        return []
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    events: list[SSEEvent] = []
    name: str | None = None
    data: list[str] = []
    for line in text.split("\n"):
        if not line:
            if data:
                events.append((name, "\n".join(data)))
                data = []
            name = None
            continue
        if line[0] == ":":
            continue
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value[:1] == " " else value)
            continue
        field, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "event":
            name = value or None
        elif field == "data":  # "data" without a colon: an empty data line
            data.append(value)
    if data:
        events.append((name, "\n".join(data)))
    return events


_LINE_END = re.compile(rb"\r\n|\r|\n")


def iter_events_at(body: bytes, limit: int | None = None) -> Iterator[tuple[int, str | None, str]]:
    """The events of a raw event-stream body, lazily, each as ``(offset, event, data)``.

    Same rules as ``split_events``, but on the bytes as they came off the wire, so that an
    event can be placed in the chunk that brought it: ``offset`` is the index of the last
    byte of the blank line that ends the event — a client dispatches an event only once that
    line is in, whenever its data line arrived — or, for a last event the stream ended without
    a blank line, of its last data line. Lazy so that a caller looking for one early event
    does not split a whole long stream; ``limit`` stops at the first line starting at or after
    that offset.
    """
    pos = 3 if body[:3] == b"\xef\xbb\xbf" else 0  # a leading BOM is not part of a field
    end_of_body = len(body) if limit is None else min(len(body), limit)
    name: str | None = None
    data: list[bytes] = []
    last = 0
    search = _LINE_END.search
    while pos < end_of_body:
        match = search(body, pos)
        end = match.start() if match else len(body)
        line = body[pos:end]
        if not line:
            if data:
                dispatched = match.end() - 1 if match else max(end - 1, pos)
                yield dispatched, name, b"\n".join(data).decode("utf-8", "replace")
                data = []
            name = None
        elif line[0] != 0x3A:  # ":" starts a comment
            field, colon, value = line.partition(b":")
            if not colon:
                value = b""
            elif value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
                last = max(end - 1, pos)
            elif field == b"event":
                name = value.decode("utf-8", "replace") or None
        if match is None:
            break
        pos = match.end()
    if data and (limit is None or end_of_body == len(body)):
        yield last, name, b"\n".join(data).decode("utf-8", "replace")
