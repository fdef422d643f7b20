"""Server-Sent Events splitting, tolerant of what real proxies see.

Follows the WHATWG event-stream rules (``field: value`` lines, ``:`` comments, several
``data:`` lines joined by newlines, a blank line ends an event) and additionally dispatches
the last event when the stream ends without its blank line: a client that hangs up
mid-stream still leaves a record, and the events it did receive count.
"""

from __future__ import annotations

__all__ = ["SSEEvent", "split_events"]

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
