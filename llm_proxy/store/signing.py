"""The Ed25519 key that signs integrity-chain entries.

Generated on first use and stored owner-only (0600, in a 0700 folder): ``STORE/chain/signing.key``
by default, or the path in ``LLM_AUDIT_SIGNING_KEY`` (config ``signing_key_path``), so that the
key can live where the account running queries cannot read it. The public half is recorded in the
chain's first entry and can be exported (``llm-audit verify --export-public-key FILE``); an
auditor who keeps that export can later verify with ``--public-key FILE`` and so detect a chain
rewritten wholesale under a new key.

A missing key for an existing chain is an error, never a silent regeneration: a new key would
make every later entry unverifiable against the old one.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from llm_proxy.errors import StoreError
from llm_proxy.store.layout import FILE_MODE, make_dirs

__all__ = [
    "KEY_ENV",
    "CHAIN_DIR",
    "key_path",
    "load_private_key",
    "create_private_key",
    "public_raw",
    "public_pem",
    "read_public_key",
    "signature_ok",
    "b64",
]

KEY_ENV = "LLM_AUDIT_SIGNING_KEY"
CHAIN_DIR = "chain"

_cache: dict[Path, tuple[int, Ed25519PrivateKey]] = {}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_path(store: Path) -> Path:
    """``LLM_AUDIT_SIGNING_KEY`` if set, else ``STORE/chain/signing.key``."""
    configured = os.environ.get(KEY_ENV)
    return Path(configured).expanduser() if configured else Path(store) / CHAIN_DIR / "signing.key"


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load (cached by mtime: a publish every few seconds must not re-parse PEM)."""
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise StoreError(
            f"the integrity chain exists but its signing key {path} is missing: restore it from "
            f"backup or point {KEY_ENV} (config signing_key_path) at it"
        ) from None
    cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, PermissionError) as exc:
        raise StoreError(f"cannot use signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise StoreError(f"signing key {path} is not an Ed25519 key")
    _cache[path] = (mtime, key)
    return key


def create_private_key(path: Path) -> Ed25519PrivateKey:
    """Generate a key and write it owner-only; an existing key file is reused, not replaced."""
    if path.exists():
        return load_private_key(path)
    make_dirs(path.parent)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    return key


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def public_pem(raw: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_public_key(path: Path) -> bytes:
    """Raw public key from a PEM file (as exported) or a file holding its base64."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        if b"BEGIN" in data:
            pub = serialization.load_pem_public_key(data)
            if not isinstance(pub, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        raw = base64.b64decode(data.strip(), validate=True)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return raw
    except ValueError as exc:
        raise StoreError(f"{path} is not an Ed25519 public key ({exc}): use the file written "
                         "by `llm-audit verify --export-public-key`") from None


def signature_ok(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
