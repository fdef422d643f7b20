"""``llm-audit ship`` against a real store and loopback destinations.

S3 is moto's ThreadedMotoServer on 127.0.0.1 (boto3 talks real HTTP to it). Elasticsearch cannot
run on this machine, so ES tests use a loopback ``http.server`` that implements only the minimal
``_bulk`` contract: NDJSON action/document pairs in, ``{"errors": bool, "items": [...]}`` out,
with per-item errors for ids the test asks it to reject.
"""

from __future__ import annotations

import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from llm_proxy.cli import ship
from llm_proxy.errors import UsageError
from llm_proxy.schema import empty_record
from llm_proxy.ship.plan import LocalFile, plan_es, plan_s3, s3_key
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.writer import replay

HOUR_US = 3_600_000_000
T0 = 1_764_140_000_000_000  # 2025-11-26 06:53 UTC


def add_records(store: Path, seq: int, ids: list[str], hours: list[int]) -> None:
    """Journal + flush through the real writer: one Parquet file per hourly partition."""
    seg = JournalSegment(store / "journal", "h", seq, fsync="never", fsync_interval_s=1)
    rows = []
    for rid, hour in zip(ids, hours, strict=True):
        r = empty_record()
        r.update(id=rid, ts=T0 + hour * HOUR_US, request_model="gpt-4o", status_code=200)
        rows.append(r)
    seg.append(b"".join(encode_record(r) for r in rows), len(rows))
    seg.close()
    replay(store)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    add_records(path, 1, ["01A", "01B", "01C", "01D"], [0, 0, 1, 2])  # 3 partitions
    return path


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = request.node.name.replace("_", "-").lower()[:50]
    client.create_bucket(Bucket=bucket)
    return client, bucket


class FakeES:
    """Minimal ``_bulk`` endpoint: records every (action, doc) pair it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.reject: set[str] = set()
        self.auth: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                fake.auth.append(self.headers.get("Authorization"))
                assert self.path == "/_bulk"
                assert self.headers["Content-Type"] == "application/x-ndjson"
                lines = body.splitlines()
                items = []
                for action, doc in zip(lines[::2], lines[1::2], strict=True):
                    meta = json.loads(action)["index"]
                    if meta["_id"] in fake.reject:
                        items.append({"index": {"_index": meta["_index"], "_id": meta["_id"],
                                                "status": 400, "error": {
                                                    "type": "mapper_parsing_exception",
                                                    "reason": "failed to parse"}}})
                        continue
                    fake.received.append((meta, json.loads(doc)))
                    items.append({"index": {"_index": meta["_index"], "_id": meta["_id"],
                                            "status": 201, "result": "created"}})
                answer = json.dumps({"took": 1, "errors": any("error" in i["index"]
                                                              for i in items),
                                     "items": items}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> list[str]:
        return [meta["_id"] for meta, _ in self.received]


@pytest.fixture
def es():
    fake = FakeES()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def cli(*args: str):
    app = typer.Typer()
    ship.register(app)

    @app.callback()
    def _main() -> None:  # keeps "ship" a subcommand
        pass

    return CliRunner().invoke(app, ["ship", *args])


def write_config(tmp_path: Path, store: Path, *tables: str) -> Path:
    path = tmp_path / "audit.toml"
    path.write_text(f'store = "{store}"\n' + "".join(f"[[exporters]]\n{t}\n" for t in tables))
    return path


def s3_table(endpoint: str, bucket: str, prefix: str = "audit") -> str:
    return f'kind = "s3"\nbucket = "{bucket}"\nprefix = "{prefix}"\nendpoint_url = "{endpoint}"'


def keys(client, bucket: str) -> dict[str, int]:
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listing}


def test_s3_ships_everything_once_then_only_the_new_file(tmp_path, store, s3, moto_endpoint):
    client, bucket = s3
    cfg = write_config(tmp_path, store, s3_table(moto_endpoint, bucket))
    res = cli("--config", str(cfg), "--format", "json")
    assert res.exit_code == 0, res.output
    [row] = json.loads(res.stdout)
    assert row["files"] == 5 and row["records"] == 4 and row["status"] == "ok"  # 3 + chain + key
    got = keys(client, bucket)
    parquet = sorted(k for k in got if k.endswith(".parquet"))
    assert len(parquet) == 3 and all(k.startswith("audit/flows/date=2025-11-26/hour=") for k in parquet)
    assert "audit/chain/chain.jsonl" in got and "audit/chain/signing.pub.pem" in got
    assert not any("journal" in k or "lock" in k or k.endswith("signing.key") for k in got)
    for rel in [k.removeprefix("audit/") for k in parquet]:
        assert got[f"audit/{rel}"] == (store / rel).stat().st_size

    again = cli("--config", str(cfg), "--format", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["files"] == 0
    assert json.loads(again.stdout)[0]["skipped"] == 5

    chain_before = got["audit/chain/chain.jsonl"]
    add_records(store, 2, ["01E"], [1])  # a new flush: one new file, the chain grows
    third = json.loads(cli("--config", str(cfg), "--format", "json").stdout)[0]
    assert third["files"] == 2 and third["records"] == 1  # the new Parquet file + the chain
    after = keys(client, bucket)
    assert len([k for k in after if k.endswith(".parquet")]) == 4
    assert after["audit/chain/chain.jsonl"] > chain_before

    # the bucket is the store's Hive layout: read it back as downloaded (httpfs is unavailable)
    local = tmp_path / "download"
    for key in after:
        if key.endswith(".parquet"):
            dest = local / key.removeprefix("audit/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(dest))
    table = pq.read_table(local / "flows", partitioning="hive")
    assert table.num_rows == 5
    assert sorted(table.column("id").to_pylist()) == ["01A", "01B", "01C", "01D", "01E"]


def test_dry_run_lists_and_sends_nothing(tmp_path, store, s3, moto_endpoint, es):
    client, bucket = s3
    cfg = write_config(tmp_path, store, s3_table(moto_endpoint, bucket),
                       f'kind = "elasticsearch"\nendpoint = "{es.url}"')
    res = cli("--config", str(cfg), "--dry-run", "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len([r for r in rows if r["exporter"].startswith("s3:")]) == 5
    assert len([r for r in rows if r["exporter"].startswith("elasticsearch:")]) == 3
    assert keys(client, bucket) == {} and es.received == []
    assert not (store / "ship-state.json").exists()


def test_elasticsearch_bulk_ids_are_record_ids_and_nothing_twice(tmp_path, store, es):
    cfg = write_config(tmp_path, store,
                       f'kind = "elasticsearch"\nendpoint = "{es.url}/"\napi_key = "k1"')
    res = cli("--config", str(cfg), "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0] | {"bytes": 0} == {
        "exporter": f"elasticsearch:{es.url}/", "kind": "elasticsearch", "files": 3,
        "records": 4, "skipped": 0, "bytes": 0, "status": "ok"}
    assert sorted(es.ids()) == ["01A", "01B", "01C", "01D"]
    meta, doc = es.received[0]
    assert meta["_index"] == "llm-audit-2025.11.26" and doc["id"] == meta["_id"]
    assert doc["ts"].startswith("2025-11-26T") and doc["ts"].endswith("Z")
    assert set(es.auth) == {"ApiKey k1"}
    state = store / "ship-state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    assert json.loads(cli("--config", str(cfg), "--format", "json").stdout)[0]["files"] == 0
    assert len(es.received) == 4  # nothing twice

    add_records(store, 2, ["01E"], [2])
    res = cli("--config", str(cfg), "--format", "json")
    assert json.loads(res.stdout)[0]["records"] == 1
    assert sorted(es.ids()) == ["01A", "01B", "01C", "01D", "01E"]


def test_elasticsearch_item_error_exits_2_and_retries_next_run(tmp_path, store, es):
    cfg = write_config(tmp_path, store,
                       f'kind = "elasticsearch"\nendpoint = "{es.url}"\nindex = "audit"')
    es.reject = {"01C"}
    res = cli("--config", str(cfg), "--format", "json")
    assert res.exit_code == 2
    assert json.loads(res.stdout)[0]["files"] == 2
    [line] = res.stderr.strip().splitlines()
    assert "01C" in line and "mapper_parsing_exception" in line and "retry" in line
    assert {m["_index"] for m, _ in es.received} == {"audit"}

    es.reject = set()
    res = cli("--config", str(cfg), "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["files"] == 1
    assert sorted(es.ids()) == ["01A", "01B", "01C", "01D"]


def test_one_failing_exporter_does_not_stop_the_others(tmp_path, store, s3, moto_endpoint):
    client, bucket = s3
    dead = FakeES()
    dead.server.server_close()  # nothing listens on this loopback port any more
    cfg = write_config(tmp_path, store,
                       f'kind = "elasticsearch"\nendpoint = "{dead.url}"',
                       s3_table(moto_endpoint, bucket, prefix=""))
    res = cli("--config", str(cfg), "--format", "json")
    assert res.exit_code == 2
    [line] = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: elasticsearch:{dead.url}:") and "unreachable" in line
    rows = {r["kind"]: r for r in json.loads(res.stdout)}
    assert rows["elasticsearch"]["status"] == "failed" and rows["s3"]["files"] == 5
    assert "chain/chain.jsonl" in keys(client, bucket)


def test_exporter_selection_and_usage_errors(tmp_path, store, s3, moto_endpoint, es):
    client, bucket = s3
    cfg = write_config(tmp_path, store, s3_table(moto_endpoint, bucket),
                       f'kind = "elasticsearch"\nendpoint = "{es.url}"\nname = "search"')
    res = cli("--config", str(cfg), "--exporter", "search")
    assert res.exit_code == 0 and len(es.received) == 4 and keys(client, bucket) == {}
    res = cli("--config", str(cfg), "--exporter", "ftp")
    assert isinstance(res.exception, UsageError) and "matches no configured exporter" in str(
        res.exception)
    empty = write_config(tmp_path, store)
    assert isinstance(cli("--config", str(empty)).exception, UsageError)
    assert isinstance(cli("--config", str(cfg), "--format", "csv").exception, UsageError)


def test_plan_functions_are_pure_and_careful():
    pq_file = LocalFile("flows/date=2025-11-26/hour=06/a.parquet", Path("/x"), 100, "parquet")
    chain = LocalFile("chain/chain.jsonl", Path("/c"), 500, "chain")
    assert s3_key("/p/q/", pq_file.rel) == "p/q/" + pq_file.rel and s3_key(None, "x") == "x"
    plan = plan_s3([pq_file, chain], {}, "p")
    assert plan.upload == [pq_file, chain]
    plan = plan_s3([pq_file, chain], {"p/" + pq_file.rel: 100, "p/chain/chain.jsonl": 400}, "p")
    assert plan.skipped == [pq_file] and plan.upload == [chain]  # the chain grew
    plan = plan_s3([pq_file, chain], {"p/" + pq_file.rel: 99, "p/chain/chain.jsonl": 600}, "p")
    assert plan.mismatched == [(pq_file, 99), (chain, 600)] and not plan.upload
    es_plan = plan_es([pq_file, chain], {pq_file.rel})
    assert es_plan.skipped == [pq_file] and es_plan.todo == []


def test_s3_size_mismatch_is_reported_not_overwritten(tmp_path, store, s3, moto_endpoint):
    client, bucket = s3
    rel = next(p for p in store.rglob("*.parquet")).relative_to(store).as_posix()
    client.put_object(Bucket=bucket, Key=f"audit/{rel}", Body=b"not the file")
    cfg = write_config(tmp_path, store, s3_table(moto_endpoint, bucket))
    res = cli("--config", str(cfg), "--format", "json")
    assert res.exit_code == 2
    [line] = res.stderr.strip().splitlines()
    assert rel in line and "left as is" in line
    assert json.loads(res.stdout)[0]["files"] == 4  # the other two Parquet files, chain, key
    assert keys(client, bucket)[f"audit/{rel}"] == len(b"not the file")
