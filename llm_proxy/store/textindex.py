"""Word-level text index of a Parquet file, kept inside that file's own footer.

Full-text search must not read every body of every hour: at 10 million records a week of bodies
is gigabytes. ``llm-audit compact`` therefore stores, in the key-value metadata of each merged
file, the sorted set of words of its ``request_body``, ``response_body`` and ``error_message``
(zstd-compressed, ~20 bytes per record). A search reads only footers first and skips every file
that lacks one of the query's words; the files it does open are filtered exactly, so the index
can only make a search faster, never change its answer.

The index names the file it was built for. Files are never modified in place: a rewrite
(retention, erasure, archive merge) is a new file with a new name, so an index copied along with
the schema metadata no longer matches its file and is ignored — the file is then scanned in full.
Keeping the index inside the file also puts it under the integrity chain with the records.

Words: maximal runs of Unicode letters and digits, lower-cased; JSON escapes (``\\n``,
``\\u00e9`` …) separate words, since bodies are stored as the JSON text that was sent.
Tokenising uses pyarrow's RE2 kernels both when indexing and for the query, so both agree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import zstandard

__all__ = [
    "INDEX_FOR_KEY",
    "INDEX_KEY",
    "SEPARATOR_RE2",
    "TEXT_COLUMNS",
    "TokenSet",
    "index_metadata",
    "read_token_set",
    "token_set",
    "vocabulary",
    "words",
]

TEXT_COLUMNS = ("request_body", "response_body", "error_message")
# One separator unit: a JSON escape or any character that is not a letter or digit (RE2 syntax).
SEPARATOR_RE2 = r"(?:\\[nrtbf]|\\u[0-9a-fA-F]{4}|[^\pL\pN])"
INDEX_KEY = b"llm_proxy.text_index"
INDEX_FOR_KEY = b"llm_proxy.text_index_for"
_SPLIT = SEPARATOR_RE2 + "+"


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` in order (how a query term is read)."""
    parts = pc.split_pattern_regex(pa.array([text], pa.string()), _SPLIT)
    return [w for w in pc.utf8_lower(pc.list_flatten(parts)).to_pylist() if w]


def vocabulary(columns: Iterable[pa.ChunkedArray | pa.Array]) -> pa.Array:
    """Sorted distinct lower-cased words of string columns.

    Splitting on spaces first and running the regex only on distinct chunks that are not
    plain ASCII words keeps this at a few µs per 1 KiB record: most chunks repeat.
    """
    chunks = []
    for col in columns:
        if len(col) == 0:
            continue
        chunks.append(pc.unique(pc.list_flatten(pc.split_pattern(col, " "))))
    if not chunks:
        return pa.array([], pa.string())
    distinct = pc.unique(pa.chunked_array(chunks, pa.string()).combine_chunks())
    # Plain ASCII words (most of them) need no regex: only the rest is split by it.
    plain = pc.ascii_is_alnum(distinct).fill_null(False)
    rest = distinct.filter(pc.invert(plain))
    split = pc.list_flatten(pc.split_pattern_regex(rest, _SPLIT)).cast(pa.string())
    tokens = pa.concat_arrays([distinct.filter(plain), split])
    tokens = pc.unique(pc.utf8_lower(tokens))
    tokens = tokens.filter(pc.greater(pc.binary_length(tokens), 0))
    return tokens.take(pc.array_sort_indices(tokens))


def index_metadata(table: pa.Table, file_name: str) -> dict[bytes, bytes]:
    """Footer metadata entries indexing ``table`` when it is written as ``file_name``."""
    vocab = vocabulary(table.column(c) for c in TEXT_COLUMNS)
    blob = "\n".join(vocab.to_pylist()).encode()
    return {INDEX_KEY: zstandard.ZstdCompressor(level=6).compress(blob),
            INDEX_FOR_KEY: file_name.encode()}


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The words of one file: ``b"\\n" + sorted words joined by newlines + b"\\n"``."""

    blob: bytes

    def has(self, word: str) -> bool:
        return f"\n{word}\n".encode() in self.blob

    def has_prefix(self, prefix: str) -> bool:
        return f"\n{prefix}".encode() in self.blob

    def may_match(self, required: Sequence[tuple[str, bool]]) -> bool:
        """False only if some required (word, is_prefix) is certainly absent from the file."""
        return all(self.has_prefix(w) if prefix else self.has(w) for w, prefix in required)


def token_set(file_name: str, metadata: dict[bytes, bytes] | None) -> TokenSet | None:
    """The file's index from its footer metadata, or None if absent or built for another file."""
    if not metadata or metadata.get(INDEX_FOR_KEY, b"").decode(errors="replace") != file_name:
        return None
    raw = metadata.get(INDEX_KEY)
    if raw is None:
        return None
    try:
        blob = zstandard.ZstdDecompressor().decompress(raw)
    except zstandard.ZstdError:
        return None
    return TokenSet(b"\n" + blob + b"\n")


def _footer(path: Path) -> bytes | None:
    """The Thrift-encoded footer of a Parquet file (one seek, one read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-8, 2)
            tail = fh.read(8)
            if tail[4:] != b"PAR1":
                return None
            size = struct.unpack("<I", tail[:4])[0]
            fh.seek(-8 - size, 2)
            return fh.read(size)
    except (OSError, struct.error):
        return None


def _binary_value(footer: bytes, key: bytes) -> bytes | None:
    """The value of key-value metadata ``key``, read straight from the Thrift compact bytes.

    A ``KeyValue`` is: field-1 header, varint length, key bytes, field-2 header ``0x18``
    (binary), varint length, value bytes. Anything unexpected returns None, and the caller then
    scans the file instead of trusting an index.
    """
    start = 0
    while (i := footer.find(key, start)) >= 0:
        start = i + 1
        j = i + len(key)
        if i == 0 or footer[i - 1] != len(key) or j >= len(footer) or footer[j] != 0x18:
            continue
        length = shift = 0
        k = j + 1
        while k < len(footer):
            byte = footer[k]
            length |= (byte & 0x7F) << shift
            k += 1
            if not byte & 0x80:
                break
            shift += 7
        if k + length <= len(footer):
            return footer[k:k + length]
    return None


def read_token_set(path: Path) -> TokenSet | None:
    """The word index in ``path``'s footer, if it has one built for this very file.

    Reads only the footer's bytes — about 1 ms a file — instead of decoding all its metadata.
    """
    footer = _footer(path)
    if footer is None:
        return None
    meta = {}
    for key in (INDEX_KEY, INDEX_FOR_KEY):
        value = _binary_value(footer, key)
        if value is not None:
            meta[key] = value
    return token_set(path.name, meta)
