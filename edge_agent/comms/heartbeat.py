"""Heartbeats: what the hub shows about a box between events (cameras, disk, CPU, temperature, outbox).

Everything here is read from /proc and /sys or the agent's own counters, so building one is
cheap (no subprocess, no psutil on the box). A value that cannot be read is left out (None)
rather than guessed: a box without a thermal zone sends no temperature.
"""

from __future__ import annotations

import glob
import logging
import resource
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from contract import CameraHealth, Heartbeat
from edge_agent.capture.camera import CameraStatus
from edge_agent.comms.outbox import Outbox
from edge_agent.config.schema import AgentConfig

log = logging.getLogger(__name__)

_STATES = {"starting", "online", "offline", "error", "stopped"}
THERMAL_GLOB = "/sys/class/thermal/thermal_zone*/temp"


def disk_usage(path: Path) -> tuple[int | None, int | None]:
    """(free, total) bytes of the file system holding `path` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return None, None
    return usage.free, usage.total


def memory_mb() -> float | None:
    """Resident memory now (VmRSS); falls back to the peak (ru_maxrss) where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def temperature_c(pattern: str = THERMAL_GLOB) -> float | None:
    """The hottest readable thermal zone (on ARM boards that is the SoC), in °C."""
    readings: list[float] = []
    for path in glob.glob(pattern):
        try:
            with open(path, encoding="ascii") as f:
                value = int(f.read().strip())
        except (OSError, ValueError):
            continue  # unreadable or "N/A" zones exist (disabled sensors)
        # Kernels report millidegrees; a few drivers report degrees.
        readings.append(value / 1000.0 if abs(value) > 200 else float(value))
    return max(readings) if readings else None


def camera_health(status: CameraStatus, recording: bool, span: tuple[float, float] | None = None) -> CameraHealth:
    """`span`: the oldest kept segment's start and the newest one's end (SegmentIndex.spans)."""
    state = status.state if status.state in _STATES else "error"
    return CameraHealth(
        camera=status.camera,
        state=state,  # checked against the contract's states above
        fps=max(0.0, status.fps),
        dropped_packets=max(0, status.dropped_packets),
        # Recording is healthy only while the camera delivers and recording is enabled for it.
        recording=recording and status.state == "online",
        recorded_from=span[0] if span else None,
        last_segment_end=span[1] if span else None,
        last_error=status.last_error[:500] if status.last_error else None,
    )


class HeartbeatBuilder:
    """Builds heartbeats for one agent; keeps the CPU sample between calls (CPU % over the interval)."""

    def __init__(
        self, config: AgentConfig, outbox: Outbox | None = None, list_version: Callable[[], int] | None = None
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.list_version = list_version  # a gate box: the allow-list version it decides on
        self.started = time.monotonic()
        self._cpu_sample = (time.monotonic(), time.process_time())

    def cpu_percent(self) -> float | None:
        """Process CPU since the previous heartbeat, in % of one core (may exceed 100 on several)."""
        now, cpu = time.monotonic(), time.process_time()
        wall = now - self._cpu_sample[0]
        used = cpu - self._cpu_sample[1]
        self._cpu_sample = (now, cpu)
        if wall <= 0:
            return None
        return round(max(0.0, used / wall * 100.0), 1)

    def build(
        self,
        statuses: Sequence[CameraStatus] = (),
        spans: Mapping[str, tuple[float, float]] | None = None,
    ) -> Heartbeat:
        free, total = disk_usage(self.config.storage.root)
        cameras = []
        for status in statuses:
            camera = self.config.cameras.get(status.camera)
            recording = camera.record.enabled if camera is not None else False
            cameras.append(camera_health(status, recording, (spans or {}).get(status.camera)))
        depth = dropped = 0
        if self.outbox is not None:
            try:
                depth, dropped = self.outbox.depth, self.outbox.dropped
            except Exception as exc:  # a busy or damaged outbox must not stop heartbeats
                log.warning("heartbeat: cannot read the outbox: %s", exc)
        mem = memory_mb()
        return Heartbeat(
            time=time.time(),
            uptime_seconds=round(time.monotonic() - self.started, 3),
            cpu_percent=self.cpu_percent(),
            memory_mb=round(mem, 1) if mem is not None else None,
            disk_free_bytes=free,
            disk_total_bytes=total,
            temperature_c=temperature_c(),
            outbox_depth=depth,
            outbox_dropped=dropped,
            cameras=cameras,
            access_list_version=self._list_version(),
        )

    def _list_version(self) -> int | None:
        if self.list_version is None:
            return None
        try:
            return self.list_version()
        except Exception as exc:  # a busy gate.db must not stop heartbeats
            log.warning("heartbeat: cannot read the allow-list version: %s", exc)
            return None
