"""Journal → Parquet → DuckDB, through the real writer, on a real filesystem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llm_proxy.schema import COLUMNS, RECORD_SCHEMA, empty_record
from llm_proxy.store.journal import JournalSegment, encode_record, list_segments
from llm_proxy.store.layout import JOURNAL_DIR, partition_of
from llm_proxy.store.parquet import encode_parquet, records_to_table
from llm_proxy.store.views import connect
from llm_proxy.store.writer import flush_records, manifest_path, replay

HOUR_US = 3600 * 1_000_000
T0 = 1_764_140_000_000_000  # 2025-11-26 06:53:20 UTC


def rec(i: int, ts: int = T0, **kw) -> dict:
    r = empty_record()
    r.update(id=f"01TEST{i:020d}", ts=ts, method="POST", host="api.openai.com",
             endpoint="/v1/chat/completions", status_code=200, input_tokens=i)
    r.update(kw)
    return r


def journal(store: Path, records: list[dict], seq: int = 1) -> Path:
    seg = JournalSegment(store / JOURNAL_DIR, "host1", seq, fsync="never", fsync_interval_s=1)
    seg.append(b"".join(encode_record(r) for r in records), len(records))
    seg.close()
    return seg.path


def test_encoder_roundtrip_in_memory():
    import io

    buf = io.BytesIO()
    encode_parquet(records_to_table([rec(1), rec(2)]), buf)
    buf.seek(0)
    table = pq.read_table(buf)
    assert table.schema.equals(RECORD_SCHEMA, check_metadata=False)
    assert table.column("input_tokens").to_pylist() == [1, 2]


def test_flush_writes_hive_partitions_read_only(store: Path):
    records = [rec(1), rec(2, ts=T0 + HOUR_US)]
    seg = journal(store, records)
    written = flush_records(store, seg, "host1", 1, records)
    assert not seg.exists()
    assert len(written) == 2
    for path in written:
        rel = path.relative_to(store).as_posix()
        date, hour = rel.split("/")[1:3]
        assert date.startswith("date=") and hour.startswith("hour=")
        assert path.name.startswith("host1-0000000000000001-")
        assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stat.S_IMODE((store / "flows").stat().st_mode) == 0o700


def test_journal_records_are_queryable_before_flush(store: Path):
    journal(store, [rec(1), rec(2)])
    con = connect(store)
    assert con.execute("select count(*), sum(input_tokens) from flows").fetchone() == (2, 3)
    assert con.execute("select count(*) from requests").fetchone() == (2,)


def test_torn_last_line_is_skipped(store: Path):
    seg = journal(store, [rec(1)])
    with open(seg, "ab") as fh:
        fh.write(b'{"id": "01BROKEN", "ts": 1')
    assert connect(store).execute("select count(*) from flows").fetchone() == (1,)
    assert replay(store) == 1


def test_replay_after_partial_flush_neither_loses_nor_doubles(store: Path):
    """A crash after one of two partition files was written: manifest tells what is done."""
    records = [rec(1), rec(2, ts=T0 + HOUR_US)]
    seg = journal(store, records)
    # simulate the crash: flush only the first partition by hand using the flush machinery
    first = [r for r in records if partition_of(r["ts"]) == partition_of(T0)]
    flush_records(store, seg, "host1", 1, first)  # deletes the segment, so re-create it
    seg = journal(store, records)
    # a manifest that says partition of T0 is done (as an interrupted flush leaves it)
    done = next((store / "flows").rglob("*.parquet"))
    date, hour = partition_of(T0)
    manifest_path(seg).write_text(f'{{"{date}/{hour}": "{done.name}"}}')
    con = connect(store)
    assert con.execute("select count(*) from flows").fetchone() == (2,)
    assert replay(store) == 1
    con = connect(store)
    assert con.execute("select list(input_tokens order by input_tokens) from flows").fetchone() == ([1, 2],)
    assert list_segments(store / JOURNAL_DIR) == []


def test_replay_skips_a_segment_a_live_writer_holds(store: Path):
    seg = JournalSegment(store / JOURNAL_DIR, "host1", 5, fsync="never", fsync_interval_s=1)
    seg.append(encode_record(rec(1)), 1)
    assert replay(store) == 0
    assert seg.path.exists()
    seg.close()
    assert replay(store) == 1


def test_views_cover_every_group(store: Path):
    journal(store, [rec(1, error_type="rate_limit", status_code=429), rec(2)])
    con = connect(store)
    cols = {r[0] for r in con.execute("describe flows").fetchall()}
    assert set(COLUMNS) <= cols
    assert con.execute("select count(*) from errors").fetchone() == (1,)
    for view in ("requests", "responses", "security"):
        names = [r[0] for r in con.execute(f"describe {view}").fetchall()]
        assert names[:2] == ["id", "ts"]


def test_missing_store_is_a_clear_error(tmp_path: Path):
    from llm_proxy.errors import StoreError

    with pytest.raises(StoreError, match="no audit store"):
        connect(tmp_path / "nope")


def test_fsync_always_and_permissions(store: Path):
    seg = JournalSegment(store / JOURNAL_DIR, "h", 1, fsync="always", fsync_interval_s=1)
    seg.append(encode_record(rec(1)), 1)
    assert stat.S_IMODE(os.stat(seg.path).st_mode) == 0o600
    seg.close()


def _built_records() -> list[dict]:
    """Records as the capture worker builds them: plain, streamed, failed, unknown API."""
    import gzip
    import json

    from llm_proxy.addon.record import RecordBuilder
    from llm_proxy.audit import AuditConfig

    builder = RecordBuilder.from_config(AuditConfig(), "unit")
    base = {"t0": T0 / 1e6, "t1": T0 / 1e6 + 0.2, "t2": T0 / 1e6 + 0.5, "method": "POST",
            "host": "api.openai.com", "port": 443, "path": "/v1/chat/completions",
            "hv": "HTTP/1.1", "cip": "10.0.0.1",
            "rqh": ((b"authorization", b"Bearer sk-proj-UNITTEST0123456789abcdefghijkl"),
                    (b"content-type", b"application/json")),
            "rqb": json.dumps({"model": "gpt-4o-mini", "messages": [
                {"role": "user", "content": "héllo \"quoted\"\nnew line \u2028 ✓ 😀"}]}).encode()}
    chat = {"id": "c1", "model": "gpt-4o-mini-2024-07-18", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}}
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (
        {"id": "s", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "a"}}]},
        {"id": "s", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {},
                                                         "finish_reason": "length"}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 1}})) + b"data: [DONE]\n\n"
    caps = [
        {**base, "status": 200, "rsh": ((b"content-type", b"application/json"),
                                        (b"content-encoding", b"gzip")),
         "rsb": gzip.compress(json.dumps(chat).encode())},
        {**base, "status": 200, "rsh": ((b"content-type", b"text/event-stream"),), "rsb": sse,
         "sm": True},
        {**base, "t0": T0 / 1e6 + 3600, "err": "Connection refused"},
        {**base, "host": "llm.internal", "path": "/generate", "status": 500,
         "rsh": ((b"content-type", b"application/octet-stream"),), "rsb": bytes(range(256))},
    ]
    return [builder.build({**c, "fid": f"f{i}", "rql": len(c["rqb"]),
                           "rsl": len(c.get("rsb", b""))}) for i, c in enumerate(caps)]


def test_a_segment_reads_into_arrow_exactly_as_its_records_convert(store: Path):
    """The flusher reads sealed segments with Arrow's JSON reader (no GIL); replay and the
    views convert records as dicts. Both must give the same table, value for value."""
    from llm_proxy.store.parquet import segment_to_table

    records = _built_records() + [rec(1, latency_ms=5, cost_usd=0, stream=False,
                                      request_body="x" * 100_000, user_id=None)]
    seg = journal(store, records)
    assert segment_to_table(seg).equals(records_to_table(records), check_metadata=True)


def test_what_arrows_reader_rejects_is_read_the_lenient_way(store: Path):
    from llm_proxy.store.parquet import segment_to_table

    seg = journal(store, [rec(1), rec(2)])
    with open(seg, "ab") as fh:
        fh.write(b'{"id": "01BROKEN", "ts": 1')  # torn by a crash mid-write
    assert segment_to_table(seg).column("input_tokens").to_pylist() == [1, 2]


def test_a_wrongly_typed_journal_value_breaks_neither_queries_nor_the_flush(store: Path, capsys):
    """A journal line damaged or edited on disk — valid JSON, a value of the wrong type — used
    to fail the whole conversion: every query of the store and every flush of the segment.
    Now the value is null and the record says why; a ts no partition can hold (a string,
    nanoseconds) is taken from the time in the ULID id; a record with neither is left out."""
    from llm_proxy.addon.record import ulid

    good_id = ulid(T0 / 1e6, "flow-9")  # a real ULID: its first 10 characters are the time
    seg = journal(store, [rec(1), rec(2, input_tokens="lots", error_trace="earlier note"),
                          rec(3, id=good_id, ts="yesterday"), rec(4, ts=T0 * 1000),
                          rec(5, id=["not", "an", "id"], ts="never"), rec(6)])
    expected = [
        (1, None, T0),
        (None, "earlier note; journal: unreadable input_tokens stored as null", T0),
        (3, "journal: ts unusable, taken from the id", T0 // 1000 * 1000),
        (4, "journal: ts unusable, taken from the id", None),  # rec(4)'s id is no ULID time
        (6, None, T0),
    ]

    def rows(con):
        got = con.execute("select input_tokens, error_trace, epoch_us(ts) from flows "
                          "order by input_tokens nulls first, id").fetchall()
        return sorted(got, key=lambda r: (r[0] is not None, r[0] or 0))

    def matches(got):
        want = sorted(expected, key=lambda r: (r[0] is not None, r[0] or 0))
        return [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in want] and all(
            c is None or g == c for (_, _, g), (_, _, c) in zip(got, want, strict=True))

    assert matches(rows(connect(store))), rows(connect(store))
    assert replay(store) == 5  # the segment reaches Parquet (it used to stay, failing, forever)
    assert "skipped a journal record without a usable id and ts" in capsys.readouterr().err
    assert not seg.exists()
    assert matches(rows(connect(store)))


def test_a_segment_that_cannot_be_replayed_does_not_stop_the_start(store: Path, monkeypatch,
                                                                   capsys):
    """replay() runs as the capture worker starts: one segment whose content cannot be read
    (whatever the lenient conversion still fails on) stays for the next start, with a
    warning, and the others are replayed."""
    from llm_proxy.store import writer as writer_mod

    bad = journal(store, [rec(1)], seq=1)
    journal(store, [rec(2)], seq=2)
    real = writer_mod.records_to_table

    def records_to_table(records):
        if any(r["input_tokens"] == 1 for r in records):
            raise RecursionError("maximum recursion depth exceeded")  # say, absurd nesting
        return real(records)

    monkeypatch.setattr(writer_mod, "records_to_table", records_to_table)
    journaled: set[str] = set()
    assert replay(store, journaled) == 1
    assert bad.exists() and "could not be read" in capsys.readouterr().err
    # its records are journaled all the same: a capture resent after a crash is not built twice
    assert journaled == {rec(1)["id"], rec(2)["id"]}


def test_a_float_ts_is_placed_where_arrow_puts_it():
    """Arrow truncates a float ts; the views' time filter, replay and erase must agree with it."""
    from llm_proxy.store.layout import record_time_us

    assert record_time_us({"ts": float(T0) + 0.75, "id": "x"}) == T0
    assert record_time_us({"ts": float("nan"), "id": "x"}) is None
    assert records_to_table([rec(1, ts=float(T0) + 0.75)]).column("ts").cast("int64")[0].as_py() == T0


def test_a_batch_that_cannot_be_flushed_keeps_its_journal_and_the_next_one_flushes(
        store: Path, capsys, monkeypatch):
    """The flusher's two threads (reading into Arrow, encoding) keep the batches' order and
    report a failure in its place: the bad segment stays for replay, later ones go on."""
    from llm_proxy.addon import worker as worker_mod
    from llm_proxy.addon.worker import _Batch, _Flusher
    from llm_proxy.audit import AuditConfig

    real_flush = worker_mod.flush_table

    def flush_table(store, segment, instance, seq, table):
        if seq == 2:
            raise OSError(28, "No space left on device")
        return real_flush(store, segment, instance, seq, table)

    monkeypatch.setattr(worker_mod, "flush_table", flush_table)
    flusher = _Flusher(store, "host1")
    flusher.start()
    batches = []
    for seq, records in enumerate(([rec(1)], [rec(2)], [rec(3)], [rec(4)]), 1):
        batch = _Batch(store / JOURNAL_DIR, "host1", AuditConfig(fsync="never"), seq)
        batch.segment.append(b"".join(encode_record(r) for r in records), len(records))
        batch.count = len(records)
        batches.append(batch)
        flusher.jobs.put(batch)
    flusher.jobs.put(None)
    flusher.join()
    assert "Parquet flush failed, journal kept" in capsys.readouterr().err
    assert [seg for _, _, seg in list_segments(store / JOURNAL_DIR)] == [batches[1].segment.path]
    flushed = sorted((store / "flows").rglob("*.parquet"), key=lambda f: f.name)
    assert [f.name[:len("host1-0000000000000001")] for f in flushed] == [
        f"host1-{seq:016d}" for seq in (1, 3, 4)]
    assert [pq.read_table(f, columns=["id"])["id"][0].as_py() for f in flushed] == [
        rec(i)["id"] for i in (1, 3, 4)]


def test_a_record_longer_than_the_readers_block_is_read_whole(store: Path, monkeypatch):
    from llm_proxy.store import parquet
    from llm_proxy.store.parquet import segment_to_table

    big = "\u00e9\"\n" * (parquet._JSON_BLOCK // 3)  # escaped in JSON: longer than a block
    records = [rec(1), rec(2, response_body=big), rec(3)]
    seg = journal(store, records)

    def no_lenient_way(path):
        raise AssertionError("Arrow's reader should have read it (as one block)")

    monkeypatch.setattr(parquet, "read_segment", no_lenient_way)
    assert segment_to_table(seg).equals(records_to_table(records), check_metadata=True)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_flusher_ends_even_when_its_writer_thread_dies(store: Path, monkeypatch):
    """A writer thread killed by something unexpected must not leave the converter blocked
    on a full queue: the worker could then never finish at EOF. Its batches stay in the
    journal for the next start's replay."""
    import threading

    from llm_proxy.addon import worker as worker_mod
    from llm_proxy.audit import AuditConfig

    class Unexpected(BaseException):
        pass

    def dies(*args, **kwargs):
        raise Unexpected

    monkeypatch.setattr(worker_mod, "flush_table", dies)
    flusher = worker_mod._Flusher(store, "host1")
    flusher.start()
    for seq in range(1, 6):
        batch = worker_mod._Batch(store / JOURNAL_DIR, "host1", AuditConfig(fsync="never"), seq)
        batch.segment.append(encode_record(rec(seq)), 1)
        batch.count = 1
        flusher.jobs.put(batch)
    flusher.jobs.put(None)
    joined = threading.Thread(target=flusher.join, daemon=True)
    joined.start()
    joined.join(15)
    assert not joined.is_alive(), "the flusher hung"
    assert len(list_segments(store / JOURNAL_DIR)) == 5


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_a_new_segment_s_name_is_made_durable_with_its_lines(store: Path, monkeypatch, fsync):
    """fsyncing a segment's lines is not enough after a power loss: the folder entry of a new
    segment must reach the disk too, or the segment vanishes with every synced line in it."""
    import time

    from llm_proxy.store import journal as journal_mod

    synced: list[Path] = []
    real = journal_mod.fsync_dir
    monkeypatch.setattr(journal_mod, "fsync_dir", lambda path: (synced.append(path), real(path)))
    seg = JournalSegment(store / JOURNAL_DIR, "host1", 1, fsync=fsync, fsync_interval_s=0.05)
    seg.append(encode_record(rec(1)), 1)
    if fsync == "interval":
        deadline = time.monotonic() + 10
        while not synced and time.monotonic() < deadline:
            time.sleep(0.01)
    seg.close()
    assert synced == ([] if fsync == "never" else [store / JOURNAL_DIR])
