"""Pure: the names a model string may be priced under.

Providers and gateways spell the same model many ways: dated snapshots (``gpt-4o-2024-08-06``,
``claude-sonnet-4-20250514``), Vertex's ``claude-sonnet-4@20250514``, Gemini's
``models/gemini-2.0-flash-001``, Bedrock's ``us.anthropic.claude-3-7-sonnet-20250219-v1:0``,
OpenRouter's ``anthropic/claude-sonnet-4``. ``candidates`` turns one spelling into an ordered
list of (provider hint, name) pairs to look up; the price table tries them in order, so an
explicit entry or alias always wins over a guess made by stripping a date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["candidates", "normalise", "strip_version"]

# Bedrock cross-region inference profiles put a region group before the vendor.
_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|ap|jp|au|ca|us-gov|global)\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$|-\d+:\d+$")
# Snapshot suffixes: -2024-08-06, -20250514, -0709 / -2411 (4 digits), -001, -latest,
# -preview-06-05 style dates, and Cohere's -03-2025.
_DATED = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),
    re.compile(r"-\d{8}$"),
    re.compile(r"-\d{2}-\d{4}$"),
    re.compile(r"-\d{4}$"),
    re.compile(r"-\d{3}$"),
    re.compile(r"-latest$"),
)


def normalise(model: str) -> str:
    """Lower case, no ``models/`` prefix, Vertex ``@`` dates as ``-`` dates."""
    name = model.strip().lower()
    name = name.removeprefix("models/")
    return name.replace("@", "-")


def strip_version(name: str) -> str | None:
    """The name without one trailing snapshot/version suffix, or None if it has none."""
    for pattern in _DATED:
        stripped = pattern.sub("", name)
        if stripped != name and stripped:
            return stripped
    return None


def candidates(model: str, vendor_prefixes: Mapping[str, str]) -> list[tuple[str | None, str]]:
    """(provider hint or None, name) pairs to try, most specific first.

    A ``None`` hint means "the record's provider (and its fallbacks)"; a provider name comes
    from a vendor prefix (``anthropic.`` on Bedrock, ``google/`` on OpenRouter).
    """
    name = normalise(model)
    out: list[tuple[str | None, str]] = [(None, name)]
    # Bedrock: [region.]vendor.model[-v1:0]
    bare = _BEDROCK_REGION.sub("", name)
    if bare != name:
        out.append((None, bare))
    vendor, dot, rest = bare.partition(".")
    if dot and vendor in vendor_prefixes and rest:
        unversioned = _BEDROCK_VERSION.sub("", bare)
        if unversioned != bare:
            out.append((None, unversioned))
        out.append((vendor_prefixes[vendor], _BEDROCK_VERSION.sub("", rest)))
    # Gateways: vendor/model[:variant]
    vendor, slash, rest = name.partition("/")
    if slash and rest:
        rest = rest.split(":", 1)[0]
        if vendor in vendor_prefixes:
            out.append((vendor_prefixes[vendor], rest))
        out.append((None, rest))
    # Finally the same names without a snapshot suffix (repeatedly: -preview-06-05).
    for hint, candidate in list(out):
        stripped = strip_version(candidate)
        while stripped:
            out.append((hint, stripped))
            stripped = strip_version(stripped)
    unique: list[tuple[str | None, str]] = []
    for c in out:
        if c not in unique:
            unique.append(c)
    return unique
