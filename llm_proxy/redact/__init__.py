"""Redaction you can prove: secrets and personal data out of every record the proxy writes.

``Redactor(RedactionPolicy.from_config(cfg))`` is built once; the record builder then calls
``redact_body`` for bodies, headers, query strings and error messages, and stores the merged
per-kind counts in the record's ``redactions`` column. ``llm-audit rescan`` uses the same
engine to show that nothing stored still holds what the current rules would redact.

Secret kinds are always redacted, also with ``redact_pii = false`` and in fields whose mode is
``keep``. Detection is regex plus validators (Luhn, mod-97, entropy, context words and a bundled
given-name list); no model is downloaded.
"""

from llm_proxy.redact.engine import Redactor, merge_counts
from llm_proxy.redact.kinds import BUILTIN_KINDS, PII_KINDS, PLACEHOLDER_RE, SECRET_KINDS
from llm_proxy.redact.policy import (
    ADDRESS_HEADERS,
    BODY_FIELDS,
    FIELD_MODES,
    FIELDS,
    RedactionPolicy,
)

__all__ = [
    "ADDRESS_HEADERS",
    "BODY_FIELDS",
    "BUILTIN_KINDS",
    "FIELDS",
    "FIELD_MODES",
    "PII_KINDS",
    "PLACEHOLDER_RE",
    "SECRET_KINDS",
    "RedactionPolicy",
    "Redactor",
    "merge_counts",
]
