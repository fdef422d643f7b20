"""The ``llm-audit`` command: one Typer app, one module per command group.

Each command module exposes ``register(app)``; this module only assembles them and maps the
domain errors to exit codes (2 for bad usage or input, one line, no traceback).
"""

from __future__ import annotations

import sys

import typer

from llm_proxy.errors import AuditError

app = typer.Typer(
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
    "llm_proxy.cli.report",
    "llm_proxy.cli.retention",
    "llm_proxy.cli.redact",
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
    """Entry point: run the app, turning domain errors into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except AuditError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            typer.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code if exc.exit_code else 2)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise
