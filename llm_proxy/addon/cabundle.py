"""The CA bundle handed to clients: the system's trusted CAs plus the mitmproxy CA.

``SSL_CERT_FILE`` replaces a client's whole trust store, so pointing it at the bare mitmproxy
CA would break every other HTTPS call the application makes (and a corporate CA in the system
store must keep working).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

__all__ = ["BUNDLE_NAME", "write_ca_bundle"]

BUNDLE_NAME = "llm-audit-ca-bundle.pem"


def _ca_source() -> str | None:
    """The system trust store to extend (a corporate CA there must keep working)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    try:
        import certifi

        return certifi.where()
    except ImportError:
        return None


def write_ca_bundle(confdir: str) -> Path | None:
    """System CAs + the mitmproxy CA, for ``SSL_CERT_FILE``: pointing clients at the bare
    mitmproxy CA would break every other HTTPS call they make."""
    conf = Path(os.path.expanduser(confdir))
    mitm_ca = conf / "mitmproxy-ca-cert.pem"
    if not mitm_ca.is_file():
        return None
    bundle = conf / BUNDLE_NAME
    parts = []
    if source := _ca_source():
        parts.append(Path(source).read_text())
    parts.append(mitm_ca.read_text())
    tmp = bundle.with_suffix(".tmp")
    tmp.write_text("\n".join(p.rstrip("\n") for p in parts) + "\n")
    os.replace(tmp, bundle)
    return bundle
