"""Evidence clips: people ask for them and download signed packages; boxes report and upload.

People (a session or a bearer token): POST /api/v1/clips, GET /api/v1/clips[/{id}],
GET /api/v1/clips/{id}/package, GET /api/v1/evidence/public-key.
Boxes (their device token, `diaolou-hub devices token`): POST .../{id}/report while building,
PUT .../{id}/upload with `Content-Range: bytes START-END/TOTAL` pieces of the MP4 (GET it to learn
where to resume), then PUT .../{id}/manifest. The rules are in hub/services/clips.py.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from hub.api.deps import Conn, actor, allow, client_address, device, signed_in
from hub.evidence import keys
from hub.models import Principal
from hub.services import clips, holds
from hub.services.clips import Clip, ClipList, ClipReport, ClipRequest, DeviceCaller
from hub.services.holds import HoldRelease, ReleaseHold

router = APIRouter(tags=["clips"])
ADMIN = allow("admin")
DEVICE = device()  # the boxes' routes: module level, as ruff's B008 wants for a call not listed in pyproject


class PublicKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(description="32 bytes, base64: what `verify-evidence --public-key` takes.")
    key_id: str = Field(description="First 16 hex digits of the key's SHA-256, as verify-evidence prints it.")
    pem: str = Field(description="The same key as PEM (SubjectPublicKeyInfo).")


class UploadState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    status: str
    received: int = Field(description="Send the next piece from this byte.")
    bytes: int | None


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except clips.ClipRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None


def _call(func: Callable[..., Clip], *args: Any) -> Clip:
    with _refusals():
        return func(*args)


@router.post("/api/v1/clips", response_model=Clip, status_code=202)
def request_clip(body: ClipRequest, request: Request, conn: Conn, principal: Principal = signed_in()) -> Clip:
    """Ask the camera's box for a clip (at most 30 minutes, with a reason). 404 for a camera the
    caller may not see. The box builds it now, or when it is next online."""
    return _call(clips.request, conn, principal, actor(request, principal), body)


@router.get("/api/v1/clips", response_model=ClipList)
def list_clips(conn: Conn, limit: int = Query(100, ge=1, le=500), principal: Principal = signed_in()) -> ClipList:
    """Clips the caller may see, newest first."""
    return clips.list_clips(conn, principal, limit)


@router.get("/api/v1/clips/{clip_id}", response_model=Clip)
def get_clip(clip_id: str, conn: Conn, principal: Principal = signed_in()) -> Clip:
    """Status (queued, building, uploading, ready, failed) and progress of one clip."""
    clip = clips.get(conn, principal, clip_id)
    if clip is None:
        raise HTTPException(404, f"no clip {clip_id[:64]!r}")
    return clip


@router.get("/api/v1/clips/{clip_id}/package", response_class=FileResponse)
def download_package(clip_id: str, request: Request, conn: Conn, principal: Principal = signed_in()) -> FileResponse:
    """The signed evidence package (ZIP) of a ready clip; 409 before. Every download is in the
    clip's chain of custody (inside the package) and in the audit log."""
    data_dir: Path = request.app.state.data_dir
    scratch = clips.clips_dir(data_dir) / ".packages"
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f"{secrets.token_hex(8)}.zip"
    try:
        clip = _call(clips.package_to, conn, data_dir, principal, actor(request, principal), clip_id, out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return FileResponse(
        out,
        media_type="application/zip",
        filename=f"evidence-{clip.id}.zip",
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(out.unlink, missing_ok=True),
    )


@router.get("/api/v1/evidence/public-key", response_model=PublicKey)
def public_key(request: Request, principal: Principal = signed_in()) -> PublicKey:
    """The key that signs evidence packages: give it to whoever verifies them offline."""
    raw = keys.raw_public(keys.load_or_create(request.app.state.data_dir))
    return PublicKey(public_key=keys.public_b64(raw), key_id=keys.key_id(raw), pem=keys.public_pem(raw))


@router.post("/api/v1/clips/{clip_id}/release-hold", response_model=HoldRelease, status_code=202)
def release_hold(
    clip_id: str, body: ReleaseHold, request: Request, conn: Conn, principal: Principal = ADMIN
) -> HoldRelease:
    """Admins only: release the legal hold the clip put on the box's recording, with a reason
    (audited, and in the clip's chain of custody). The box releases it when it is next online;
    the hub keeps the clip. 409 if already released."""
    with _refusals():
        return holds.release(conn, principal, actor(request, principal), clip_id, body)


# --- boxes --------------------------------------------------------------------------------------
@router.post("/api/v1/clips/{clip_id}/report", response_model=Clip)
def report(clip_id: str, body: ClipReport, request: Request, conn: Conn, caller: DeviceCaller = DEVICE) -> Clip:
    """The box is building the clip (progress 0..1), or could not (failed, with the error)."""
    return _call(clips.report, conn, caller, client_address(request), clip_id, body)


@router.get("/api/v1/clips/{clip_id}/upload", response_model=UploadState)
def upload_state(clip_id: str, conn: Conn, caller: DeviceCaller = DEVICE) -> UploadState:
    """Where to resume: the bytes of the MP4 the hub holds."""
    with _refusals():
        row = clips.device_clip(conn, caller, clip_id)
    return UploadState(id=row["id"], status=row["status"], received=row["received"], bytes=row["bytes"])


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"at most {limit} bytes per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"at most {limit} bytes per request")
        chunks.append(chunk)
    return b"".join(chunks)


@router.put("/api/v1/clips/{clip_id}/upload", response_model=Clip)
async def upload(clip_id: str, request: Request, conn: Conn, caller: DeviceCaller = DEVICE) -> Clip:
    """One piece of the MP4: `Content-Range: bytes START-END/TOTAL`, from the byte the hub holds
    (or 0 to start over); 409 names the byte to resume from."""
    body = await _body(request, clips.MAX_CHUNK_BYTES)
    content_range = request.headers.get("content-range")
    data_dir = request.app.state.data_dir
    return await run_in_threadpool(_call, clips.upload_chunk, conn, data_dir, caller, clip_id, content_range, body)


@router.put("/api/v1/clips/{clip_id}/manifest", response_model=Clip)
async def manifest(clip_id: str, request: Request, conn: Conn, caller: DeviceCaller = DEVICE) -> Clip:
    """The clip's manifest (JSON), after the whole MP4: the hub checks size and SHA-256 and keeps
    both (ready), or discards the upload with the reason (422)."""
    body = await _body(request, clips.MAX_MANIFEST_BYTES)
    data_dir, address = request.app.state.data_dir, client_address(request)
    return await run_in_threadpool(_call, clips.store_manifest, conn, data_dir, caller, address, clip_id, body)
