"""Evidence packages: a package built from a real MP4 verifies offline (library and
`diaolou-hub verify-evidence`), and every kind of tampering is caught and named."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import zipfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from hub.evidence import keys, package
from hub.evidence.package import Custody, CustodyEntry
from hub.evidence.verify import verify
from tests.test_hub import hub_cmd


def make_mp4(path: Path, frames: int = 12) -> Path:
    """A real, small H.264 MP4 (made with PyAV, as the agent's clips are MP4 files)."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 12)
        for n in range(frames):
            image = np.full((48, 64, 3), (n * 20) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def manifest_for(clip: Path, camera: str = "door") -> bytes:
    """The agent's clip manifest (edge_agent/record/clip.py ClipManifest), as JSON."""
    data = clip.read_bytes()
    manifest = {
        "camera": camera,
        "requested_start": "2026-12-04T02:00:00Z",
        "requested_end": "2026-12-04T02:00:01Z",
        "actual_start": "2026-12-04T02:00:00Z",
        "actual_end": "2026-12-04T02:00:01Z",
        "file": "clip.mp4",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "codec": "h264",
        "width": 64,
        "height": 48,
        "packets": 12,
        "sources": [],
        "gaps": [],
        "site": "lanxi",
        "device": "shop-1",
        "created": "2026-12-04T02:05:00Z",
        "tool": "diaolou-agent test",
    }
    return (json.dumps(manifest, indent=2) + "\n").encode()


def custody_for(clip: Path, manifest: bytes) -> Custody:
    now = package.iso(time.time())
    return Custody(
        clip_id="01JCLIP0000000000000000001",
        camera="lanxi.shop-1.door",
        start="2026-12-04T02:00:00Z",
        end="2026-12-04T02:00:01Z",
        reason="案件 2026-118：失窃的椅子 / case 2026-118",
        requested_by="police1",
        requested_role="police",
        requested=now,
        sha256=hashlib.sha256(clip.read_bytes()).hexdigest(),
        bytes=clip.stat().st_size,
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        entries=[
            CustodyEntry(time=now, actor="police1", role="police", action="requested", detail={}),
            CustodyEntry(time=now, actor="admin", role="admin", action="downloaded", detail={"address": "10.0.0.5"}),
        ],
    )


@pytest.fixture
def evidence(tmp_path: Path) -> tuple[Path, Path]:
    """(package, hub data dir)"""
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    clip = make_mp4(tmp_path / "clip.mp4")
    manifest = manifest_for(clip)
    out = tmp_path / "evidence.zip"
    package.build(out, clip, manifest, custody_for(clip, manifest), keys.load_or_create(data_dir), time.time())
    return out, data_dir


def rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """Copy a package member by member; `change` returns new bytes, the same bytes, or None to drop."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            content = change(name, zin.read(name))
            if content is not None:
                zout.writestr(name, content)
    return dst


def public_key(data_dir: Path) -> str:
    return keys.public_b64(keys.raw_public(keys.load_or_create(data_dir)))


def test_a_package_of_a_real_clip_verifies_offline(evidence: tuple[Path, Path], tmp_path: Path) -> None:
    pkg, data_dir = evidence
    with zipfile.ZipFile(pkg) as zf:
        assert zf.namelist() == ["clip.mp4", "manifest.json", "summary.txt", "custody.json", "signature.json"]
        summary = zf.read("summary.txt").decode()
        assert "请求人" in summary and "Requested by: police1" in summary and "case 2026-118" in summary
        with zf.open("clip.mp4") as fh, av.open(fh) as container:  # still a playable MP4
            assert container.streams.video[0].codec_context.name == "h264"
    result = verify(pkg, public_key(data_dir))
    assert result.ok, result.problems
    key_file = tmp_path / "hub.pub"
    key_file.write_text(keys.public_pem(keys.raw_public(keys.load_or_create(data_dir))))
    for extra in ([], ["--public-key", str(key_file)], ["--public-key", public_key(data_dir)]):
        done = subprocess.run(hub_cmd("verify-evidence", str(pkg), *extra), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "evidence package intact" in done.stdout and "lanxi.shop-1.door" in done.stdout
        assert "1 download(s)" in done.stdout


def _flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]


TAMPERING: list[tuple[str, Callable[[str, bytes], bytes | None], str]] = [
    (
        "a clip byte",
        lambda n, b: _flip_middle_byte(b) if n == "clip.mp4" else b,
        "clip.mp4 was changed",
    ),
    (
        "the manifest",
        lambda n, b: b.replace(b'"width": 64', b'"width": 65') if n == "manifest.json" else b,
        "manifest.json was changed",
    ),
    (
        "the summary",
        lambda n, b: b.replace(b"police1", b"police2") if n == "summary.txt" else b,
        "summary.txt was changed",
    ),
    (
        "the custody",
        lambda n, b: b.replace(b'"admin"', b'"nobody"') if n == "custody.json" else b,
        "custody.json was changed",
    ),
    (
        "the signed hashes",
        lambda n, b: b.replace(b'"bytes": ', b'"bytes": 1', 1) if n == "signature.json" else b,
        "the signature does not match",
    ),
    (
        "the signature",
        lambda n, b: (
            json.dumps({**json.loads(b), "signature": json.loads(b)["signature"][:-4] + "AAA="}).encode()
            if n == "signature.json"
            else b
        ),
        "the signature does not match",
    ),
    ("a dropped member", lambda n, b: None if n == "custody.json" else b, "custody.json is missing"),
]


@pytest.mark.parametrize(("what", "change", "message"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_each_kind_of_tampering_is_caught_and_named(
    evidence: tuple[Path, Path], tmp_path: Path, what: str, change: Callable[[str, bytes], bytes | None], message: str
) -> None:
    pkg, data_dir = evidence
    bad = rewrite(pkg, tmp_path / "bad.zip", change)
    assert bad.read_bytes() != rewrite(pkg, tmp_path / "same.zip", lambda n, b: b).read_bytes()
    result = verify(bad, public_key(data_dir))
    assert not result.ok and any(message in p for p in result.problems), result.problems
    done = subprocess.run(hub_cmd("verify-evidence", str(bad)), capture_output=True, text=True)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "NOT intact" in done.stderr


def test_an_unchanged_copy_passes_and_an_added_member_is_named(evidence: tuple[Path, Path], tmp_path: Path) -> None:
    pkg, _ = evidence
    assert verify(rewrite(pkg, tmp_path / "copy.zip", lambda n, b: b)).ok
    extra = tmp_path / "extra.zip"
    rewrite(pkg, extra, lambda n, b: b)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("note.txt", "added later")
    result = verify(extra)
    assert result.problems == ["note.txt is not part of the signed package"]


def test_a_package_signed_by_another_hub_is_refused_with_the_given_key(
    evidence: tuple[Path, Path], tmp_path: Path
) -> None:
    pkg, _ = evidence
    other = tmp_path / "other-hub"
    other.mkdir()
    result = verify(pkg, public_key(other))
    assert not result.ok and "not by the given public key" in result.problems[0]
    assert verify(pkg).ok  # integrity alone still holds: the key inside the package is its own
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    done = subprocess.run(hub_cmd("verify-evidence", str(garbage)), capture_output=True, text=True)
    assert done.returncode == 1 and "not a readable evidence package" in done.stderr
    done = subprocess.run(hub_cmd("verify-evidence", str(pkg), "--public-key", "short"), capture_output=True, text=True)
    assert done.returncode == 1 and "--public-key" in done.stderr


def test_the_signing_key_is_made_once_kept_private_and_exported(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    first = keys.raw_public(keys.load_or_create(data_dir))
    assert keys.raw_public(keys.load_or_create(data_dir)) == first
    assert os.stat(keys.key_path(data_dir)).st_mode & 0o777 == 0o600
    config = tmp_path / "hub.yaml"
    config.write_text(f"data_dir: {data_dir}\nmqtt:\n  url: mqtt://127.0.0.1:1883\n")
    done = subprocess.run(hub_cmd("evidence", "public-key", "--config", str(config)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == keys.public_b64(first) and keys.key_id(first) in done.stderr
    pem = subprocess.run(
        hub_cmd("evidence", "public-key", "--config", str(config), "--pem"), capture_output=True, text=True
    )
    assert keys.parse_public(pem.stdout) == first
