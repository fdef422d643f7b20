"""Helpers for the retention, chain, verify and erase tests (this module holds no tests).

Stores are filled through the real writer (journal segment + ``writer.replay``, as a proxy
restart does) and commands run through the real CLI entry point, in-process (``cli``) where
speed matters and as ``python -m llm_proxy`` subprocesses where a separate process is the point
(kill -9, concurrent runs).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llm_proxy.schema import empty_record
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.views import connect
from llm_proxy.store.writer import replay

ROOT = Path(__file__).resolve().parent.parent
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
NOW = "2026-01-31T12:00:00Z"  # the fake clock (--now) most tests use

_seq = [1_000_000]


def us(text: str) -> int:
    """Microseconds since the epoch of an ISO time (UTC)."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
               .timestamp() * 1_000_000)


def rec(rid: str, ts: int, user: str | None = "alice", key_id: str | None = "sk-…a1b2#0011",
        **extra: object) -> dict:
    r = empty_record()
    r.update(id=rid, ts=ts, user_id=user, key_id=key_id, method="POST",
             host="api.openai.com", endpoint="/v1/chat/completions", status_code=200,
             request_body=f'{{"user": "{user}", "messages": [{{"content": "hello from {user}"}}]}}',
             input_tokens=3)
    r.update(extra)
    return r


def journal(store: Path, records: list[dict], *, instance: str = "h") -> JournalSegment:
    """An open (locked, as a live proxy holds it) journal segment holding ``records``."""
    _seq[0] += 1
    seg = JournalSegment(store / "journal", instance, _seq[0], fsync="never",
                         fsync_interval_s=1)
    seg.append(b"".join(encode_record(r) for r in records), len(records))
    return seg


def fill(store: Path, records: list[dict], *, instance: str = "h") -> None:
    """Journal then flush to Parquet, exactly as a proxy restart's replay does."""
    journal(store, records, instance=instance).close()
    replay(store)


def day_records(day: str, hours: tuple[int, ...] = (1, 13), users: tuple[str, ...] = ("alice", "bob"),
                tag: str = "") -> list[dict]:
    """One record per (hour, user) on ``day`` (YYYY-MM-DD)."""
    base = us(f"{day}T00:00:00Z")
    return [rec(f"{day}{tag}-{h:02d}-{u}", base + h * HOUR_US + i, user=u)
            for h in hours for i, u in enumerate(users)]


def ids(store: Path, where: str = "true") -> set[str]:
    con = connect(store)
    try:
        return {r[0] for r in con.execute(f"select id from flows where {where}").fetchall()}
    finally:
        con.close()


def toml(tmp_path: Path, **keys: object) -> Path:
    lines = []
    for k, v in keys.items():
        lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    path = tmp_path / "audit.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli(*args: str) -> Run:
    """``llm-audit ARGS`` in-process through the real entry point (error mapping included)."""
    from llm_proxy.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["llm-audit", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return Run(code, out.getvalue(), err.getvalue())


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "llm_proxy", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full, cwd=ROOT)


def llm_audit(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    proc = spawn(*args, env=env)
    out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, out, err)
