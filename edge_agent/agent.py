"""The agent process: one capture thread per camera, the index flusher, retention, status.

`Agent.run()` blocks until `stop()` (SIGTERM/SIGINT in the CLI), then closes every open segment
so that a clean shutdown loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract import Command, ContractError, Event, Heartbeat, Reply, decode, device_prefix, topic
from contract.holds import RELEASE_HOLD_COMMAND
from contract.media import MEDIA_COMMAND
from contract.timeline import TIMELINE_COMMAND
from edge_agent.capture.camera import CameraStatus, CameraWorker
from edge_agent.capture.sources import StreamSpec, resolve_sources
from edge_agent.clock import WallClock
from edge_agent.comms import AgentLock, AgentLockHeld, HeartbeatBuilder, MqttLink, Outbox, storage_commands
from edge_agent.comms.clip_job import ClipJobs
from edge_agent.comms.shipping import EventShipper
from edge_agent.comms.writer import OutboxWriter
from edge_agent.config.schema import AgentConfig, CameraConfig
from edge_agent.events.ids import new_event_id
from edge_agent.events.store import EventStore, Shipper
from edge_agent.gate.loop import GateDoors
from edge_agent.gate.service import Gate
from edge_agent.gate.store import list_version, open_db
from edge_agent.gate.sync import ListReceiver, ListRejected
from edge_agent.media.channel import MediaChannel
from edge_agent.media.sources import media_sources
from edge_agent.memory import limit_malloc_arenas
from edge_agent.record.index import INDEX_NAME, SegmentIndex
from edge_agent.record.recorder import SegmentRecorder
from edge_agent.record.repair import RepairReport, repair
from edge_agent.record.retention import Retention
from edge_agent.record.segment import Segment

if TYPE_CHECKING:
    from edge_agent.analysis import ActivityLedger, AnalysisWorker

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


@dataclass
class RingBuffer:
    """The storage side of an agent, usable without running cameras (CLI: clip, timeline, hold)."""

    root: Path
    index: SegmentIndex
    events: EventStore

    @classmethod
    def open(cls, config: AgentConfig, create: bool = True, shipper: Shipper | None = None) -> RingBuffer:
        """Open the ring buffer; with create=False (read-only commands) a missing one is an error
        rather than a new empty directory owned by whoever ran the command. `shipper`: where the
        event store hands each saved event (the agent's outbox); None keeps them on the box."""
        root = config.storage.root
        if not create and not (root / INDEX_NAME).exists():
            raise FileNotFoundError(f"no ring buffer at {root} (has the agent recorded there yet?)")
        return cls(root=root, index=SegmentIndex(root), events=EventStore(root, shipper))

    def close(self) -> None:
        self.index.close()
        self.events.close()


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        limit_malloc_arenas()  # before any camera thread starts
        self.config = config
        # The way out first: the event store is made with its shipper, which writes to the outbox.
        self.outbox = Outbox.at(config.storage.root, config.mqtt.outbox_max_mb)
        self.gate: Gate | None = Gate(config, create=True) if config.doors else None
        self.lists: ListReceiver | None = None
        self.heartbeats = HeartbeatBuilder(config, self.outbox, self._list_version if self.gate else None)
        self.link: MqttLink | None = None
        if config.mqtt.enabled:
            self.link = MqttLink.for_agent(config, self.outbox, heartbeat=self._heartbeat)
        self.writer = OutboxWriter(
            self.outbox, config.site, config.device, wake=self.link.notify if self.link is not None else None
        )
        shipper = EventShipper(self.writer, config.storage.root) if self.link is not None else None
        self.storage = RingBuffer.open(config, shipper=shipper)
        self.root = self.storage.root
        self.index = self.storage.index
        self.events = self.storage.events
        self.stop_event = threading.Event()
        self.clip_jobs = ClipJobs(config, self.index, self.writer.reply, self.stop_event)
        self.media = MediaChannel(
            config.hub, media_sources(config, self.root, self.index), self.writer.reply, self.stop_event
        )
        self.repair_report: RepairReport | None = None
        self.clock = WallClock()
        self.retention = Retention(
            self.root,
            self.index,
            retain_days={name: cam.record.retain_days for name, cam in config.cameras.items()},
            min_free_gb=config.storage.min_free_gb,
            min_free_percent=config.storage.min_free_percent,
            default_days=config.defaults.record.retain_days,
            events=self.events,
            events_wait_for_hub=config.mqtt.enabled,
        )
        self.workers: list[CameraWorker] = []
        self.analysis: dict[str, AnalysisWorker] = {}
        self.ledgers: dict[str, ActivityLedger] = {}  # per camera: fills the segments' motion columns
        self.doors: GateDoors | None = None
        if self.gate is not None:
            self.doors = GateDoors(config, self.gate.engine, self.writer.event, self.writer.snapshot)
        if self.gate is not None and config.hub.list_key is not None and self.link is not None:
            # Its own connection: lists are written from the MQTT thread while doors decide.
            self.lists = ListReceiver(
                open_db(self.gate.path), config.site, config.device, config.hub.list_key, self._list_rejected
            )

    def start(self) -> None:
        # One agent per ring buffer; `test-alarm` checks this lock to use the running agent's session.
        self.lock = AgentLock(self.root)
        try:
            self.lock.acquire(timeout=60)
        except AgentLockHeld as exc:
            raise RuntimeError(f"another diaolou-agent is running on {self.root}: {exc}") from None
        self._start_link()
        self.repair_report = repair(self.root, self.index)
        # Timestamps never go behind what is already recorded (clock unset at boot, see clock.py).
        self.clock = WallClock(floor=self.index.newest_end())
        for name, camera in self.config.cameras.items():
            try:
                sources = resolve_sources(camera)
            except (ValueError, OSError) as exc:
                log.error("camera %s: cannot build its stream URL: %s", name, exc)
                continue
            recorder = None
            if camera.record.enabled:
                recorder = SegmentRecorder(
                    self.root,
                    name,
                    camera.record,
                    self.index,
                    make_room=self.retention.make_room,
                    on_segment=self._on_segment,
                )
            worker = CameraWorker(name, camera, sources, recorder, self.clock, self.events, self.stop_event)
            self.workers.append(worker)
            worker.start()
            if camera.detect.enabled:
                self._start_analysis(name, camera, sources.detect or sources.main)
        if self.doors is not None:
            for door, watch in self.doors.cameras.items():
                if watch.camera not in self.analysis:  # its error is logged above
                    log.error(
                        "door %s: camera %s is not analysed: the door's events go without a picture and "
                        "tailgating is not counted until it is",
                        door,
                        watch.camera,
                    )
            self.doors.start()
        self._housekeeper = threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True)
        self._housekeeper.start()
        log.info("agent %s/%s started with %d cameras", self.config.site, self.config.device, len(self.workers))

    def _start_link(self) -> None:
        if self.link is None:
            log.info("MQTT link disabled (mqtt.enabled: false): events stay on this box")
            return
        self.link.subscribe(f"{device_prefix(self.config.site, self.config.device)}/cmd/+", self._on_command)
        if self.lists is not None:
            self.link.subscribe(topic(self.config.site, self.config.device, "acl"), self._on_list)
        self.link.start()
        pending = self.events.queue_pending()
        if pending:
            log.info("queued %d stored events that had not reached the outbox", pending)

    def _on_command(self, topic_name: str, payload: bytes) -> None:
        """Commands from the hub: answered on .../reply with the command's id."""
        try:
            command = decode(Command, payload)
        except ContractError as exc:
            log.warning("rejected command on %s: %s", topic_name, exc)
            return
        name = topic_name.rsplit("/", 1)[-1]
        now = self.clock.now()
        if command.expires is not None and now > command.expires:
            reply = Reply(id=command.id, ok=False, time=now, error="command expired")
        elif name == "ping":
            reply = Reply(id=command.id, ok=True, time=now, result={"device": self.config.device})
        elif name == "status":
            reply = Reply(id=command.id, ok=True, time=now, result={"cameras": [s.as_dict() for s in self.statuses()]})
        elif name == "clip":
            self.clip_jobs.handle(command)  # in a thread of its own; it replies when the hub holds the clip
            return
        elif name == TIMELINE_COMMAND:
            reply = storage_commands.answer(self.index, list(self.config.cameras), command, now)
        elif name == RELEASE_HOLD_COMMAND:
            reply = storage_commands.release_hold(self.index, command, now)
        elif name == MEDIA_COMMAND:
            self.media.handle(command)  # in a thread of its own; it replies once it has dialled the hub
            return
        else:
            reply = Reply(id=command.id, ok=False, time=now, error=f"unknown command {name!r}")
        self.writer.reply(reply)

    def _on_list(self, topic_name: str, payload: bytes) -> None:
        if self.lists is not None:
            self.lists.receive(payload)

    def _list_version(self) -> int:
        if self.lists is not None:
            return list_version(self.lists.db)
        return list_version(self.gate.db) if self.gate is not None else 0

    def _list_rejected(self, rejection: ListRejected) -> None:
        """A list that failed its checks is an alarm at the hub, not only a line in this box's log."""
        now = self.clock.now()
        detail = {"reason": rejection.reason, "message": str(rejection)[:500], "version": rejection.version}
        event = Event(id=new_event_id(now), kind="access_list_rejected", phase="instant", time=now, detail=detail)
        self.writer.event(event)

    def _start_analysis(self, name: str, camera: CameraConfig, spec: StreamSpec) -> None:
        # Imported here: a record-only agent never loads onnxruntime or OpenCV (~40 MB resident).
        from edge_agent.analysis import ActivityLedger, AnalysisWorker
        from edge_agent.detectors.loader import load_detector
        from edge_agent.detectors.select import resolve_model
        from edge_agent.pipeline import CameraAnalyzer
        from models.registry import ModelError

        try:
            model = resolve_model(camera.detect.model, self.config.models_dir)
            # One model session per process, shared by every camera that uses it.
            detector = load_detector(model, self.config.models_dir, camera.detect.threshold, threads=1, serial=True)
        except (ModelError, ValueError, OSError) as exc:
            log.error("camera %s: detection disabled: %s", name, exc)
            return
        analyzer = CameraAnalyzer(name, camera.detect, detector, self.config.timezone)
        ledger = self.ledgers[name] = ActivityLedger()
        watchers = self.doors.watchers(name) if self.doors is not None else []
        worker = AnalysisWorker(
            name, camera, spec, analyzer, self.clock, self.events, self.root, ledger, self.stop_event, watchers
        )
        self.analysis[name] = worker
        worker.start()
        log.info("camera %s: analysing %s with %s", name, spec.display, model)

    def _on_segment(self, segment: Segment) -> None:
        self.clock.raise_floor(segment.end)
        ledger = self.ledgers.get(segment.camera)
        activity = ledger.summary(segment.start, segment.end) if ledger else None
        if activity is not None:
            self.index.set_activity(segment.path, motion=round(activity[0], 3), persons=activity[1])
        if self.config.storage.index_flush_seconds == 0:
            self.index.flush()

    def _housekeeping(self) -> None:
        flush_every = self.config.storage.index_flush_seconds or 5.0
        retention_every = self.config.storage.retention_interval_seconds
        next_retention = 0.0
        elapsed = 0.0
        while not self.stop_event.wait(min(flush_every, retention_every)):
            elapsed += min(flush_every, retention_every)
            try:
                self.index.flush()
                if elapsed >= next_retention:
                    self.retention.enforce(self.clock.now())
                    next_retention = elapsed + retention_every
                self.write_status()
            except Exception:
                log.exception("housekeeping failed; retrying")

    def _heartbeat(self) -> Heartbeat:
        # What the ring buffer still holds per camera goes with it: the hub refuses a clip
        # of a window the box no longer has instead of sending a command bound to fail.
        return self.heartbeats.build(self.statuses(), self.index.spans(self.config.cameras))

    def statuses(self) -> list[CameraStatus]:
        return [w.status for w in self.workers]

    def write_status(self) -> None:
        data: dict[str, Any] = {
            "site": self.config.site,
            "device": self.config.device,
            "time": self.clock.now(),
            "cameras": [
                {
                    **s.as_dict(),
                    "analysis": asdict(self.analysis[s.camera].status) if s.camera in self.analysis else None,
                }
                for s in self.statuses()
            ],
            "retention": {
                "aged_out": self.retention.total.aged_out,
                "evicted_for_space": self.retention.total.evicted_for_space,
                "floor_unmet": self.retention.total.floor_unmet,
                "snapshot_days": self.retention.total.snapshot_days,
                "events_pruned": self.retention.total.events_pruned,
            },
            "index_pending": self.index.pending,
            "link": None
            if self.link is None
            else {
                **asdict(self.link.stats()),
                "outbox_depth": self.outbox.depth,
                "outbox_dropped": self.outbox.dropped,
            },
        }
        path = self.root / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def stop(self) -> None:
        self.stop_event.set()

    def wait(self) -> None:
        self.stop_event.wait()

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop capture, close open segments, flush the index."""
        self.stop_event.set()
        for worker in [*self.workers, *self.analysis.values()]:
            worker.join(timeout)
            if worker.is_alive():
                log.error("%s did not stop within %.0f s", worker.name, timeout)
        self.clip_jobs.join()
        self.media.join()
        if self.doors is not None:
            self.doors.stop()
        self.index.flush()
        # After the workers: their last events (camera stopped, events ended) are queued first.
        if self.link is not None:
            self.link.stop()
        try:
            self.write_status()
        except OSError as exc:
            log.warning("could not write status: %s", exc)
        self.outbox.close()
        self.storage.close()
        if self.lists is not None:
            self.lists.db.close()
        if self.gate is not None:
            self.gate.close()
        self.lock.release()
        log.info("agent stopped")
