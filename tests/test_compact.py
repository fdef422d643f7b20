"""compact: fewer files, same records — also for a query running while it swaps files."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_search import cli

from llm_proxy.schema import empty_record
from llm_proxy.store.compact import compact, indexed_table, merge_tables, plan
from llm_proxy.store.finalize import DELAY_ENV, publish
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.layout import parquet_name
from llm_proxy.store.search import Filters
from llm_proxy.store.searcher import SearchStats, prepare, search
from llm_proxy.store.textindex import token_set
from llm_proxy.store.views import connect, retrying, scan_partitions
from llm_proxy.store.writer import manifest_path, replay

HOUR = timedelta(hours=1)
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 7 * HOUR  # all closed


def record(i: int, at: datetime, text: str = "ordinary words") -> dict:
    r = empty_record()
    r.update(id=f"01C{i:023d}", ts=int(at.timestamp() * 1_000_000), status_code=200,
             method="POST", endpoint="/v1/chat/completions", request_body=text)
    return r


def write_segment(store: Path, records: list[dict], seq: int) -> None:
    seg = JournalSegment(store / "journal", "h", seq, fsync="never", fsync_interval_s=1)
    seg.append(b"".join(encode_record(r) for r in records), len(records))
    seg.close()


def fill(store: Path, segments: int = 4, hours: int = 5, per: int = 5) -> int:
    """``segments`` flushes, each touching every one of ``hours`` closed hours + the current."""
    n = 0
    for s in range(segments):
        rows = []
        for h in range(hours):
            for k in range(per):
                text = "falcon sighting" if (h == 2 and s == 1 and k == 0) else "ordinary words"
                rows.append(record(n, BASE + h * HOUR + timedelta(minutes=s * 10 + k), text))
                n += 1
        rows.append(record(n, datetime.now(UTC)))
        n += 1
        write_segment(store, rows, s + 1)
        replay(store)
    return n


def counts(store: Path) -> tuple[int, int]:
    con = connect(store)
    return con.execute("SELECT count(*), count(DISTINCT id) FROM flows").fetchone()


def files_per_hour(store: Path) -> dict[str, int]:
    return {p.partition.label: len(p.files) for p in scan_partitions(store)}


def test_compact_merges_closed_hours_only(store: Path, capsys):
    total = fill(store)
    before = files_per_hour(store)
    assert max(before.values()) == 4 and counts(store) == (total, total)
    code, out, _ = cli(capsys, "compact", "--store", str(store))
    assert code == 0 and "Compacted 5 hour(s): 20 files → 5" in out
    after = files_per_hour(store)
    current = max(after)
    assert after[current] == 4  # the hour being written is left alone
    assert all(v == 1 for k, v in after.items() if k != current)
    assert counts(store) == (total, total)
    for part in scan_partitions(store):
        if part.partition.label != current:
            (f,) = part.files
            assert f.name.startswith("compact-")
            ids = pq.read_table(f, columns=["id"]).column("id").to_pylist()
            assert ids == sorted(ids)
    code, out, _ = cli(capsys, "compact", "--store", str(store))
    assert "Nothing to compact" in out


def test_files_named_by_a_pending_manifest_are_left_alone(store: Path):
    fill(store, segments=2, hours=1)
    part = [p for p in scan_partitions(store) if len(p.files) == 2][-1]  # a closed hour
    key = f"{part.partition.date}/{part.partition.hour:02d}"
    seg = store / "journal" / "h-0000000000000099.jsonl"
    seg.write_text("")
    manifest_path(seg).write_text(json.dumps({key: part.files[0].name}))
    todo = plan(store)
    (only,) = [p for p in todo if p.partition.label == part.partition.label]
    assert only.files == (part.files[1],)


def test_mid_swap_listing_is_deduplicated(store: Path):
    """A reader that lists the folder after the merged file appeared but before the inputs
    were removed sees both: the view must still count each record once."""
    total = fill(store, segments=3, hours=2)
    part = [p for p in scan_partitions(store) if len(p.files) == 3][-1]  # a closed hour
    merged = merge_tables(pq.read_table(f) for f in part.files)
    target = part.partition.path / parquet_name("compact", 1)
    publish(store, [(indexed_table(merged, target.name), target)], reason="compact")
    assert files_per_hour(store)[part.partition.label] == 4
    assert counts(store) == (total, total)


def test_query_whose_listed_file_vanished_relists(store: Path):
    total = fill(store, segments=3, hours=2)
    stale = scan_partitions(store)
    compact(store)
    calls = []

    def run() -> tuple[int, int]:
        listing = stale if not calls else scan_partitions(store)
        calls.append(1)
        con = connect(store, partitions=listing)
        return con.execute("SELECT count(*), count(DISTINCT id) FROM flows").fetchone()

    assert retrying(run) == (total, total) and len(calls) == 2


def test_concurrent_reader_never_sees_a_record_twice_or_misses_one(
        store: Path, monkeypatch: pytest.MonkeyPatch):
    total = fill(store, segments=6, hours=6, per=3)
    # publish's test hook: pause inside each swap so the reader runs in the middle of them
    monkeypatch.setenv(DELAY_ENV, "0.1")
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            def attempt() -> tuple[int, int]:
                con = connect(store)
                return con.execute("SELECT count(*), count(DISTINCT id) FROM flows").fetchone()
            seen.append(retrying(attempt, attempts=10))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        report = compact(store)
    finally:
        done.set()
        thread.join()
    assert report.partitions == 6 and len(seen) >= 3
    assert set(seen) == {(total, total)}


def test_text_search_skips_files_by_their_word_index(store: Path):
    fill(store)
    before = search(store, prepare(Filters(text="falcon")), limit=10)
    compact(store)
    stats = SearchStats()
    after = search(store, prepare(Filters(text="falcon")), limit=10, stats=stats)
    assert [r["id"] for r in after] == [r["id"] for r in before] and len(after) == 1
    assert stats.files_skipped_by_index == 4 and stats.files_scanned == 5  # 1 + current hour
    stats = SearchStats()
    assert search(store, prepare(Filters(text="nowhere")), limit=10, stats=stats) == []
    assert stats.files_scanned == 4  # only the current hour's unindexed files


def test_an_index_copied_into_another_file_is_ignored(store: Path):
    fill(store, segments=1, hours=1)
    compact(store)
    part = next(p for p in scan_partitions(store) if p.files[0].name.startswith("compact-"))
    meta = pq.read_metadata(part.files[0]).metadata
    assert token_set(part.files[0].name, meta) is not None
    assert token_set("compact-other.parquet", meta) is None


@pytest.mark.parametrize("args,needle", [(["--min-age", "soon"], "--min-age 'soon'")])
def test_compact_bad_input(store: Path, capsys, args, needle):
    fill(store, segments=1, hours=1)
    code, _, err = cli(capsys, "compact", "--store", str(store), *args)
    assert code == 2 and needle in err
