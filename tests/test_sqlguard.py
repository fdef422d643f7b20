"""`sql` and `--where` are read-only: nothing writes, attaches, loads or reads outside the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_search import cli

from llm_proxy.schema import empty_record
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.writer import replay


@pytest.fixture
def small_store(store: Path) -> Path:
    seg = JournalSegment(store / "journal", "h", 1, fsync="never", fsync_interval_s=1)
    rows = []
    for i in range(3):
        r = empty_record()
        r.update(id=f"01ID{i}", ts=1_764_140_000_000_000 + i, status_code=200 + i,
                 request_body="hello")
        rows.append(r)
    seg.append(b"".join(encode_record(r) for r in rows), 3)
    seg.close()
    replay(store)
    return store


def sql(capsys, store: Path, statement: str) -> tuple[int, str, str]:
    return cli(capsys, "sql", "--store", str(store), "--format", "json", statement)


@pytest.mark.parametrize("statement,kind", [
    ("INSERT INTO flows SELECT * FROM flows", "INSERT"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("DROP VIEW flows", "DROP"),
    ("COPY (SELECT * FROM flows) TO '{tmp}/leak.csv'", "COPY"),
    ("ATTACH '{tmp}/other.db' AS other", "ATTACH"),
    ("INSTALL httpfs", "LOAD"),  # DuckDB parses INSTALL as a LOAD statement
    ("LOAD httpfs", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("EXPORT DATABASE '{tmp}/dump'", "EXPORT"),
    ("CALL pragma_version()", "CALL"),
    ("UPDATE flows SET user_id = 'x'", "UPDATE"),
])
def test_writing_statements_are_refused_by_type(small_store: Path, tmp_path: Path, capsys,
                                                statement: str, kind: str):
    code, out, err = sql(capsys, small_store, statement.format(tmp=tmp_path))
    assert code == 2 and out == ""
    assert f"read-only: {kind} statements are refused" in err and err.count("\n") == 1
    assert list(tmp_path.glob("leak*")) == [] and not (tmp_path / "dump").exists()


def test_more_than_one_statement_is_refused(small_store: Path, capsys):
    code, _, err = sql(capsys, small_store, "SELECT 1; DELETE FROM flows")
    assert code == 2 and "2 statements" in err


@pytest.mark.parametrize("statement", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{outside}/x.parquet')",
    "SELECT count(*) FROM flows WHERE EXISTS (SELECT * FROM read_json_auto('/etc/os-release'))",
])
def test_reading_outside_the_store_is_refused(small_store: Path, tmp_path: Path, capsys,
                                              statement: str):
    outside = tmp_path / "outside"
    outside.mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"secret": ["s3cr3t"]}), outside / "x.parquet")
    code, out, err = sql(capsys, small_store, statement.format(outside=outside))
    assert code == 2 and "s3cr3t" not in out
    assert err.startswith("Error: refused: queries may read only the audit store")


def test_selects_over_views_and_store_files_work(small_store: Path, capsys):
    code, out, _ = sql(capsys, small_store, "SELECT count(*) AS n FROM flows")
    assert code == 0 and json.loads(out) == [{"n": 3}]
    code, out, _ = sql(capsys, small_store, "WITH e AS (SELECT * FROM requests) "
                                            "SELECT count(*) AS n FROM e")
    assert json.loads(out) == [{"n": 3}]
    glob = str(small_store / "flows" / "*" / "*" / "*.parquet")
    code, out, _ = sql(capsys, small_store, f"SELECT count(*) AS n FROM read_parquet('{glob}')")
    assert code == 0 and json.loads(out) == [{"n": 3}]
    code, out, _ = sql(capsys, small_store, "EXPLAIN SELECT * FROM flows")
    assert code == 0


def test_where_cannot_escape_into_files_or_writes(small_store: Path, capsys):
    code, _, err = cli(capsys, "search", "--store", str(small_store), "--where",
                       "(SELECT count(*) FROM read_csv('/etc/passwd')) > 0")
    assert code == 2 and "refused" in err
    code, _, err = cli(capsys, "search", "--store", str(small_store), "--where",
                       "1=1) UNION ALL (SELECT 1")
    assert code == 2
