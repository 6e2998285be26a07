"""Security primitives, in one place: password hashes, random secrets, token digests, CSRF checks.

Everything that hashes, compares or generates a secret is here, so a reviewer reads one module,
and provisioning, the embedded broker, accounts, sessions and API tokens use the same code.

* People's passwords and the embedded broker's password file: Argon2id (pwdlib's defaults, the
  OWASP recommendation), slow on purpose since people choose guessable passwords.
* Mosquitto's password file: `$7$` PBKDF2-HMAC-SHA512, the only format Mosquitto 2 reads. Those
  passwords are generated (192 random bits), which no iteration count strengthens.
* Session ids and API tokens: 256 random bits. Only their SHA-256 is stored: a stolen hub.db
  gives no usable credential, and a plain digest suffices for secrets that are random already.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# Mosquitto 2.0's mosquitto_passwd writes 101 iterations and a 12-byte salt. Iterations slow down
# guessing a weak password from a stolen file; generated passwords are 192 random bits, which no
# iteration count improves, while Mosquitto checks every login on its single thread: at 101, a
# thousand agents reconnecting after an outage cost the broker well under a second.
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12
MOSQUITTO_HASH_BYTES = 64
TOKEN_BYTES = 32


@cache
def _argon2() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    """An Argon2id hash (people's accounts; the embedded broker's `user:hash` lines)."""
    return str(_argon2().hash(password))


def verify_password(password: str, digest: str) -> bool:
    """True when `password` matches an Argon2 `digest`; False for a wrong password or a digest
    that is not one (never raises for what a user can type)."""
    try:
        return bool(_argon2().verify(password, digest))
    except Exception:  # pwdlib raises for a digest it cannot identify: that is a mismatch
        return False


def mosquitto_hash(password: str, *, iterations: int = MOSQUITTO_ITERATIONS, salt: bytes | None = None) -> str:
    """Mosquitto 2.0's `$7$` entry: PBKDF2-HMAC-SHA512 over the UTF-8 password with a random salt,
    salt and derived key in standard base64, as mosquitto_passwd writes them."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(MOSQUITTO_SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, MOSQUITTO_HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_mosquitto_hash(password: str, entry: str) -> bool:
    """Check a password against a Mosquitto hash: `$7$` (2.0, PBKDF2) or `$6$` (1.x, salted SHA-512)."""
    parts = entry.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations, salt, key = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, len(key))
            return hmac.compare_digest(got, key)
        if len(parts) == 4 and parts[1] == "6":
            salt, key = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            return hmac.compare_digest(hashlib.sha512(password.encode("utf-8") + salt).digest(), key)
    except ValueError:  # bad base64 or iteration count: not a hash we can check
        return False
    return False


def generate_password() -> str:
    """192 random bits, URL-safe (no escaping in mqtt:// URLs, YAML or an environment file)."""
    return secrets.token_urlsafe(24)


def new_token(prefix: str) -> str:
    """A bearer secret: `prefix_` + 256 random bits. The prefix says what it is when one leaks
    into a log or a chat (dls_ a browser session, dlt_ an API token, dlm_ a media-channel credential)."""
    return f"{prefix}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_digest(token: str) -> str:
    """What the hub stores of a session id or token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "backslashreplace")).hexdigest()


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; None on either side never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "backslashreplace"), expected.encode("utf-8", "backslashreplace"))
