"""Certificates for the mock LLM server: a private CA and a leaf for 127.0.0.1, ::1 and localhost.

Clients (and mitmproxy's upstream verification) trust the CA file, so TLS is verified for real,
the way it is against api.openai.com. The pair is cached on disk because generating it on every
start would slow the test-suite and make the CA path change under long-running clients.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "mock-ca.pem"
CERT_FILE = "mock-server.pem"
KEY_FILE = "mock-server-key.pem"

_DNS_NAMES = ("localhost",)
_IP_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_LEAF_DAYS = 365
_CA_DAYS = 3650
# Regenerate well before expiry so a cached pair never expires during a run.
_MIN_REMAINING = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class MockCertificates:
    """Paths of the PEM files: the CA to trust, and the server's certificate and private key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def default_cert_dir() -> Path:
    """A per-user directory in the system temp dir, so repeated runs reuse one CA."""
    uid = getattr(os, "getuid", lambda: 0)()
    return Path(tempfile.gettempdir()) / f"llm-proxy-mock-certs-{uid}"


def ensure_certificates(cert_dir: str | Path | None = None) -> MockCertificates:
    """Return valid certificates in `cert_dir`, creating or renewing them when needed.

    A file lock serialises concurrent processes (parallel test workers, the demo) so they never
    see a CA and a leaf from two different generations.
    """
    directory = Path(cert_dir) if cert_dir is not None else default_cert_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    certs = MockCertificates(directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)
    with _locked(directory / ".lock"):
        if not _is_usable(certs):
            _generate(certs)
    return certs


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_usable(certs: MockCertificates) -> bool:
    """True if all files exist, the leaf was signed by the CA and neither expires soon."""
    try:
        ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
        leaf = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
        key = serialization.load_pem_private_key(certs.server_key.read_bytes(), password=None)
        leaf.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    deadline = dt.datetime.now(dt.UTC) + _MIN_REMAINING
    return (
        ca.not_valid_after_utc > deadline
        and leaf.not_valid_after_utc > deadline
        and leaf.public_key() == key.public_key()
    )


def _generate(certs: MockCertificates) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _build_ca(ca_key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = _build_leaf(leaf_key, ca_cert, ca_key)
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(certs.server_key, key_pem, mode=0o600)
    _write_atomic(certs.server_cert, leaf_cert.public_bytes(serialization.Encoding.PEM))
    _write_atomic(certs.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))


def _build_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "llm-proxy-audit"),
            x509.NameAttribute(NameOID.COMMON_NAME, "llm-proxy-audit mock LLM CA"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def _build_leaf(
    key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    # Strict verifiers (Python 3.13+'s VERIFY_X509_STRICT, browsers) want SAN, AKI, EKU present.
    now = dt.datetime.now(dt.UTC)
    san = [x509.DNSName(n) for n in _DNS_NAMES] + [x509.IPAddress(ip) for ip in _IP_ADDRESSES]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file and rename, so a reader never sees half a PEM file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
