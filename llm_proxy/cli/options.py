"""Option types shared by every command, defined once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from llm_proxy.audit import AuditConfig, load_config
from llm_proxy.redact import RedactionPolicy

__all__ = ["StoreOpt", "ConfigOpt", "FormatOpt", "default_store_path", "resolve"]

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="LLM_AUDIT_STORE",
        help="Store location (a folder or s3://bucket/prefix). Default: config `store`, "
        "else ~/.local/share/llm-audit.",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="LLM_AUDIT_CONFIG",
        help="Configuration file: a .py defining `config = AuditConfig(...)` or a .toml.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option("--format", help="Output format: table, json, jsonl or csv."),
]


def default_store_path() -> str:
    """The store when neither --store, LLM_AUDIT_STORE nor the config names one."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "llm-audit")


def resolve(store: str | None, config: Path | None) -> tuple[str, AuditConfig]:
    """Load the config and pick the store: flag/env first, then config, then the default."""
    cfg = load_config(config)
    RedactionPolicy.from_config(cfg)  # a bad rule or kind name fails here, naming it
    return store or cfg.store or default_store_path(), cfg
