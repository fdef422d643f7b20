"""The ``llm-audit`` command: one Typer app, one module per command group.

Each command module exposes ``register(app)``; this module only assembles them and maps the
domain errors to exit codes (2 for bad usage or input, one line, no traceback).
"""

from __future__ import annotations

import click
import typer
import typer.core

from llm_proxy.errors import AuditError


class _AuditGroup(typer.core.TyperGroup):
    """Maps domain errors to one line on stderr and exit code 2, for every command and for
    every way of invoking the app (console script, ``python -m``, ``CliRunner``)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AuditError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_AuditGroup,
    name="llm-audit",
    help="Audit trail for LLM API calls: capture through a proxy, then search, report and verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = (
    "llm_proxy.cli.proxy",
    "llm_proxy.cli.query",
    "llm_proxy.cli.search",
    "llm_proxy.cli.tail",
    "llm_proxy.cli.export",
    "llm_proxy.cli.report",
    "llm_proxy.cli.retention",
    "llm_proxy.cli.redact",
    "llm_proxy.cli.alerts",
    "llm_proxy.cli.ship",
    "llm_proxy.cli.demo",
)


def _register_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command group not written yet
                continue
            raise
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point of the ``llm-audit`` console script and ``python -m llm_proxy``."""
    app()
