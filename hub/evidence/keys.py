"""The hub's evidence signing key: Ed25519, made on first use, kept in the data directory (0600).

The private key never leaves the hub; its public half is shown on the hub (`diaolou-hub evidence
public-key`, GET /api/v1/evidence/public-key) and written into every package, so a verifier can
check a package alone and, given the key the police IT officer exported once, know it came from
this hub. A key is named by its id: the first 16 hex digits of the SHA-256 of its 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.durable import locked, write_atomic

KEY_FILE = "evidence-signing-key.pem"
PUBLIC_KEY_BYTES = 32


class EvidenceKeyError(ValueError):
    """A key that cannot be read; the message says which and why."""


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_or_create(data_dir: Path, file_name: str = KEY_FILE) -> Ed25519PrivateKey:
    """The hub's signing key, generated and stored (mode 0600) the first time it is needed. A lock
    makes two processes asking at once agree on one key. `file_name`: another key of the hub (the
    allow-list key is kept apart from the evidence key: each can be replaced alone)."""
    path = data_dir / file_name
    with locked(data_dir, f".{file_name}.lock"):
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_atomic(path, pem, mode=0o600)
            return key
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise EvidenceKeyError(f"cannot read the evidence signing key {path}: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise EvidenceKeyError(f"{path} holds no Ed25519 private key")
    return loaded


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def public_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def public_pem(raw: bytes) -> str:
    public = Ed25519PublicKey.from_public_bytes(raw)
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def parse_public(text: str) -> bytes:
    """The 32 raw bytes of a public key given as PEM (what `evidence public-key --pem` prints) or
    as base64 (the one-line form the hub shows)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            loaded = serialization.load_pem_public_key(text.encode("ascii", "replace"))
        except ValueError as exc:
            raise EvidenceKeyError(f"not a PEM public key: {exc}") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise EvidenceKeyError("the PEM public key is not an Ed25519 key")
        return raw_public(loaded)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceKeyError("a public key is PEM or 44 characters of base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise EvidenceKeyError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, this one {len(raw)}")
    return raw


def valid_signature(raw_public_key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
