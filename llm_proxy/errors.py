"""The project's domain errors.

Library code raises these; only the CLI turns them into a one-line message and an exit code
(2 for bad usage or bad input). Messages name the problem and, where there is one, the fix.
"""

from __future__ import annotations

__all__ = ["AuditError", "ConfigError", "StoreError", "QueryError", "UsageError"]


class AuditError(Exception):
    """Base class: anything the user can fix, reported as one line."""


class ConfigError(AuditError):
    """The configuration file or a configuration value is invalid."""


class StoreError(AuditError):
    """The store is missing, unreadable or inconsistent."""


class QueryError(AuditError):
    """A filter, time expression or SQL statement was rejected."""


class UsageError(AuditError):
    """A command was called with arguments that do not fit together."""
