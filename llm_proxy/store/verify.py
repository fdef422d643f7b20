"""``llm-audit verify``: check every file against the chain, and the chain against itself.

Findings, one per problem:

- ``changed`` — a file's SHA-256 (or size) differs from what the chain recorded;
- ``deleted`` — the chain says a file exists, it does not;
- ``added`` — a file in a tier that no chain entry added (or one a later entry removed although
  no entry had added it);
- ``moved`` — a file the chain knows turned up under another name (same SHA-256);
- ``entry altered`` / ``entry removed`` / ``entry reordered`` / ``entry duplicated`` — the chain
  itself: a signature that does not match, a broken hash link, a gap or a step back in ``seq``;
- ``hold`` — ``holds.json`` disagrees with the hold events the chain recorded;
- ``key`` / ``anchor`` — the chain is not the one an exported public key or a saved anchor
  vouches for (a chain rewritten wholesale, or its newest entries cut off).

Cost: the chain is hashed and parsed line by line (no signature maths per entry: an intact hash
chain ending in a valid signature authenticates every entry before it, so only the head's and
genesis' signatures are checked, plus those around a break to say which entry was altered;
``--all-signatures`` checks every one). Then every file is hashed once. Concurrent writers are
fine: the chain's length and the file listing are taken together under the chain lock, and a
file that vanishes during hashing is only reported if no later entry removed it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from llm_proxy.store import chain as chainlog
from llm_proxy.store.digest import iso, sha256_file
from llm_proxy.store.finalize import PUBLIC_KEY_FILE, recover
from llm_proxy.store.holds import load_holds
from llm_proxy.store.layout import FILE_MODE, FLOWS_DIR
from llm_proxy.store.locks import LOCKS_DIR, chain_lock
from llm_proxy.store.signing import signature_ok
from llm_proxy.store.tiers import ARCHIVE_DIR, Tiers, is_temp_name

__all__ = ["Finding", "Result", "verify", "write_anchor"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    subject: str
    detail: str

    COLUMNS = ("kind", "subject", "detail")

    def line(self) -> str:
        return f"{self.kind}: {self.subject} — {self.detail}"

    def row(self) -> tuple[str, str, str]:
        return (self.kind, self.subject, self.detail)


@dataclass(slots=True)
class Result:
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0
    files: int = 0
    hashed: int = 0
    records: int = 0
    bytes: int = 0
    erasures: int = 0
    hold_events: int = 0
    head_seq: int | None = None
    head_hash: str | None = None

    @property
    def clean(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        if self.head_seq is None:
            return "verify: clean — empty store, no chain yet"
        if self.head_seq < 0:
            return (f"verify: {len(self.findings)} problem(s) found — no integrity chain, "
                    f"{self.files} file(s) unaccounted for")
        state = "clean" if self.clean else f"{len(self.findings)} problem(s) found"
        return (f"verify: {state} — {self.entries} chain entries (head #{self.head_seq} "
                f"{(self.head_hash or '')[:16]}…), {self.files} files ({self.hashed} hashed), "
                f"{self.records} records, {self.bytes} bytes, {self.erasures} erasure(s), "
                f"{self.hold_events} hold event(s)")


@dataclass(slots=True)
class _Entry:
    line_no: int
    seq: int
    hash: str
    raw: bytes
    data: dict[str, Any]
    sig_ok: bool | None = None  # None: not checked


def _list_tier_files(tiers: Tiers) -> dict[str, Path]:
    """tier path → absolute path of every regular file in both tiers, temps excepted."""
    found: dict[str, Path] = {}
    for prefix, root in ((FLOWS_DIR, tiers.hot), (ARCHIVE_DIR, tiers.archive)):
        if not root.is_dir():
            continue
        for folder, _dirs, names in os.walk(root):
            for name in names:
                if is_temp_name(name):
                    continue
                path = Path(folder) / name
                found[f"{prefix}/{path.relative_to(root).as_posix()}"] = path
    return found


def _read_entries(path: Path, size: int, result: Result) -> list[_Entry]:
    entries = []
    with open(path, "rb") as fh:
        data = fh.read(size)
    for line_no, raw in enumerate(data.split(b"\n")[:-1] if data else [], 1):
        try:
            parsed = json.loads(raw)
            seq = int(parsed["seq"])
            if not isinstance(parsed, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            result.findings.append(Finding("entry altered", f"chain line {line_no}",
                                           "not a valid chain entry"))
            continue
        entries.append(_Entry(line_no, seq, chainlog.line_hash(raw), raw, parsed))
    return entries


def _sig_ok(entry: _Entry, public: bytes | None) -> bool:
    if entry.sig_ok is None:
        try:
            sig = base64.b64decode(entry.data.get("sig", ""), validate=True)
        except (ValueError, TypeError):
            sig = b""
        entry.sig_ok = public is not None and signature_ok(
            public, sig, chainlog.signed_bytes(entry.data))
    return entry.sig_ok


def _check_chain(entries: list[_Entry], public: bytes | None, all_signatures: bool,
                 findings: list[Finding]) -> None:
    """Order, gaps, duplicates, hash links and signatures; marks entries whose sig fails."""
    by_seq: dict[int, _Entry] = {}
    highest = -1
    for e in entries:
        if e.seq in by_seq:
            findings.append(Finding("entry duplicated", f"chain entry #{e.seq}",
                                    f"appears on lines {by_seq[e.seq].line_no} and {e.line_no}"))
            continue
        if e.seq < highest:
            findings.append(Finding("entry reordered", f"chain entry #{e.seq}",
                                    f"appears after entry #{highest} (line {e.line_no})"))
        highest = max(highest, e.seq)
        by_seq[e.seq] = e
    missing = [s for s in range(highest + 1) if s not in by_seq]
    for start, end in _ranges(missing):
        what = f"#{start}" if start == end else f"#{start}–#{end}"
        findings.append(Finding("entry removed", f"chain entr{'y' if start == end else 'ies'} "
                                f"{what}", "missing from the chain (seq jumps)"))
    if not by_seq:
        return
    head = by_seq[highest]
    to_check = list(by_seq.values()) if all_signatures else [by_seq.get(0), head]
    for e in to_check:
        if e is not None and not _sig_ok(e, public):
            findings.append(Finding("entry altered", f"chain entry #{e.seq}",
                                    "signature does not match its content"))
    for seq, e in sorted(by_seq.items()):
        before = by_seq.get(seq - 1)
        expected = chainlog.GENESIS_PREV if seq == 0 else (before.hash if before else None)
        if expected is None or e.data.get("prev") == expected:
            continue
        blamed = [x for x in (before, e) if x is not None and x.sig_ok is None]
        for x in blamed:
            if not _sig_ok(x, public):
                findings.append(Finding("entry altered", f"chain entry #{x.seq}",
                                        "signature does not match its content"))
        if all(x.sig_ok for x in (before, e) if x is not None):
            findings.append(Finding("entry altered", f"chain entry #{seq}",
                                    f"does not link to entry #{seq - 1} (chain rewritten?)"))


def _ranges(values: list[int]) -> Iterable[tuple[int, int]]:
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            yield start, prev  # type: ignore[misc]
            start = prev = v
    if start is not None:
        yield start, prev  # type: ignore[misc]


def _hold_findings(store: Path, chain_holds: dict[str, dict[str, Any]]) -> list[Finding]:
    core = ("name", "reason", "user", "key_id", "since", "until")
    found = []
    try:
        on_disk = {h.name: h.to_json() for h in load_holds(store) if h.active}
    except Exception as exc:  # a damaged holds.json is itself a finding
        return [Finding("hold", "holds.json", str(exc))]
    active_chain = {n: h for n, h in chain_holds.items() if h.get("active")}
    for name, hold in active_chain.items():
        if name not in on_disk:
            found.append(Finding("hold", name, "active in the chain but missing from holds.json "
                                 "(removed or released outside llm-audit)"))
        elif any(on_disk[name].get(k) != hold.get(k) for k in core):
            found.append(Finding("hold", name, "holds.json differs from the hold the chain "
                                 "recorded"))
    for name in on_disk.keys() - active_chain.keys():
        found.append(Finding("hold", name, "in holds.json but no chain entry added it"))
    return found


def verify(store: Path, *, since: datetime | None = None, public_key: bytes | None = None,
           all_signatures: bool = False, anchor: Path | None = None) -> Result:
    """Check the store; ``Result.findings`` is empty when it is intact."""
    store = Path(store)
    result = Result()
    path = chainlog.chain_path(store)
    tiers = Tiers.of(store)
    if not path.exists():
        files = _list_tier_files(tiers)
        if (path.parent / PUBLIC_KEY_FILE).exists():
            result.findings.append(Finding("entry removed", str(path),
                                           "the chain file is gone (the store had one)"))
        for tier_path in sorted(files):
            result.findings.append(Finding("added", tier_path, "not in any chain (no chain)"))
        result.files = len(files)
        if files or result.findings:
            result.head_seq = -1
        return result
    writable = _can_lock(store)
    if writable:
        recover(store)
    with chain_lock(store) if writable else contextlib.nullcontext():
        size = path.stat().st_size
        on_disk = _list_tier_files(tiers)
    entries = _read_entries(path, size, result)
    result.entries = len(entries)
    genesis = next((e for e in entries if e.seq == 0), None)
    recorded_key = None
    if genesis is not None:
        try:
            recorded_key = base64.b64decode(genesis.data.get("public_key", ""), validate=True)
        except (ValueError, TypeError):
            recorded_key = None
    if public_key is not None and recorded_key != public_key:
        result.findings.append(Finding("key", "chain entry #0", "the chain was started with a "
                                       "different key than the public key given (chain replaced?)"))
    key = public_key if public_key is not None else recorded_key
    _check_chain(entries, key, all_signatures, result.findings)
    if entries:
        head = max(entries, key=lambda e: e.seq)
        result.head_seq, result.head_hash = head.seq, head.hash
    if anchor is not None:
        result.findings.extend(_anchor_findings(anchor, entries))

    expected: dict[str, tuple[dict[str, Any], int]] = {}
    chain_holds: dict[str, dict[str, Any]] = {}
    for e in sorted(entries, key=lambda x: x.seq):
        if e.sig_ok is False:
            continue
        op = e.data.get("op")
        if op == "publish":
            for item in e.data.get("remove", ()):
                known = expected.pop(item.get("path"), None)
                if known is None:
                    result.findings.append(Finding(
                        "added", item.get("path", "?"),
                        f"removed by chain entry #{e.seq} but never added by one"))
                elif known[0].get("sha256") != item.get("sha256"):
                    result.findings.append(Finding(
                        "changed", item.get("path", "?"),
                        f"differed from chain entry #{known[1]} when entry #{e.seq} removed it"))
            for item in e.data.get("add", ()):
                expected[item.get("path")] = (item, e.seq)
        elif op == "hold_add":
            hold = dict(e.data.get("hold", {}))
            chain_holds[hold.get("name", "?")] = {**hold, "active": True}
            result.hold_events += 1
        elif op == "hold_release":
            if e.data.get("name") in chain_holds:
                chain_holds[e.data["name"]]["active"] = False
            result.hold_events += 1
        elif op == "erase":
            result.erasures += 1
    result.findings.extend(_hold_findings(store, chain_holds))
    _compare_files(store, tiers, expected, on_disk, since, size, result)
    return result


def _compare_files(store: Path, tiers: Tiers, expected: dict[str, tuple[dict[str, Any], int]],
                   on_disk: dict[str, Path], since: datetime | None, size: int,
                   result: Result) -> None:
    since_iso = iso(since) if since else None
    missing: dict[str, tuple[dict[str, Any], int]] = {}
    for tier_path, (item, seq) in expected.items():
        disk = on_disk.get(tier_path)
        if disk is None:
            missing[tier_path] = (item, seq)
            continue
        result.files += 1
        result.records += int(item.get("records") or 0)
        result.bytes += int(item.get("bytes") or 0)
        if since_iso and item.get("max_ts") and item["max_ts"] < since_iso:
            continue
        try:
            if disk.stat().st_size != item.get("bytes") or sha256_file(disk) != item.get("sha256"):
                result.findings.append(Finding("changed", tier_path,
                                               f"content differs from chain entry #{seq}"))
            result.hashed += 1
        except FileNotFoundError:
            missing[tier_path] = (item, seq)
            result.files -= 1
    extras = {p: on_disk[p] for p in on_disk.keys() - expected.keys()}
    extra_by_hash: dict[str, str] = {}
    for tier_path, disk in extras.items():
        try:
            extra_by_hash.setdefault(sha256_file(disk), tier_path)
        except FileNotFoundError:
            continue
    if missing:
        missing = _not_removed_since(store, tiers, missing, size)
    for tier_path, (item, seq) in sorted(missing.items()):
        moved_to = extra_by_hash.pop(item.get("sha256", ""), None)
        if moved_to is not None:
            extras.pop(moved_to, None)
            result.findings.append(Finding("moved", tier_path, f"now at {moved_to} (added by "
                                           f"chain entry #{seq})"))
        else:
            result.findings.append(Finding("deleted", tier_path, f"added by chain entry #{seq}, "
                                           "missing, and no entry removed it"))
    chain_damaged = any(f.kind.startswith("entry") for f in result.findings)
    for tier_path in sorted(extras):
        if extras[tier_path].exists():
            result.findings.append(Finding("added", tier_path, "not in the chain" + (
                " (or only in a chain entry reported above)" if chain_damaged else "")))


def _not_removed_since(store: Path, tiers: Tiers, missing: dict[str, tuple[dict[str, Any], int]],
                       size: int) -> dict[str, tuple[dict[str, Any], int]]:
    """Drop files that a publish after our snapshot legitimately removed."""
    path = chainlog.chain_path(store)
    with chain_lock(store) if _can_lock(store) else contextlib.nullcontext():
        with open(path, "rb") as fh:
            fh.seek(size)
            later = fh.read()
    removed: set[str] = set()
    for raw in later.split(b"\n"):
        try:
            removed.update(i.get("path") for i in json.loads(raw).get("remove", ()))
        except (ValueError, AttributeError, TypeError):
            continue
    return {p: v for p, v in missing.items() if p not in removed}


def _can_lock(store: Path) -> bool:
    """False for a store on read-only media (a copy handed to an auditor): nothing writes there,
    so it is verified as is, without the lock and without finishing interrupted publishes."""
    locks = store / LOCKS_DIR
    return os.access(locks if locks.exists() else store, os.W_OK)


def _anchor_findings(anchor: Path, entries: list[_Entry]) -> list[Finding]:
    try:
        saved = json.loads(anchor.read_text())
        seq, digest = int(saved["seq"]), str(saved["hash"])
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError):
        return [Finding("anchor", str(anchor), "unreadable anchor file")]
    match = next((e for e in entries if e.seq == seq), None)
    if match is None:
        return [Finding("anchor", f"chain entry #{seq}", "the anchored entry is gone: the chain "
                        "was truncated or replaced since the anchor was saved")]
    if match.hash != digest:
        return [Finding("anchor", f"chain entry #{seq}", "differs from the anchored entry: the "
                        "chain was rewritten since the anchor was saved")]
    return []


def write_anchor(anchor: Path, result: Result) -> None:
    """Save the verified head outside the store; the next verify checks the chain still has it."""
    if result.head_seq is None or result.head_seq < 0:
        return
    tmp = anchor.with_name(f".{anchor.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        json.dump({"seq": result.head_seq, "hash": result.head_hash}, fh)
        fh.write("\n")
    os.replace(tmp, anchor)
