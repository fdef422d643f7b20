"""Pure decoding of captured bodies: content-encoding, charset, binary, size cap.

Whatever arrives — gzip/deflate/br/zstd, non-UTF-8, binary, a decompression bomb — the result is
text that can be stored, plus a flag when it was cut. Nothing here raises on bad input.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = ["DECOMPRESS_LIMIT", "DecodedBody", "decode_body"]

# Upper bound on decompressed bytes kept for parsing (parsing sees more than is stored, so
# usage at the end of a large response is still read); beyond it the body counts as truncated.
DECOMPRESS_LIMIT = 16 * 1024 * 1024


@dataclass(slots=True)
class DecodedBody:
    text: str | None  # the whole decoded text (up to DECOMPRESS_LIMIT), for parsing
    stored: str | None  # what the record stores: text cut at the configured cap
    truncated: bool
    note: str | None = None  # why the body is not plain text (undecodable encoding, binary)


def _decompress(raw: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    """Decode one content-encoding with an output cap; (data, cut)."""
    if encoding in ("gzip", "x-gzip"):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        try:
            d = zlib.decompressobj()
            out = d.decompress(raw, limit)
            return out, bool(d.unconsumed_tail)
        except zlib.error:
            d = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
    elif encoding == "br":
        import brotli

        d = brotli.Decompressor()
        # capped too: a few KB of br can inflate to gigabytes (and the worker that ran out of
        # memory would be sent the same capture again after its restart). The limit stops the
        # output buffer's growth, not exactly at it: up to about twice the limit is produced.
        out = d.process(raw, output_buffer_limit=limit + 1)
        return out[:limit], len(out) > limit or not d.can_accept_more_data()
    elif encoding == "zstd":
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            out = reader.read(limit + 1)
        return out[:limit], len(out) > limit
    elif encoding in ("identity", ""):
        return raw[:limit], len(raw) > limit
    else:
        raise ValueError(f"unsupported content-encoding {encoding!r}")
    out = d.decompress(raw, limit)
    return out, bool(d.unconsumed_tail)


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ").lower()
    return None


def _is_event_stream(content_type: str | None) -> bool:
    return bool(content_type) and content_type.startswith("application/vnd.amazon.eventstream")


# Bytes that text may contain: printable, whitespace and everything >= 0x80 (UTF-8, Latin-1).
_TEXT_BYTES = bytes(range(32, 256)) + b"\t\n\x0b\x0c\r\x08\x1b"


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or more than 10% control characters in the first 4 KiB (counted in C)."""
    sample = data[:4096]
    if b"\x00" in sample:
        return True
    return len(sample.translate(None, _TEXT_BYTES)) > len(sample) // 10


def decode_body(raw: bytes | None, *, content_encoding: str | None, content_type: str | None,
                cap: int, raw_truncated: bool = False) -> DecodedBody:
    """Decode a captured body for the record. ``cap`` bounds the stored text (characters)."""
    if not raw:
        return DecodedBody(None, None, raw_truncated)
    data = raw
    cut = raw_truncated
    note = None
    if content_encoding:
        encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
        try:
            for enc in reversed(encodings):
                data, more = _decompress(data, enc, DECOMPRESS_LIMIT)
                cut = cut or more
        except Exception as exc:  # corrupt or unknown encoding: keep what we can say
            data = raw
            note = f"could not decode content-encoding {content_encoding!r}: {exc}"
    if _looks_binary(data):
        stored = f"[binary body: {len(data)} bytes{', ' + note if note else ''}]"
        # AWS event streams are binary frames around JSON: the provider parser reads them.
        text = data.decode("latin-1") if _is_event_stream(content_type) else None
        return DecodedBody(text, stored, cut, note or "binary")
    charset = _charset(content_type)
    try:
        text = data.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        text = data.decode("utf-8", errors="replace")
        note = note or "not valid UTF-8: undecodable bytes replaced"
    stored = text
    if len(stored) > cap:
        stored = stored[:cap] + f"…[truncated: {len(text)} characters, {cap} kept]"
        cut = True
    elif cut:
        stored = stored + "…[truncated]"
    return DecodedBody(text, stored, cut, note)
