"""Pure handling of credentials: fingerprints instead of secrets, auth method, safe headers.

A credential never reaches disk: its header value is replaced by a ``key_id`` fingerprint made
of a short recognisable prefix, the last four characters and a truncated SHA-256, enough to tell
keys apart and match a leaked key against the log, not enough to use or recover one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "auth_from_headers",
    "basic_auth_user",
    "fingerprint",
    "sanitize_headers",
    "sanitize_query",
]

_KNOWN_PREFIXES = (
    "sk-ant-admin01-", "sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-svcacct-", "sk-admin-",
    "sk-or-v1-", "sk-", "gsk_", "xai-", "AKIA", "ASIA", "AIza", "ghp_", "gho_", "github_pat_",
    "hf_", "pk_live_", "sk_live_", "rk_live_", "eyJ",
)
_SECRET_QUERY_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "token", "access_token",
                                  "sig", "signature", "x-amz-signature", "x-amz-credential",
                                  "x-amz-security-token", "password", "secret"})


@lru_cache(maxsize=1024)  # a client sends the same key on every call
def fingerprint(secret: str) -> str:
    """``sk-proj-…a1b2#3f9c2e1d0a``: prefix, last 4, 40 bits of SHA-256."""
    secret = secret.strip()
    if not secret:
        return ""
    prefix = next((p for p in _KNOWN_PREFIXES if secret.startswith(p)), secret[:3])
    if len(secret) < len(prefix) + 8:  # too short to show any of it safely
        prefix, last4 = "", ""
    else:
        last4 = secret[-4:]
    digest = hashlib.sha256(secret.encode()).hexdigest()[:10]
    return f"{prefix}…{last4}#{digest}"


def basic_auth_user(value: str) -> str | None:
    """The user name of a ``Basic`` credential (the password is discarded)."""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user = base64.b64decode(token.strip(), validate=False).decode("utf-8", "replace")
    except (ValueError, TypeError):
        return None
    return user.partition(":")[0] or None


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def auth_from_headers(headers: dict[str, str]) -> tuple[str, str | None]:
    """(auth_method, key_id) from the request headers (lower-case names).

    ``api_key`` for key headers and bearer tokens shaped like provider keys; ``oauth`` for a
    bearer JWT (Azure AD, Vertex access tokens); ``bearer`` for other bearer tokens.
    """
    for name in ("x-api-key", "api-key", "x-goog-api-key"):
        if value := headers.get(name):
            return "api_key", fingerprint(value)
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        scheme = scheme.lower()
        token = token.strip()
        if scheme == "bearer" and token:
            if _looks_like_jwt(token):
                return "oauth", fingerprint(token)
            if any(token.startswith(p) for p in _KNOWN_PREFIXES):
                return "api_key", fingerprint(token)
            return "bearer", fingerprint(token)
        if scheme == "basic":
            return "basic", fingerprint(token)
        if scheme.startswith("aws4-"):
            m = re.search(r"Credential=([A-Z0-9]+)/", auth)
            return "api_key", fingerprint(m.group(1)) if m else None
        return "bearer", fingerprint(auth)
    return "none", None


def _sanitize_header(raw_name: bytes, raw_value: bytes,
                     secret_names: frozenset[str]) -> tuple[str, str]:
    name = raw_name.decode("latin-1").lower()
    value = raw_value.decode("utf-8", "replace")
    if name in secret_names:
        if name in ("cookie", "set-cookie"):
            value = "[REDACTED]"
        else:
            scheme, sep, token = value.partition(" ")
            if sep and scheme.lower() in ("bearer", "basic", "token"):
                value = f"{scheme} [REDACTED {fingerprint(token)}]"
            else:
                value = f"[REDACTED {fingerprint(value)}]"
    return name, value


# Most header lines repeat from call to call (content type, SDK version, the client's key):
# each distinct line is decoded and fingerprinted once. Bounded; a full cache is cleared.
_HEADER_LINES: dict[tuple[bytes, bytes, frozenset[str]], tuple[str, str]] = {}
_HEADER_LINES_MAX = 8192


def sanitize_headers(fields: Iterable[tuple[bytes, bytes]], secret_names: frozenset[str]) -> dict[str, str]:
    """Headers as a lower-cased dict; credential values replaced by their fingerprint."""
    out: dict[str, str] = {}
    lines = _HEADER_LINES
    for raw_name, raw_value in fields:
        key = (raw_name, raw_value, secret_names)
        hit = lines.get(key)
        if hit is None:
            hit = _sanitize_header(raw_name, raw_value, secret_names)
            if len(raw_value) <= 1024:  # long values (cookies) are rarely repeated
                if len(lines) >= _HEADER_LINES_MAX:
                    lines.clear()
                lines[key] = hit
        name, value = hit
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def sanitize_query(path: str) -> str:
    """Mask credential-bearing query parameters (Gemini's ``?key=``, presigned URLs)."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in _SECRET_QUERY_PARAMS for k, _ in pairs):
        return path
    masked = [(k, f"[REDACTED {fingerprint(v)}]" if k.lower() in _SECRET_QUERY_PARAMS else v)
              for k, v in pairs]
    return f"{base}?{urlencode(masked, safe='[]… #')}"


def headers_json(headers: dict[str, str]) -> str:
    return json.dumps(headers, ensure_ascii=False, separators=(",", ":"))
