"""Helpers for end-to-end tests: SDK clients through the proxy, polling the store."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import anthropic
import openai

from llm_proxy.store.views import connect

OPENAI_KEY = "sk-proj-TESTKEYopenai0123456789abcdefghijklmnopqrstuv"
ANTHROPIC_KEY = "sk-ant-api03-TESTKEYanthropic0123456789abcdefghijklmnop"


def openai_client(base_url: str, proxy_url: str, ca: Path, **kw: Any) -> openai.OpenAI:
    http2 = kw.pop("http2", False)
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key=kw.pop("api_key", OPENAI_KEY),
        http_client=openai.DefaultHttpxClient(proxy=proxy_url, verify=ssl.create_default_context(cafile=ca), http2=http2),
        **kw)


def anthropic_client(base_url: str, proxy_url: str, ca: Path, **kw: Any) -> anthropic.Anthropic:
    http2 = kw.pop("http2", False)
    return anthropic.Anthropic(
        base_url=base_url, api_key=kw.pop("api_key", ANTHROPIC_KEY),
        http_client=anthropic.DefaultHttpxClient(proxy=proxy_url, http2=http2,
                                                 verify=ssl.create_default_context(cafile=ca)), **kw)


def records(store: Path, where: str, *, expect: int | None = None, timeout: float = 10.0,
            columns: str = "*") -> list[dict[str, Any]]:
    """Rows of ``flows`` matching ``where``; with ``expect``, poll until that many exist."""
    deadline = time.monotonic() + timeout
    while True:
        con = connect(store, require=False)
        cur = con.execute(f"SELECT {columns} FROM flows WHERE {where} ORDER BY ts, id")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        con.close()
        if expect is None or len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def store_text(store: Path) -> str:
    """Everything the store holds as text: Parquet decoded column by column, other files raw."""
    import pyarrow.parquet as pq

    parts: list[str] = []
    for path in sorted(store.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.columns:
                parts.extend(str(v) for v in column.to_pylist() if v is not None)
        else:
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)
