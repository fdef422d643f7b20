"""Checksums and shape tests that turn a regex hit into a confident finding.

Regexes only say "this looks like a card number"; these functions say "this *is* one" (Luhn,
mod-97, SSA rules, octet ranges, entropy). They are what keeps UUIDs, git SHAs, order numbers,
version strings and timestamps out of the redaction counts.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
from collections import Counter

__all__ = [
    "IBAN_LENGTHS",
    "basic_auth_ok",
    "card_ok",
    "iban_ok",
    "ipv4_ok",
    "ipv6_ok",
    "luhn_ok",
    "ni_ok",
    "random_token_ok",
    "shannon_entropy",
    "ssn_ok",
]

# ISO 13616 registry: country code -> IBAN length.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

# Card networks' leading digits: 2 (Mastercard 2-series), 3 (Amex, Diners, JCB), 4 (Visa),
# 5 (Mastercard), 6 (Discover, UnionPay, Maestro). Anything else is not a payment card.
_CARD_LEADS = frozenset("23456")

# UK National Insurance prefixes that are never issued.
_NI_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def luhn_ok(digits: str) -> bool:
    """The Luhn mod-10 check every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_ok(digits: str) -> bool:
    """A plausible payment card: 13–19 digits, a card network's leading digit, Luhn-valid.

    The leading-digit test rejects the 10% of arbitrary long numbers (epoch milliseconds,
    order numbers starting with 1, 7, 8, 9 or 0) that pass Luhn by chance.
    """
    return 13 <= len(digits) <= 19 and digits[0] in _CARD_LEADS and luhn_ok(digits)


def iban_ok(compact: str) -> bool:
    """ISO 13616: known country, exact length for that country, mod-97 remainder of 1."""
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: no 000/666/9xx area, no 00 group, no 0000 serial."""
    return (
        area != "000"
        and area != "666"
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def ni_ok(prefix: str) -> bool:
    """HMRC never issues a handful of NI prefixes; the regex already excludes D, F, I, Q, U, V."""
    return prefix.upper() not in _NI_BAD_PREFIXES


def ipv4_ok(candidate: str) -> bool:
    """Four decimal octets 0–255 without leading zeros, and not the all-zero placeholder."""
    parts = candidate.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part.isdigit() or len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            return False
        if int(part) > 255:
            return False
    return candidate != "0.0.0.0"


def ipv6_ok(candidate: str) -> bool:
    """A real IPv6 address with at least one non-empty group (so ``::`` alone is not one)."""
    if candidate.count(":") < 2 or not any(ch.isalnum() for ch in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def shannon_entropy(value: str) -> float:
    """Bits per character: keys and random tokens sit above 3.5, English words below 3."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def random_token_ok(value: str, *, min_len: int = 12, min_entropy: float = 3.0) -> bool:
    """A machine-generated secret: long, mixes letters with digits, high entropy.

    Requiring both letters and digits keeps ``YOUR_API_KEY``-style placeholders, identifiers
    and plain words out.
    """
    return (
        len(value) >= min_len
        and any(ch.isdigit() for ch in value)
        and any(ch.isalpha() for ch in value)
        and shannon_entropy(value) >= min_entropy
    )


def basic_auth_ok(encoded: str) -> bool:
    """An HTTP Basic credential: base64 of printable ``user:password``."""
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()
