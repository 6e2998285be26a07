"""The evidence package: one ZIP file with the clip, its manifest, a summary for people, the chain
of custody, and the hub's Ed25519 signature over the SHA-256 of each of them.

Members, in this order:

* `clip.mp4`: the clip exactly as the agent cut it (stored, not recompressed).
* `manifest.json`: the agent's clip manifest exactly as uploaded (window, source segments and their
  hashes, the clip's SHA-256 and size).
* `summary.txt`: what a person reads first, in Chinese and English.
* `custody.json`: who asked for the clip, why, when it was built, received and checked, and every
  download until and including the one that made this file.
* `signature.json`: the format, the public key, each member's SHA-256 and size, and the signature
  over those (canonical JSON: sorted keys, no spaces, UTF-8).

Changing any byte of a member changes its hash; changing the list of hashes breaks the signature.
A package is made afresh for each download, so its custody includes that download.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from hub.evidence.keys import key_id, public_b64, raw_public

FORMAT = "diaolou-evidence/1"
CLIP, MANIFEST, SUMMARY, CUSTODY, SIGNATURE = (
    "clip.mp4",
    "manifest.json",
    "summary.txt",
    "custody.json",
    "signature.json",
)
SIGNED_MEMBERS = (CLIP, MANIFEST, SUMMARY, CUSTODY)
_CHUNK = 1 << 20


class CustodyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time: str = Field(description="ISO 8601, UTC.")
    actor: str = Field(description="A user name, `cli`, or `device:<site>/<device>`.")
    role: str | None
    action: str = Field(description="requested, building, uploaded, verified, ready, failed, downloaded.")
    detail: dict[str, Any] = Field(default_factory=dict)


class Custody(BaseModel):
    """The chain of custody of one clip, as the hub recorded it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = FORMAT
    clip_id: str
    camera: str = Field(description="site.device.camera")
    start: str
    end: str
    reason: str
    requested_by: str
    requested_role: str | None
    requested: str
    sha256: str = Field(description="SHA-256 of clip.mp4, checked by the hub against the manifest.")
    bytes: int
    manifest_sha256: str
    entries: list[CustodyEntry]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_part(signature_doc: dict[str, Any]) -> bytes:
    """The bytes the signature covers: everything in signature.json but the signature itself."""
    return canonical({k: v for k, v in signature_doc.items() if k != "signature"})


def summary_text(manifest: dict[str, Any], custody: Custody) -> str:
    """The human-readable page, Chinese first, then English; plain text so any viewer shows it."""
    downloads = [e for e in custody.entries if e.action == "downloaded"]
    gaps = len(manifest.get("gaps") or [])
    lines = [
        "刁楼 Diaolou 证据包 / evidence package",
        "",
        f"摄像头 / Camera: {custody.camera}",
        f"请求时段 / Requested window (UTC): {custody.start} — {custody.end}",
        f"实际时段 / Actual window (UTC): {manifest.get('actual_start')} — {manifest.get('actual_end')}",
        f"请求人 / Requested by: {custody.requested_by} ({custody.requested_role or '-'}), {custody.requested}",
        f"事由 / Reason: {custody.reason}",
        f"生成时间 / Built on the box: {manifest.get('created') or '-'}",
        f"视频 / Video: {manifest.get('codec')} {manifest.get('width')}x{manifest.get('height')}, "
        f"{custody.bytes} 字节 / bytes",
        f"clip.mp4 SHA-256: {custody.sha256}",
        f"manifest.json SHA-256: {custody.manifest_sha256}",
        f"录像缺口 / Gaps in the recording: {gaps}",
        f"下载次数（含本次）/ Downloads (this one included): {len(downloads)}",
        "",
        "核验方法：diaolou-hub verify-evidence 本文件 --public-key 平台公钥",
        "To check: diaolou-hub verify-evidence THIS_FILE --public-key HUB_PUBLIC_KEY",
        "",
        "保管链 / Chain of custody:",
    ]
    for entry in custody.entries:
        lines.append(f"  {entry.time}  {entry.action:11} {entry.actor} ({entry.role or '-'})")
    return "\n".join(lines) + "\n"


def _member_hashes(members: Iterable[tuple[str, bytes | Path]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, content in members:
        if isinstance(content, Path):
            out[name] = {"sha256": sha256_file(content), "bytes": content.stat().st_size}
        else:
            out[name] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    return out


def build(out: Path, clip: Path, manifest: bytes, custody: Custody, key: Ed25519PrivateKey, now: float) -> None:
    """Write the package to `out` (the caller picks a temporary path and renames or streams it)."""
    summary = summary_text(json.loads(manifest), custody).encode("utf-8")
    custody_bytes = (custody.model_dump_json(indent=2) + "\n").encode("utf-8")
    members: list[tuple[str, bytes | Path]] = [
        (CLIP, clip),
        (MANIFEST, manifest),
        (SUMMARY, summary),
        (CUSTODY, custody_bytes),
    ]
    raw = raw_public(key)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "algorithm": "Ed25519",
        "public_key": public_b64(raw),
        "key_id": key_id(raw),
        "signed": iso(now),
        "clip_id": custody.clip_id,
        "members": _member_hashes(members),
    }
    doc["signature"] = base64.b64encode(key.sign(signed_part(doc))).decode("ascii")
    with zipfile.ZipFile(out, "w") as zf:
        zf.write(clip, CLIP, compress_type=zipfile.ZIP_STORED)  # H.264 does not compress further
        for name, content in members[1:]:
            assert isinstance(content, bytes)
            zf.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(SIGNATURE, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", compress_type=zipfile.ZIP_DEFLATED)
