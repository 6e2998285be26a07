"""Check an evidence package offline: no hub, no config, no network.

`verify(path, public_key)` reads the ZIP, recomputes the SHA-256 of every member, checks them
against the signed list and the signature against the key, and cross-checks the manifest and the
custody record against the clip. Every problem is named (which member changed, or that the
signature does not match), not just "invalid".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub.evidence.keys import key_id, parse_public, valid_signature
from hub.evidence.package import CLIP, CUSTODY, FORMAT, MANIFEST, SIGNATURE, SIGNED_MEMBERS, Custody, signed_part

_CHUNK = 1 << 20
_MAX_TEXT_MEMBER = 16 << 20  # manifest, summary, custody and signature are small; refuse a zip bomb


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    key_id: str | None = None
    key_given: bool = False
    custody: Custody | None = None
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.ok:
            return "evidence package NOT intact:\n" + "\n".join(f"  - {p}" for p in self.problems)
        assert self.custody is not None
        c = self.custody
        downloads = sum(1 for e in c.entries if e.action == "downloaded")
        who = "the given public key" if self.key_given else "the key inside the package (compare it with the hub's)"
        return "\n".join(
            [
                f"evidence package intact: signed by key {self.key_id} ({who})",
                f"  clip {c.clip_id}: camera {c.camera}, {c.start} to {c.end}",
                f"  requested by {c.requested_by} on {c.requested}: {c.reason}",
                f"  clip.mp4 SHA-256 {c.sha256} ({c.bytes} bytes)",
                f"  custody: {len(c.entries)} entries, {downloads} download(s)",
            ]
        )


def _digest(zf: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with zf.open(name) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _small(zf: zipfile.ZipFile, name: str) -> bytes:
    if zf.getinfo(name).file_size > _MAX_TEXT_MEMBER:
        raise ValueError(f"{name} is larger than {_MAX_TEXT_MEMBER} bytes")
    return zf.read(name)


def verify(path: Path, public_key: str | None = None) -> Verification:
    """Check the package at `path`; `public_key` (PEM or base64) is the hub's, if the caller has it.
    Raises EvidenceKeyError for a public key that cannot be read (the caller's mistake, not the
    package's)."""
    expected_key = parse_public(public_key) if public_key is not None else None
    result = Verification(key_given=expected_key is not None)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        result.problems.append(f"{path} is not a readable evidence package (ZIP): {exc}")
        return result
    with zf:
        try:
            _check(zf, result, expected_key)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            result.problems.append(f"the package is damaged: {exc}")
    return result


def _check(zf: zipfile.ZipFile, result: Verification, expected_key: bytes | None) -> None:
    names = zf.namelist()
    if SIGNATURE not in names:
        result.problems.append(f"{SIGNATURE} is missing: the package is not signed")
        return
    try:
        doc = json.loads(_small(zf, SIGNATURE))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("algorithm") != "Ed25519":
            raise ValueError(f"not a {FORMAT} Ed25519 signature")
        raw = base64.b64decode(doc["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        signed: dict[str, Any] = doc["members"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        result.problems.append(f"{SIGNATURE} cannot be read: {exc}")
        return
    result.key_id = key_id(raw)
    if expected_key is not None and raw != expected_key:
        result.problems.append(
            f"the package was signed by key {key_id(raw)}, not by the given public key {key_id(expected_key)}"
        )
    if not valid_signature(raw, signature, signed_part(doc)):
        result.problems.append(
            f"the signature does not match: {SIGNATURE} was changed or not made by key {key_id(raw)}"
        )
    if set(signed) != set(SIGNED_MEMBERS):
        result.problems.append(f"the signed member list is {sorted(signed)}, expected {sorted(SIGNED_MEMBERS)}")
    for extra in sorted(set(names) - {*SIGNED_MEMBERS, SIGNATURE}):
        result.problems.append(f"{extra} is not part of the signed package")
    if len(names) != len(set(names)):
        result.problems.append("a member appears twice in the package")
    digests: dict[str, str] = {}
    for name in SIGNED_MEMBERS:
        if name not in names:
            result.problems.append(f"{name} is missing")
            continue
        digest, size = _digest(zf, name)
        digests[name] = digest
        want = signed.get(name) or {}
        if digest != want.get("sha256") or size != want.get("bytes"):
            result.problems.append(f"{name} was changed: its SHA-256 is {digest}, the signed one {want.get('sha256')}")
    _cross_check(zf, result, digests)


def _cross_check(zf: zipfile.ZipFile, result: Verification, digests: dict[str, str]) -> None:
    """The manifest and the custody record must describe this clip (the hub checked that when it
    stored the upload; a package built from anything else is wrong even if signed)."""
    if CLIP not in digests:
        return
    clip_size = zf.getinfo(CLIP).file_size
    if MANIFEST in digests:
        try:
            manifest = json.loads(_small(zf, MANIFEST))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
            result.manifest = manifest
            if manifest.get("sha256") != digests[CLIP] or manifest.get("bytes") != clip_size:
                result.problems.append(f"{MANIFEST} does not describe {CLIP}: its SHA-256 or size differs")
        except ValueError as exc:
            result.problems.append(f"{MANIFEST} is not valid JSON: {exc}")
    if CUSTODY in digests:
        try:
            custody = Custody.model_validate_json(_small(zf, CUSTODY))
        except ValidationError as exc:
            result.problems.append(f"{CUSTODY} cannot be read: {exc.errors()[0]['msg']}")
            return
        result.custody = custody
        if custody.sha256 != digests[CLIP] or custody.manifest_sha256 != digests.get(MANIFEST, custody.manifest_sha256):
            result.problems.append(f"{CUSTODY} names other hashes than the package's {CLIP} and {MANIFEST}")
