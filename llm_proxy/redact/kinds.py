"""The kinds of value the engine redacts, their placeholders and their precedence.

A kind is a lower-case name (``email``); its placeholder is the upper-cased name in brackets
(``[EMAIL]``), or ``[EMAIL:7f3a2c]`` with keyed pseudonyms. Counts returned by the engine are
keyed by kind, which is what the record's ``redactions`` column lists.
"""

from __future__ import annotations

import re

__all__ = [
    "BUILTIN_KINDS",
    "PII_KINDS",
    "PLACEHOLDER_RE",
    "SECRET_KINDS",
    "placeholder",
    "rank",
]

# Order matters: it is the precedence when two findings overlap (earlier wins), so specific
# shapes (a PEM block, a JWT, an ``sk-`` key) beat the generic ones that also match them
# (a bearer token, a password assignment).
SECRET_KINDS: tuple[str, ...] = (
    "private_key",
    "jwt",
    "url_credentials",
    "basic_auth",
    "aws_access_key",
    "aws_secret_key",  # an exact 40-character shape: more specific than "key=…"
    "api_key",
    "token",
    "password",
)

PII_KINDS: tuple[str, ...] = (
    "email",
    "iban",  # before cards: an IBAN's digits can contain a Luhn-valid run
    "credit_card",
    "ssn",
    "ni_number",
    "ip_address",
    "date_of_birth",
    "phone",
    "address",
    "person",
)

BUILTIN_KINDS: tuple[str, ...] = SECRET_KINDS + PII_KINDS

# Custom rules rank after secrets and before PII: an explicit rule should beat a heuristic
# (a name, an address) but never unmask part of a key.
_RANK = {kind: i for i, kind in enumerate(SECRET_KINDS)}
_RANK.update({kind: len(SECRET_KINDS) + 1 + i for i, kind in enumerate(PII_KINDS)})
_CUSTOM_RANK = len(SECRET_KINDS)

# What the engine writes; never itself a finding (so redacting twice changes nothing and
# ``llm-audit rescan`` does not report placeholders).
PLACEHOLDER_RE = re.compile(r"\[[A-Z][A-Z0-9_]*(?::[0-9a-f]{6})?\]")


def placeholder(kind: str, pseudonym: str | None = None) -> str:
    """``[EMAIL]`` or, with a keyed pseudonym, ``[EMAIL:7f3a2c]``."""
    name = kind.upper()
    return f"[{name}:{pseudonym}]" if pseudonym else f"[{name}]"


def rank(kind: str) -> int:
    """Precedence of a kind when findings overlap: lower wins."""
    return _RANK.get(kind, _CUSTOM_RANK)
