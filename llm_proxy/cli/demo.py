"""``llm-audit demo``: the embedded end-to-end run on the default configuration.

It starts the bundled mock LLM server (HTTPS), the auditing proxy, drives the real ``openai``
and ``anthropic`` SDK clients through it (plain, streamed, gzip, a 429 that the SDK retries,
a 500, prompts with personal data and a pasted key), stops the proxy cleanly and prints what the
audit trail holds.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_proxy.cli.options import ConfigOpt
from llm_proxy.cli.output import console, emit
from llm_proxy.cli.proxy_process import ProxyProcess
from llm_proxy.errors import UsageError

__all__ = ["register", "run_demo", "drive_clients"]

DEMO_PROMPT = ("Summarise our Q3 plan. Contact me at jane.doe@example.com or +1 415 555 0132; "
               "the staging key is sk-proj-DEMOabcdefghijklmnopqrstuvwxyz0123456789.")


def _sdk_clients(base_url: str, proxy_url: str, ca_bundle: Path) -> tuple[Any, Any]:
    try:
        import anthropic
        import openai
    except ImportError as exc:
        raise UsageError(
            f"the demo drives the real SDKs: pip install 'llm-proxy-audit[sdk]' ({exc.name} missing)"
        ) from None
    trust = ssl.create_default_context(cafile=ca_bundle)
    oai = openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="sk-proj-demo0000000000000000000000000000000001",
        http_client=openai.DefaultHttpxClient(proxy=proxy_url, verify=trust),
        max_retries=2, default_headers={"x-user-id": "alice@demo"})
    ant = anthropic.Anthropic(
        base_url=base_url, api_key="sk-ant-api03-demo00000000000000000000000000000002",
        http_client=anthropic.DefaultHttpxClient(proxy=proxy_url, verify=trust),
        max_retries=2, default_headers={"x-user-id": "bob@demo"})
    return oai, ant


def drive_clients(base_url: str, proxy_url: str, ca_bundle: Path) -> list[str]:
    """Send the demo's traffic; returns one line per call describing what happened."""
    oai, ant = _sdk_clients(base_url, proxy_url, ca_bundle)
    done: list[str] = []

    def call(label: str, fn: Any) -> None:
        try:
            fn()
            done.append(f"ok     {label}")
        except Exception as exc:  # the demo shows failures too: they are audited
            done.append(f"error  {label}: {type(exc).__name__}")

    msgs = [{"role": "user", "content": DEMO_PROMPT}]
    call("openai chat", lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=msgs))
    call("openai chat (stream)", lambda: list(oai.chat.completions.create(
        model="gpt-4o", messages=msgs, stream=True, stream_options={"include_usage": True})))
    call("openai chat (gzip, cached)", lambda: oai.chat.completions.create(
        model="gpt-4o-mini", messages=msgs, extra_headers={"x-mock-scenario": "gzip,cached"}))
    call("openai responses", lambda: oai.responses.create(model="gpt-4.1-mini", input="Hello"))
    call("openai embeddings", lambda: oai.embeddings.create(
        model="text-embedding-3-small", input="audit trail"))
    call("openai 429 then retry", lambda: oai.chat.completions.create(
        model="gpt-4o-mini", messages=msgs,
        extra_headers={"x-mock-scenario": "rate_limit_then_ok:1", "x-mock-key": "demo-429"}))
    call("openai 500", lambda: oai.with_options(max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=msgs, extra_headers={"x-mock-scenario": "server_error"}))
    call("anthropic messages", lambda: ant.messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=msgs))
    call("anthropic messages (stream)", lambda: list(ant.messages.create(
        model="claude-haiku-4-5", max_tokens=256, messages=msgs, stream=True)))
    call("anthropic count_tokens", lambda: ant.messages.count_tokens(
        model="claude-sonnet-4-6", messages=msgs))
    return done


SUMMARY_SQL = """
SELECT strftime(ts, '%H:%M:%S') AS time, provider || ' ' || operation AS call,
       coalesce(response_model, request_model) AS model,
       status_code AS status, CASE WHEN stream THEN 'yes' ELSE '' END AS stream,
       coalesce(input_tokens, 0) || '/' || coalesce(output_tokens, 0) AS tokens,
       CASE WHEN cost_usd IS NULL THEN '' ELSE printf('$%.6f', cost_usd) END AS cost,
       round(latency_ms) AS ms, coalesce(error_type, '') AS error,
       coalesce(array_to_string(json_keys(redactions), ','), '') AS redacted
FROM flows ORDER BY ts, id
"""


def run_demo(store: Path, config: Path | None = None) -> list[tuple[Any, ...]]:
    """Run the whole demo into ``store``; returns the summary rows."""
    from llm_proxy.mock.server import MockLLMServer
    from llm_proxy.store.views import connect

    work = store.parent / f".{store.name}-demo-state"
    with MockLLMServer(tls=True, cert_dir=work / "mock-certs") as mock:
        proxy = ProxyProcess(store=store, confdir=work / "mitmproxy",
                             upstream_ca=Path(mock.ca_cert_path), config=config)
        with proxy:
            lines = drive_clients(mock.url, proxy.url, proxy.ca_bundle)
    out = console(min_width=150)
    out.print(f"[bold]Mock LLM server[/] {mock.url}  →  [bold]proxy[/] {proxy.url}  →  "
              f"[bold]store[/] {store}")
    for line in lines:
        out.print(f"  {line}")
    con = connect(store)
    cur = con.execute(SUMMARY_SQL)
    columns = [d[0] for d in cur.description]
    rows = cur.fetchall()
    emit(columns, rows, "table", title=f"{len(rows)} audit records", min_width=150)
    return rows


def demo(
    *,
    store: Annotated[Path | None, typer.Option(
        "--store", help="Where to write the demo store (default: a new temporary folder).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the embedded end-to-end demo: mock LLM server, proxy, real SDK clients, report."""
    target = store or Path(tempfile.mkdtemp(prefix="llm-audit-demo-")) / "store"
    rows = run_demo(target, config)
    typer.echo(
        f"\nThe records are in {target}. Try:\n"
        f"  llm-audit sql --store {target} \"select ts, request_model, status_code, input_tokens, "
        "output_tokens, latency_ms from flows\"\n"
        f"  llm-audit search --store {target} summarise\n"
        f"  llm-audit report cost --store {target} --by model\n"
        f"  llm-audit verify --store {target}\n"
        f"  llm-audit rescan --store {target}"
    )
    if not rows:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
