"""``llm-audit retention|hold|verify|erase``: retention, legal holds, tamper evidence, erasure.

Thin shells over ``llm_proxy.store.retention``, ``holds``, ``verify`` and ``erase``: they parse
options, resolve the store and the configuration, and render what the library returns.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from llm_proxy.audit import AuditConfig
from llm_proxy.cli.options import ConfigOpt, FormatOpt, StoreOpt, resolve
from llm_proxy.cli.output import emit
from llm_proxy.errors import StoreError, UsageError
from llm_proxy.store import holds as holds_lib
from llm_proxy.store import retention as retention_lib
from llm_proxy.store.digest import iso
from llm_proxy.store.erase import erase as erase_records
from llm_proxy.store.finalize import PUBLIC_KEY_FILE
from llm_proxy.store.layout import FLOWS_DIR, JOURNAL_DIR
from llm_proxy.store.locks import LockBusy
from llm_proxy.store.signing import CHAIN_DIR, KEY_ENV, public_pem, read_public_key
from llm_proxy.store.verify import verify as verify_store
from llm_proxy.store.verify import write_anchor
from llm_proxy.timeparse import parse_time, utcnow

__all__ = ["register"]

retention_app = typer.Typer(
    help="Archive and delete old partitions by the configured policy (cron-safe).",
    no_args_is_help=True,
)
hold_app = typer.Typer(help="Legal holds: records retention and erasure must keep.",
                       no_args_is_help=True)

NowOpt = Annotated[
    str | None,
    typer.Option("--now", help="Pretend the time is this ISO timestamp (testing, replays).",
                 show_default=False),
]


def _local_store(store: str | None, config: Path | None) -> tuple[Path, AuditConfig]:
    """The store as a local path, with the signing key location from the config applied."""
    location, cfg = resolve(store, config)
    if location.startswith("s3://"):
        raise UsageError(f"{location}: retention, holds, verify and erase work on a local store "
                         "only (s3:// is not supported yet; see docs/retention.md)")
    key = getattr(cfg, "signing_key_path", None)
    if key and not os.environ.get(KEY_ENV):
        os.environ[KEY_ENV] = str(key)
    path = Path(location)
    if not any((path / d).exists() for d in (FLOWS_DIR, JOURNAL_DIR, CHAIN_DIR)):
        raise StoreError(f"no audit store at {str(path)!r}: run `llm-audit proxy --store {path}` "
                         "first, or point --store / LLM_AUDIT_STORE at an existing store")
    return path, cfg


def _now(text: str | None) -> datetime:
    return parse_time(text, option="--now") if text else utcnow()


def _policy(cfg: AuditConfig) -> retention_lib.Policy:
    return retention_lib.Policy(archive_after=cfg.archive_after,
                                retention_days=cfg.retention_days)


@retention_app.command("status")
def retention_status(
    *,
    now: NowOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Show bytes per tier and what is due for archive, deletion or kept by a hold."""
    path, cfg = _local_store(store, config)
    rows = retention_lib.status(path, policy=_policy(cfg), now=_now(now))
    emit(retention_lib.TierUsage.COLUMNS, [r.row() for r in rows], fmt,
         title="retention status")


@retention_app.command("apply")
def retention_apply(
    *,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change "
                                          "nothing.")] = False,
    now: NowOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Archive and delete partitions that are due, keeping records under legal hold."""
    path, cfg = _local_store(store, config)
    try:
        report = retention_lib.apply(path, policy=_policy(cfg), now=_now(now),
                                     archive_path=cfg.archive_path, dry_run=dry_run)
    except LockBusy as busy:
        typer.echo(f"retention apply: another run is active ({busy.holder}); nothing done",
                   err=True)
        return
    if fmt != "table":
        emit(retention_lib.Action.COLUMNS, [a.row() for a in report.actions], fmt)
    elif report.actions:
        emit(retention_lib.Report.GROUPED_COLUMNS, report.grouped(), fmt,
             title="retention (dry run)" if dry_run else "retention")
    typer.echo(report.summary(), err=fmt != "table")


@hold_app.command("add")
def hold_add(
    *,
    name: Annotated[str, typer.Option("--name", help="Case name, e.g. CASE-42.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (case, counsel, ticket).")],
    user: Annotated[str | None, typer.Option("--user", help="Hold this user_id's records.")] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="Hold this key_id's records.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Hold records from this time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Hold records before this time.")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Place a legal hold: matching records are never deleted or erased while it stands."""
    path, _cfg = _local_store(store, config)
    now = utcnow()
    hold = holds_lib.add_hold(
        path, name=name, reason=reason, user=user, key_id=key_id,
        since=parse_time(since, now=now, option="--since") if since else None,
        until=parse_time(until, now=now, option="--until") if until else None,
    )
    typer.echo(f"hold {hold.name} added: {hold.scope()}")


@hold_app.command("list")
def hold_list(
    *,
    all_: Annotated[bool, typer.Option("--all", help="Include released holds.")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List legal holds (active ones, or all with --all)."""
    path, _cfg = _local_store(store, config)
    columns = ("name", "status", "scope", "reason", "created_at", "created_by", "released_at",
               "released_by", "release_reason")
    rows = [(h.name, "active" if h.active else "released", h.scope(), h.reason,
             iso(h.created_at), h.created_by, iso(h.released_at), h.released_by,
             h.release_reason)
            for h in holds_lib.load_holds(path) if all_ or h.active]
    emit(columns, rows, fmt, title="legal holds")


@hold_app.command("release")
def hold_release(
    name: Annotated[str, typer.Argument(help="The hold's name.")],
    *,
    reason: Annotated[str, typer.Option("--reason", help="Why it is released.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Release a legal hold (it stays in the history and in the chain)."""
    path, _cfg = _local_store(store, config)
    hold = holds_lib.release_hold(path, name, reason=reason)
    typer.echo(f"hold {hold.name} released; retention applies again to {hold.scope()}")


def verify(
    *,
    since: Annotated[str | None, typer.Option("--since", help="Only hash files with records "
                                              "from this time on (the chain is always checked "
                                              "whole).")] = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="Verify against this "
                                                    "exported public key instead of the one in "
                                                    "the store.")] = None,
    anchor: Annotated[Path | None, typer.Option("--anchor", help="Check the chain still holds "
                                                "the head saved in FILE, then save the new head "
                                                "there (keep FILE outside the store).")] = None,
    all_signatures: Annotated[bool, typer.Option("--all-signatures", help="Check every "
                                                 "entry's signature, not just the head's.")] = False,
    export_public_key: Annotated[Path | None, typer.Option("--export-public-key", help="Write "
                                                           "the chain's public key (PEM) to "
                                                           "FILE and exit.")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Check every file against the integrity chain and the chain against itself."""
    path, _cfg = _local_store(store, config)
    if export_public_key is not None:
        pem = path / CHAIN_DIR / PUBLIC_KEY_FILE
        if not pem.exists():
            raise StoreError(f"{path} has no integrity chain yet: it starts with the first flush")
        export_public_key.write_bytes(public_pem(read_public_key(pem)))
        typer.echo(f"public key written to {export_public_key}")
        return
    key = read_public_key(public_key) if public_key else None
    result = verify_store(
        path, since=parse_time(since, option="--since") if since else None, public_key=key,
        all_signatures=all_signatures, anchor=anchor)
    if fmt == "table":
        for finding in result.findings:
            typer.echo(finding.line())
        typer.echo(result.summary())
    else:
        emit(("kind", "subject", "detail"), [f.row() for f in result.findings], fmt)
        typer.echo(result.summary(), err=True)
    if not result.clean:
        raise typer.Exit(1)
    if anchor is not None:
        write_anchor(anchor, result)


def erase(
    *,
    user: Annotated[str | None, typer.Option("--user", help="Erase this user_id's records.")] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="Erase this key_id's records "
                                               "(with --user: only records matching both).")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. the request reference); "
                                        "recorded in the chain.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be erased; change "
                                          "nothing.")] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for a running proxy to "
                                        "flush the subject's journaled records.")] = 30.0,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Erase a data subject's records from every tier (GDPR Art. 17), recorded in the chain."""
    path, _cfg = _local_store(store, config)
    result = erase_records(path, user=user, key_id=key_id, reason=reason, dry_run=dry_run,
                           journal_wait=wait)
    who = " and ".join(f"{k}={v}" for k, v in (("user", user), ("key_id", key_id)) if v)
    typer.echo(result.summary(who))


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
    app.add_typer(hold_app, name="hold")
    app.command("verify")(verify)
    app.command("erase")(erase)

