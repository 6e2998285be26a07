"""Evidence clips the hub asks for: the `clip` command (docs/evidence.md, "For the box").

Each request runs in a thread of its own (the MQTT thread only starts it): it puts the window on
legal hold, cuts the clip out of the ring buffer (`export_clip`, one build at a time), reports
progress to the hub, uploads the MP4 in `Content-Range` pieces (asking the hub where to resume
after a broken connection) and then the manifest, and replies on .../reply: `ok` once the hub
holds the clip, or `ok: false` with the reason when it gives up (no hub configured, camera
unknown, no recording in the window, the hub refused the upload, the hub unreachable after
`attempts` tries without progress).

A job's files live in <storage.root>/.clips/<command id>/ (a dot name is never a camera's
directory): clip.mp4, its manifest and, once the job is over, reply.json. The hub sends the
command again after every reconnect until it gets a reply, so the command id is the job's key: a
command whose job is running is ignored, one whose clip is built is uploaded without a second
build, one that is over is answered again with the stored reply.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract import Command, Reply
from contract.holds import clip_hold_reason
from edge_agent.comms.hub_auth import HubNotConfigured, hub_credentials
from edge_agent.config.schema import AgentConfig
from edge_agent.record.clip import ClipError, export_clip
from edge_agent.record.index import SegmentIndex

log = logging.getLogger(__name__)

JOBS_DIR = ".clips"
PIECE_BYTES = 4 << 20  # one PUT: small enough to resend cheaply over a poor uplink
ATTEMPTS = 6  # tries in a row without progress before the job gives up
RETRY_SECONDS = (2.0, 5.0, 15.0, 30.0, 60.0)
TIMEOUT_SECONDS = 60.0
MAX_ERROR = 1900  # a Reply's error holds at most 2000 characters
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CAMERA = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_BROKEN = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError)


class GiveUp(Exception):
    """The job cannot finish; the message is the reply's error (and the clip's, on the hub)."""


class Stopped(Exception):
    """The agent is stopping: no reply; the hub sends the command again after the reconnect."""


class HubRefused(Exception):
    """The hub answered with an HTTP error; `detail` is its reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class ClipArgs:
    clip: str
    camera: str
    start: float
    end: float
    upload: str

    @classmethod
    def parse(cls, command: Command) -> ClipArgs:
        a = command.args
        clip, camera, upload = a.get("clip", command.id), a.get("camera"), a.get("upload")
        start, end = a.get("start"), a.get("end")
        if clip != command.id:
            raise GiveUp(f"bad clip command: clip id {clip!r} is not the command's id")
        if not isinstance(camera, str) or not _CAMERA.match(camera):
            raise GiveUp(f"bad clip command: camera {camera!r}")
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (start, end)):
            raise GiveUp("bad clip command: start and end must be epoch seconds")
        if not isinstance(upload, str) or not upload.startswith("/api/") or ".." in upload or "?" in upload:
            raise GiveUp(f"bad clip command: upload path {upload!r}")
        assert isinstance(start, int | float) and isinstance(end, int | float)
        return cls(command.id, camera, float(start), float(end), upload.rstrip("/"))


class HubClient:
    """The hub's API for this box, over urllib with the device token."""

    def __init__(self, base_url: str, token: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.base_url, self.token, self.timeout = base_url.rstrip("/"), token, timeout

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read(4096).decode("utf-8", "replace")
            try:
                detail = json.loads(text).get("detail", text)
            except (ValueError, AttributeError):
                detail = text
            raise HubRefused(exc.code, str(detail).strip() or exc.reason) from None
        return json.loads(raw) if raw else {}

    def send_json(self, method: str, path: str, data: object) -> Any:
        return self.call(method, path, json.dumps(data).encode(), {"Content-Type": "application/json"})


class ClipJobs:
    """The `clip` commands of one agent. `reply` sends a Reply (the agent's OutboxWriter.reply)."""

    def __init__(
        self,
        config: AgentConfig,
        index: SegmentIndex,
        reply: Callable[[Reply], object],
        stop: threading.Event,
        piece_bytes: int = PIECE_BYTES,
        attempts: int = ATTEMPTS,
        retry_seconds: tuple[float, ...] = RETRY_SECONDS,
    ) -> None:
        self.config, self.index, self.reply, self.stop = config, index, reply, stop
        self.root = config.storage.root / JOBS_DIR
        self.piece_bytes, self.attempts, self.retry_seconds = piece_bytes, attempts, retry_seconds
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()  # one export at a time: the box also records
        self._running: dict[str, threading.Thread] = {}

    # --- the MQTT thread's side -----------------------------------------------------------------
    def handle(self, command: Command) -> None:
        """Start the job of `command` unless it runs already; a finished one is answered again."""
        if not _SAFE_ID.match(command.id):
            self._send(Reply(id=command.id, ok=False, time=time.time(), error="bad clip command: unusable id"))
            return
        with self._lock:
            if command.id in self._running:
                log.info("clip %s: sent again while it is being made; carrying on", command.id)
                return
            stored = self._stored_reply(command.id)
            if stored is None:
                thread = threading.Thread(target=self._run, args=(command,), name=f"clip-{command.id}", daemon=True)
                self._running[command.id] = thread
                thread.start()
                return
        log.info("clip %s: finished before; replying again", command.id)
        self._send(stored)

    def join(self, timeout: float = 5.0) -> None:
        """After `stop` is set: wait a little for running jobs (they stop between pieces)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            running = list(self._running.values())
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- a job --------------------------------------------------------------------------------
    def _run(self, command: Command) -> None:
        try:
            try:
                args = ClipArgs.parse(command)
                result = self._work(args)
                reply = Reply(id=command.id, ok=True, time=time.time(), result=result)
            except GiveUp as exc:
                reply = Reply(id=command.id, ok=False, time=time.time(), error=str(exc)[:MAX_ERROR])
            except Stopped:
                log.info("clip %s: interrupted by the agent stopping; resumes when the hub sends it again", command.id)
                return
            except Exception as exc:
                log.exception("clip %s failed", command.id)
                error = f"the box could not make the clip: {type(exc).__name__}: {exc}"
                reply = Reply(id=command.id, ok=False, time=time.time(), error=error[:MAX_ERROR])
            if not reply.ok:
                log.warning("clip %s: %s", command.id, reply.error)
            directory = self.root / command.id
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "reply.json").write_text(reply.model_dump_json(), encoding="utf-8")
            (directory / "clip.mp4").unlink(missing_ok=True)  # the hub has it, or never will: segments are held
            self._send(reply)
        finally:
            with self._lock:
                self._running.pop(command.id, None)

    def _work(self, args: ClipArgs) -> dict[str, Any]:
        client = self._client()
        if args.camera not in self.config.cameras and args.camera not in self.index.cameras():
            self._report_failed(client, args, f"camera {args.camera!r} is not on this box")
        directory = self.root / args.clip
        directory.mkdir(parents=True, exist_ok=True)
        mp4 = directory / "clip.mp4"
        self._report(client, args, {"status": "building", "progress": 0.0})
        hold = self._hold(args)
        manifest = self._built(mp4)
        if manifest is None:
            with self._build_lock:
                try:
                    export_clip(
                        self.config.storage.root,
                        self.index,
                        args.camera,
                        args.start,
                        args.end,
                        mp4,
                        site=self.config.site,
                        device=self.config.device,
                    )
                except ClipError as exc:
                    self.index.release_hold(hold)  # nothing recorded to keep
                    self._report_failed(client, args, str(exc))
            manifest = self._built(mp4)
            if manifest is None:
                raise GiveUp("the clip was built but its manifest cannot be read")
            log.info("clip %s: built, %d bytes; uploading", args.clip, manifest["bytes"])
            self._report(client, args, {"status": "building", "progress": 1.0})
        self._upload(client, args, mp4)
        log.info("clip %s: the hub holds it", args.clip)
        return {"clip": args.clip, "bytes": manifest["bytes"], "sha256": manifest["sha256"], "hold": hold}

    def _client(self) -> HubClient:
        try:
            url, token = hub_credentials(self.config.hub)
        except HubNotConfigured as exc:
            raise GiveUp(str(exc)) from None
        return HubClient(url, token)

    def _hold(self, args: ClipArgs) -> int:
        """The window's legal hold: one per clip, however often the command comes."""
        reason = clip_hold_reason(args.clip)
        for hold in self.index.holds(args.camera):
            if hold.reason == reason:
                return hold.id
        return self.index.add_hold(args.camera, args.start, args.end, reason).id

    @staticmethod
    def _built(mp4: Path) -> dict[str, Any] | None:
        """The manifest of a clip built before (by an earlier run of this job), if whole."""
        try:
            manifest: dict[str, Any] = json.loads(mp4.with_name(mp4.name + ".manifest.json").read_text("utf-8"))
            return manifest if manifest.get("bytes") == mp4.stat().st_size else None
        except (OSError, ValueError):
            return None

    def _report(self, client: HubClient, args: ClipArgs, body: dict[str, Any]) -> None:
        """Tell the hub how far the job is; best effort (the upload and the reply say it anyway)."""
        try:
            client.send_json("POST", f"{args.upload}/report", body)
        except (HubRefused, *_BROKEN) as exc:
            log.warning("clip %s: could not report %s to the hub: %s", args.clip, body["status"], exc)

    def _report_failed(self, client: HubClient, args: ClipArgs, error: str) -> None:
        self._report(client, args, {"status": "failed", "error": error[:MAX_ERROR]})
        raise GiveUp(error)

    # --- the upload ---------------------------------------------------------------------------
    def _upload(self, client: HubClient, args: ClipArgs, mp4: Path) -> None:
        """Send the MP4 from where the hub's copy ends, then the manifest; resume after a break."""
        manifest = mp4.with_name(mp4.name + ".manifest.json").read_bytes()
        size = mp4.stat().st_size
        failures, problem = 0, ""
        while True:
            progressed = False
            try:
                offset = self._resume_at(client, args, size)
                with mp4.open("rb") as fh:
                    while offset < size:
                        if self.stop.is_set():
                            raise Stopped
                        fh.seek(offset)
                        piece = fh.read(min(self.piece_bytes, size - offset))
                        headers = {
                            "Content-Range": f"bytes {offset}-{offset + len(piece) - 1}/{size}",
                            "Content-Type": "application/octet-stream",
                        }
                        answer = client.call("PUT", f"{args.upload}/upload", piece, headers)
                        offset = int(answer.get("received", offset + len(piece)))
                        progressed = True
                client.call("PUT", f"{args.upload}/manifest", manifest, {"Content-Type": "application/json"})
                return
            except HubRefused as exc:
                if exc.status == 409 and "ready already" in exc.detail:
                    return  # an earlier run of this job finished the upload
                if exc.status == 409 and "failed already" in exc.detail:
                    raise GiveUp(f"the hub marked the clip failed already: {exc.detail}") from None
                if exc.status not in _TRANSIENT_STATUS and exc.status not in (409, 422):
                    raise GiveUp(f"the hub refused the upload ({exc.status}): {exc.detail}") from None
                if exc.status == 422 and "discarded" not in exc.detail:
                    raise GiveUp(f"the hub refused the clip's manifest: {exc.detail}") from None
                problem = f"the hub answered {exc.status}: {exc.detail}"  # 409/422: resume or start over
            except _BROKEN as exc:
                problem = f"{type(exc).__name__}: {exc}"
            failures = 1 if progressed else failures + 1
            if failures >= self.attempts:
                raise GiveUp(f"could not upload the clip to the hub after {failures} tries: {problem}")
            delay = self.retry_seconds[min(failures, len(self.retry_seconds)) - 1] if self.retry_seconds else 0.0
            log.warning("clip %s: upload broke off (%s); trying again in %.0f s", args.clip, problem, delay)
            if self.stop.wait(delay):
                raise Stopped

    def _resume_at(self, client: HubClient, args: ClipArgs, size: int) -> int:
        state = client.call("GET", f"{args.upload}/upload")
        received, total = state.get("received"), state.get("bytes")
        if isinstance(received, int) and total == size and 0 <= received <= size:
            return received
        return 0

    # --- replies ------------------------------------------------------------------------------
    def _stored_reply(self, clip_id: str) -> Reply | None:
        path = self.root / clip_id / "reply.json"
        try:
            return Reply.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            return None

    def _send(self, reply: Reply) -> None:
        try:
            self.reply(reply.model_copy(update={"time": time.time()}))
        except Exception:
            log.exception("clip %s: could not queue the reply", reply.id)
