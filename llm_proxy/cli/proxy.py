"""``llm-audit proxy``: mitmdump with the audit addon, and how to point clients at it."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from llm_proxy.addon import SCRIPT
from llm_proxy.cli.options import ConfigOpt, StoreOpt, default_store_path, resolve
from llm_proxy.errors import UsageError
from llm_proxy.store.layout import prepare_writable_store

__all__ = ["register", "mitmdump_args", "client_instructions"]


def mitmdump_args(*, host: str, port: int, store: str, config: Path | None,
                  intercept: list[str], upstream_ca: Path | None, insecure_upstream: bool,
                  sets: list[str], confdir: str | None = None) -> list[str]:
    """The mitmdump command line (without the program name) that runs the audit addon."""
    if upstream_ca and insecure_upstream:
        raise UsageError("--upstream-ca and --insecure-upstream exclude each other")
    args = ["--listen-host", host, "--listen-port", str(port), "-s", SCRIPT,
            "--set", f"audit_store={store}", "--set", "connection_strategy=lazy",
            "--set", "flow_detail=0"]
    if config:
        args += ["--set", f"audit_config={Path(config).resolve()}"]
    for h in intercept:
        args += ["--set", f"audit_intercept={h}"]
    if upstream_ca:
        if not upstream_ca.is_file():
            raise UsageError(f"--upstream-ca {str(upstream_ca)!r} does not exist")
        args += ["--set", f"ssl_verify_upstream_trusted_ca={upstream_ca.resolve()}"]
    if insecure_upstream:
        args += ["--set", "ssl_insecure=true"]
    if confdir:
        args += ["--set", f"confdir={confdir}"]
    for s in sets:
        if "=" not in s:
            raise UsageError(f"--set {s!r}: expected mitmproxy_option=value")
        args += ["--set", s]
    return args


def client_instructions(host: str, port: int, confdir: str, store: str | None = None) -> str:
    """What to export for clients, and (for a store other than the default) for queries."""
    conf = os.path.expanduser(confdir)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    query = ""
    if store and store != default_store_path():
        shown = store if "://" in store else os.path.abspath(os.path.expanduser(store))
        query = ("Query it (`llm-audit sql`, `search`, `report` …) from any shell with:\n"
                 f"  export LLM_AUDIT_STORE={shown}"
                 "      # or --store on each command\n")
    return (
        "Point clients at the proxy:\n"
        f"  export HTTPS_PROXY=http://{shown_host}:{port}\n"
        f"  export SSL_CERT_FILE={conf}/llm-audit-ca-bundle.pem"
        "      # system CAs + the mitmproxy CA\n"
        f"  export REQUESTS_CA_BUNDLE={conf}/llm-audit-ca-bundle.pem\n"
        f"  export NODE_EXTRA_CA_CERTS={conf}/mitmproxy-ca-cert.pem\n"
        + query +
        "Only LLM API hosts are decrypted and recorded; everything else is tunnelled untouched."
    )


_LISTEN_OPTIONS = ("listen_host=", "listen_port=", "mode=")


def ensure_port_free(host: str, port: int, sets: list[str]) -> None:
    """Fail in one line when the listen address is taken; mitmproxy would say so after this
    command printed its client instructions, and suggest a flag of its own (``--mode``).
    Only a taken or forbidden address fails here; anything else (a listen address set with
    ``--set``, a name that does not resolve) is left to mitmproxy to judge."""
    if any(s.startswith(_LISTEN_OPTIONS) for s in sets):
        return
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except OSError:
        return
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as mitmproxy binds
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}; "
                                     "pick another port with --port (or --host)") from None


def proxy(
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    intercept: Annotated[list[str] | None, typer.Option(
        "--intercept", help="Also intercept and audit this host (repeatable; *.suffix works).")] = None,
    upstream_ca: Annotated[Path | None, typer.Option(
        "--upstream-ca", help="Trust this CA file for upstream servers.")] = None,
    insecure_upstream: Annotated[bool, typer.Option(
        "--insecure-upstream", help="Do not verify upstream certificates (testing only).")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Pass a mitmproxy option through, as option=value (repeatable).")] = None,
) -> None:
    """Run the auditing proxy (mitmdump with the audit addon)."""
    store_path, _cfg = resolve(store, config)  # validates the config before mitmproxy starts
    args = mitmdump_args(host=host, port=port, store=store_path, config=config,
                         intercept=intercept or [], upstream_ca=upstream_ca,
                         insecure_upstream=insecure_upstream, sets=set_ or [])
    ensure_port_free(host, port, set_ or [])  # before the instructions to point clients at it
    prepare_writable_store(Path(store_path).expanduser())  # last: it creates the store
    confdir = next((s.split("=", 1)[1] for s in (set_ or []) if s.startswith("confdir=")),
                   "~/.mitmproxy")
    typer.echo(f"llm-audit proxy on {host}:{port}, store {store_path}")
    typer.echo(client_instructions(host, port, confdir, store_path), err=False)
    from mitmproxy.tools.main import mitmdump

    mitmdump(args)


def register(app: typer.Typer) -> None:
    app.command("proxy")(proxy)
