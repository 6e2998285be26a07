"""Recorder benchmark (issue "recorder"): CPU, non-video writes and memory of a record-only agent.

For N simultaneous 1080p 15 fps H.264 RTSP streams (default N = 1, 4, 8) it runs, one after the
other, each against its own fresh RTSP server (so both see identical streams from the start):

* our agent: `diaolou-agent run` with a record-only config (made by `diaolou-agent config init`);
* the practical floor: one `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 10
  -reset_timestamps 1 out%05d.mp4` per camera.

It reports CPU seconds per camera-hour, the bytes written besides the video, and peak RSS, with
PASS/FAIL against the issue's goals, prints a markdown table and writes the latest results to
bench/results/record_cpu.md and .json. How each figure is measured: bench/README.md.

    .venv/bin/python bench/record_cpu.py [--cameras 1,4,8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import av

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
AGENT = REPO / ".venv" / "bin" / "diaolou-agent"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
CODE_DIRS = ("edge_agent", "firmware_configs", "models")  # the packages the agent imports
RTSP_SERVER = REPO / "tests" / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # has the GStreamer GObject bindings

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# The stream: what a typical 1080p IP camera main stream sends.
WIDTH, HEIGHT, FPS, GOP, BITRATE = 1920, 1080, 15, 30, 2_000_000

# Goals of the issue.
CPU_RATIO_GOAL = 1.5  # our CPU at most 1.5x ffmpeg's
NONVIDEO_PCT_GOAL = 0.5  # non-video bytes written, % of the video bytes
RSS_BASE_MIB, RSS_PER_CAMERA_MIB = 100.0, 10.0
COVERAGE_GOAL = 0.98  # recorded video seconds / wall seconds in the window ("no drops")

MAX_LOG_LINES = 20_000


# --- /proc ------------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_fields(pid: int, name: str) -> dict[str, int]:
    """/proc/<pid>/io or /proc/<pid>/status as {key: first integer} (kB for the Vm* keys)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def thread_cpu(pid: int) -> list[tuple[int, str, float]]:
    """(tid, name, CPU seconds) of each live thread, busiest first."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (task / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            out.append((int(task.name), name, (int(fields[11]) + int(fields[12])) / CLK_TCK))
    return sorted(out, key=lambda t: -t[2])


def task_runtimes(pid: int) -> dict[int, int]:
    """{tid: nanoseconds on a CPU} of each live thread, from /proc/<pid>/task/<tid>/schedstat.

    The scheduler's own count, to the nanosecond: /proc/<pid>/stat is in clock ticks (10 ms),
    which at one camera (ffmpeg: ~20 ticks a minute) would move the ratio by up to 5 %.
    """
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return out


def window_runtime(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds between two `task_runtimes` readings; a thread born in between counts whole."""
    return sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e9


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# --- child processes --------------------------------------------------------------------------
class Child:
    """A child process with its output logged, sampled through /proc, and reaped with wait4().

    Reaping waits for the exit without reaping first (WNOWAIT) so that /proc/<pid>/io can still be
    read from the zombie: that includes what the process wrote while shutting down.
    """

    live: ClassVar[dict[int, Child]] = {}  # every child not reaped yet, for cleanup on errors

    def __init__(
        self, name: str, argv: list[str], cwd: Path, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.lines: list[str] = []
        self.log_bytes = 0  # what it wrote to stdout/stderr (a pipe: counted in wchar, not write_bytes)
        self.ready = threading.Event()
        self.hwm_kib = 0
        self.exit_code: int | None = None
        self.killed = False
        self.final_io: dict[str, int] = {}
        self.cpu_total: float | None = None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w", encoding="utf-8")
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # a pipe, so that logging does not count as disk writes
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C on the benchmark reaches only the benchmark
            env=env,
        )
        self.pid = self.popen.pid
        self.started = time.time()
        Child.live[self.pid] = self
        self._reader = threading.Thread(target=self._read, name=f"log-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.log_bytes += len(line.encode("utf-8", "replace"))
            if len(self.lines) < MAX_LOG_LINES:
                self.lines.append(line.rstrip("\n"))
            self._log.write(line)
            if line.strip() == "ready":
                self.ready.set()

    def exited(self) -> bool:
        if self.exit_code is not None:
            return True
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.exit_code is None else self.cpu_total

    def sample_memory(self) -> None:
        if self.exit_code is None:
            self.hwm_kib = max(self.hwm_kib, proc_fields(self.pid, "status").get("VmHWM", 0))

    def signal(self, sig: signal.Signals) -> None:
        if self.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def reap(self, timeout: float) -> None:
        """Wait for the exit (SIGKILL after `timeout`), read the zombie's I/O counters, reap it."""
        if self.exit_code is not None:
            return
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > deadline:
                if self.killed:
                    raise RuntimeError(f"{self.name} (pid {self.pid}) survives SIGKILL")
                self.killed = True
                self.signal(signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.05)
        self.final_io = proc_fields(self.pid, "io")
        _, status, usage = os.wait4(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.exit_code
        self.cpu_total = usage.ru_utime + usage.ru_stime
        Child.live.pop(self.pid, None)
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()

    @property
    def peak_rss_mib(self) -> float:
        # Not wait4's ru_maxrss: it keeps the high-water mark of the forked benchmark from before exec.
        return self.hwm_kib / 1024

    def problems(self) -> list[str]:
        marks = (" ERROR ", " WARNING ", " CRITICAL ", "Traceback", "[error]", "[warning]")
        return [line for line in self.lines if any(m in line for m in marks)]

    @classmethod
    def kill_all(cls) -> None:
        for child in list(cls.live.values()):
            child.signal(signal.SIGTERM)
        for child in list(cls.live.values()):
            with contextlib.suppress(Exception):
                child.reap(5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def rtsp_server(video: Path, cameras: int, log_path: Path) -> Iterator[tuple[Child, int]]:
    """A fresh GStreamer RTSP server serving `video` at /cam1 .. /camN on 127.0.0.1."""
    port = free_port()
    mounts = [f"/cam{i}={video}" for i in range(1, cameras + 1)]
    server = Child("rtsp-server", [SYSTEM_PYTHON, str(RTSP_SERVER), str(port), *mounts], REPO, log_path)
    try:
        deadline = time.monotonic() + 30
        while not server.ready.wait(0.1):
            if server.exited() or time.monotonic() > deadline:
                raise RuntimeError("RTSP server did not start: " + " | ".join(server.lines[-5:]))
        yield server, port
    finally:
        server.signal(signal.SIGTERM)
        server.reap(10)


# --- which agent --------------------------------------------------------------------------------
@dataclass
class AgentCode:
    """How to start the agent: the working tree (`diaolou-agent`), or a commit exported to bench/work."""

    argv: list[str]
    env: dict[str, str] | None
    describe: dict[str, Any]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout


def agent_code(code: str) -> AgentCode:
    head = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = git("rev-parse", "HEAD").strip()
    if code == "worktree":
        modified: list[str] = []
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            modified = git("status", "--porcelain", "--", *CODE_DIRS).splitlines()
        describe = {"code": "worktree", "head": head, "uncommitted_changes": len(modified)}
        return AgentCode([str(AGENT)], None, describe)
    # A commit: `git archive` (read-only) into bench/work/code/<rev>, imported ahead of the
    # editable install through PYTHONPATH; the virtualenv's dependencies are used as they are.
    rev = git("rev-parse", "--verify", f"{code}^{{commit}}").strip()
    dest = WORK / "code" / rev[:12]
    if not dest.exists():
        present = set(git("ls-tree", "--name-only", rev).split())
        data = subprocess.run(
            ["git", "archive", "--format=tar", rev, *[d for d in CODE_DIRS if d in present]],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(dest)
    env = dict(os.environ, PYTHONPATH=str(dest))
    describe = {"code": code, "commit": rev, "head": head, "exported_to": str(dest.relative_to(REPO))}
    return AgentCode([str(VENV_PYTHON), "-m", "edge_agent"], env, describe)


# --- test video -------------------------------------------------------------------------------
def ensure_video(seconds: int) -> Path:
    """The 1080p test stream, made once and cached in bench/work/video/."""
    path = WORK / "video" / f"h264_{WIDTH}x{HEIGHT}_{FPS}fps_gop{GOP}_{BITRATE // 1000}k_{seconds}s.mp4"
    if path.exists():
        return path
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from edge_agent.testvideo import make_h264

    log(f"making the test video {path.name} (once; cached) ...")
    tmp = path.with_suffix(".tmp.mp4")
    make_h264(tmp, seconds=seconds, fps=FPS, width=WIDTH, height=HEIGHT, gop=GOP, bitrate=BITRATE)
    tmp.rename(path)
    return path


# --- what was recorded ------------------------------------------------------------------------
@dataclass
class SegmentFile:
    path: str
    bytes: int
    mtime: float  # the file was finished then: the segment's end by the wall clock
    seconds: float  # video duration by its own timestamps
    packets: int
    error: str | None = None


def probe_segment(path: Path, root: Path) -> SegmentFile:
    st = path.stat()
    seconds, packets, error = 0.0, 0, None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first: int | None = None
            end: int | None = None
            frame = int(1 / (stream.time_base * FPS)) if stream.time_base else 1
            for packet in container.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or ts is None:
                    continue
                packets += 1
                first = ts if first is None else min(first, ts)
                stop = ts + (packet.duration or frame)
                end = stop if end is None else max(end, stop)
            if first is not None and end is not None and stream.time_base is not None:
                seconds = float((end - first) * stream.time_base)
    except (av.FFmpegError, IndexError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return SegmentFile(str(path.relative_to(root)), st.st_size, st.st_mtime, seconds, packets, error)


def video_files(root: Path) -> list[Path]:
    """Finished segments, and unfinished ones (.part) that a run may leave behind."""
    return sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix == ".mp4" or p.name.endswith(".part")))


def video_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith((".mp4", ".part")):
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def seconds_in_window(segments: list[SegmentFile], t0: float, t1: float) -> float:
    """Video seconds of the segments that fall in the wall-clock window [t0, t1]."""
    total = 0.0
    for seg in segments:
        start, end = seg.mtime - seg.seconds, seg.mtime
        total += max(0.0, min(end, t1) - max(start, t0))
    return total


# --- one run ----------------------------------------------------------------------------------
@dataclass
class Run:
    tool: str  # ours | ffmpeg
    cameras: int
    window_s: float = 0.0
    run_wall_s: float = 0.0  # launch to stop signal
    cpu_window_s: float = 0.0  # scheduler runtime (ns precision), see task_runtimes()
    cpu_window_ticks_s: float = 0.0  # the same from /proc/<pid>/stat (10 ms ticks), a cross-check
    cpu_total_s: float = 0.0
    server_cpu_window_s: float = 0.0
    machine_busy_pct: float = 0.0
    startup_s: float | None = None  # launch to the first video byte on disk
    recorded_s: float = 0.0  # video seconds in the files, all cameras
    recorded_window_s: float = 0.0  # of which in the measurement window
    recorded_per_camera_s: dict[str, float] = field(default_factory=dict)
    video_bytes: int = 0
    segments: int = 0
    # Bytes written, from /proc/<pid>/io summed over the processes. write_bytes: pages dirtied in
    # the page cache (what reaches the disk, in whole pages); wchar: bytes passed to write() and
    # friends (files and pipes, not sockets), exact.
    write_bytes: int = 0  # at exit
    cancelled_write_bytes: int = 0
    wchar: int = 0
    log_bytes: int = 0  # of wchar: stdout/stderr, a pipe
    window_write_bytes: int = 0  # write_bytes(t1) - write_bytes(t0)
    window_wchar: int = 0
    window_log_bytes: int = 0
    window_video_bytes: int = 0  # size of the segment files at t1 - at t0
    startup_write_bytes: int | None = None  # written before the first video byte
    startup_wchar: int | None = None
    shutdown_nonvideo_bytes: int = 0  # written after SIGTERM, besides video (write() bytes)
    nonvideo_files: dict[str, int] = field(default_factory=dict)  # storage root, sizes at the end
    peak_rss_mib: float = 0.0  # ours: the agent; ffmpeg: the sum over its processes
    peak_rss_each_mib: list[float] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    killed: bool = False
    ended_early: bool = False
    problems: list[str] = field(default_factory=list)
    threads: list[tuple[int, str, float]] = field(default_factory=list)  # ours: CPU per thread at t1
    index: dict[str, Any] = field(default_factory=dict)  # ours: what the index says
    status: dict[str, Any] = field(default_factory=dict)  # ours: status.json at the end

    # Normalised figures -----------------------------------------------------------------
    @property
    def coverage(self) -> float:
        """Recorded video seconds in the window / (cameras x window seconds)."""
        return self.recorded_window_s / (self.cameras * self.window_s) if self.window_s else 0.0

    @property
    def cpu_per_cam_hour(self) -> float:
        """Steady state: CPU in the window per recorded camera-hour in the window."""
        return self.cpu_window_s / (self.recorded_window_s / 3600) if self.recorded_window_s else float("nan")

    @property
    def cpu_per_cam_hour_total(self) -> float:
        """Whole run, start-up and shutdown included, per recorded camera-hour."""
        return self.cpu_total_s / (self.recorded_s / 3600) if self.recorded_s else float("nan")

    @property
    def nonvideo_bytes_window(self) -> int:
        """Steady state: bytes written to files other than segments in the window (write() level)."""
        return self.window_wchar - self.window_log_bytes - self.window_video_bytes

    @property
    def nonvideo_pages_window(self) -> int:
        """The same at page level (write_bytes), with its rounding (see ffmpeg's figure)."""
        return self.window_write_bytes - self.window_video_bytes

    @property
    def nonvideo_bytes_total(self) -> int:
        """Whole run, start-up (creating the databases) and shutdown included (write() level)."""
        return self.wchar - self.log_bytes - self.video_bytes

    def pct(self, nonvideo: int, video: int) -> float:
        return 100.0 * nonvideo / video if video else float("nan")

    def per_cam_hour(self, nonvideo: int) -> float:
        return nonvideo / (self.recorded_window_s / 3600) if self.recorded_window_s else float("nan")

    @property
    def nonvideo_pct(self) -> float:
        return self.pct(self.nonvideo_bytes_window, self.window_video_bytes)

    @property
    def nonvideo_pages_pct(self) -> float:
        return self.pct(self.nonvideo_pages_window, self.window_video_bytes)

    @property
    def nonvideo_pct_total(self) -> float:
        return self.pct(self.nonvideo_bytes_total, self.video_bytes)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            coverage=self.coverage,
            cpu_per_cam_hour=self.cpu_per_cam_hour,
            cpu_per_cam_hour_total=self.cpu_per_cam_hour_total,
            nonvideo_bytes_window=self.nonvideo_bytes_window,
            nonvideo_pct=self.nonvideo_pct,
            nonvideo_bytes_per_cam_hour=self.per_cam_hour(self.nonvideo_bytes_window),
            nonvideo_pages_window=self.nonvideo_pages_window,
            nonvideo_pages_pct=self.nonvideo_pages_pct,
            nonvideo_pages_per_cam_hour=self.per_cam_hour(self.nonvideo_pages_window),
            nonvideo_bytes_total=self.nonvideo_bytes_total,
            nonvideo_pct_total=self.nonvideo_pct_total,
        )
        return data


@dataclass
class IoSample:
    write_bytes: int
    wchar: int
    log_bytes: int
    video_bytes: int


def io_sample(children: list[Child], video_root: Path) -> IoSample:
    """/proc/<pid>/io summed over the children, and the bytes in the segment files, read together.

    All of them count at write(): a muxer's buffered data is in none of them, so differences are
    exact up to page rounding (write_bytes) and the few bytes written between the reads.
    """
    log_bytes = sum(c.log_bytes for c in children)
    ios = [proc_fields(c.pid, "io") for c in children]
    return IoSample(
        write_bytes=sum(io.get("write_bytes", 0) for io in ios),
        wchar=sum(io.get("wchar", 0) for io in ios),
        log_bytes=log_bytes,
        video_bytes=video_bytes(video_root),
    )


def measure(
    run: Run,
    children: list[Child],
    server: Child,
    video_root: Path,
    warmup: float,
    seconds: float,
) -> tuple[float, float]:
    """Sample the children from launch to `warmup + seconds`, then SIGTERM and reap them.

    Returns the window (t0, t1). Until the first video byte reaches the disk, the I/O counters are
    polled: what was written before recording (creating the databases) is a one-time cost.
    """
    t_launch = min(c.started for c in children)
    t0, t1 = t_launch + warmup, t_launch + warmup + seconds
    first_video: float | None = None
    while time.time() < t0 and not any(c.exited() for c in children):
        if first_video is None:
            sample = io_sample(children, video_root)
            if sample.video_bytes == 0:
                run.startup_write_bytes = sample.write_bytes
                run.startup_wchar = sample.wchar - sample.log_bytes
            else:
                first_video = time.time()
            time.sleep(0.02)
        else:
            time.sleep(min(0.25, max(0.0, t0 - time.time())))
    run.startup_s = None if first_video is None else first_video - t_launch
    if first_video is None:
        run.problems.append(f"no video on disk {warmup:.0f} s after launch")

    t0 = time.time()
    cpu0 = [c.cpu() or 0.0 for c in children]
    tasks0 = [task_runtimes(c.pid) for c in children]
    server0, busy0 = server.cpu() or 0.0, machine_cpu()
    io0 = io_sample(children, video_root)
    while (now := time.time()) < t1:
        if any(c.exited() for c in children):
            run.ended_early = True
            break
        for c in children:
            c.sample_memory()
        time.sleep(min(1.0, t1 - now))
    for c in children:
        c.sample_memory()
    cpu1 = [c.cpu() for c in children]
    tasks1 = [task_runtimes(c.pid) for c in children]
    server1, busy1 = server.cpu() or 0.0, machine_cpu()
    io1 = io_sample(children, video_root)
    if len(children) == 1:
        run.threads = thread_cpu(children[0].pid)
    t1 = time.time()
    for c in children:
        c.signal(signal.SIGTERM)
    for c in children:
        c.reap(timeout=30)
    # A child that had died before t1 has no /proc/<pid>/stat left: its whole CPU is in the window.
    tick_window_s = sum(
        (b if b is not None else (c.cpu_total or 0.0)) - a for a, b, c in zip(cpu0, cpu1, children, strict=True)
    )
    run.cpu_window_ticks_s = tick_window_s
    run.cpu_window_s = sum(window_runtime(a, b) for a, b in zip(tasks0, tasks1, strict=True))
    # A thread that ended inside the window takes its nanoseconds with it; the tick count keeps
    # them. More than the ticks' rounding apart: use the ticks, and say so.
    if run.ended_early or abs(run.cpu_window_s - tick_window_s) > 0.02 * len(children) + 0.05 * tick_window_s:
        run.problems.append(
            f"scheduler runtime {run.cpu_window_s:.3f} s vs clock ticks {tick_window_s:.2f} s in the window "
            "(a thread ended?): the tick count is used"
        )
        run.cpu_window_s = tick_window_s
    run.window_s = t1 - t0
    run.run_wall_s = t1 - t_launch
    run.server_cpu_window_s = server1 - server0
    run.machine_busy_pct = 100.0 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    run.cpu_total_s = sum(c.cpu_total or 0.0 for c in children)
    run.write_bytes = sum(c.final_io.get("write_bytes", 0) for c in children)
    run.cancelled_write_bytes = sum(c.final_io.get("cancelled_write_bytes", 0) for c in children)
    run.wchar = sum(c.final_io.get("wchar", 0) for c in children)
    run.log_bytes = sum(c.log_bytes for c in children)
    run.window_write_bytes = io1.write_bytes - io0.write_bytes
    run.window_wchar = io1.wchar - io0.wchar
    run.window_log_bytes = io1.log_bytes - io0.log_bytes
    run.window_video_bytes = io1.video_bytes - io0.video_bytes
    run.shutdown_nonvideo_bytes = (
        (run.wchar - io1.wchar) - (run.log_bytes - io1.log_bytes) - (video_bytes(video_root) - io1.video_bytes)
    )
    run.peak_rss_each_mib = [round(c.peak_rss_mib, 1) for c in children]
    run.peak_rss_mib = sum(c.peak_rss_mib for c in children)
    run.exit_codes = [c.exit_code for c in children]
    run.killed = any(c.killed for c in children)
    if run.killed:
        run.problems.append("did not exit within 30 s of SIGTERM: killed")
    if run.ended_early:
        run.problems.append(f"exited before the end of the window: exit codes {run.exit_codes}")
    for c in children:
        lines = c.problems()
        if lines:
            run.problems.append(f"{c.name}: {len(lines)} error/warning log lines, e.g. {lines[0].strip()[:300]}")
    return t0, t1


def collect_segments(run: Run, roots: dict[str, Path], t0: float, t1: float) -> list[SegmentFile]:
    """Probe every segment file; `roots` maps camera name to the directory holding its files."""
    everything: list[SegmentFile] = []
    for camera, root in roots.items():
        segments = [probe_segment(p, root) for p in video_files(root)] if root.exists() else []
        for seg in segments:
            seg.path = f"{camera}/{seg.path}"
        everything += segments
        run.recorded_per_camera_s[camera] = round(sum(s.seconds for s in segments), 3)
        for seg in segments:
            if seg.error:
                run.problems.append(f"{seg.path}: unreadable: {seg.error}")
            elif seg.path.endswith(".part"):
                run.problems.append(f"{seg.path}: left unfinished (.part)")
    run.segments = len(everything)
    run.video_bytes = sum(s.bytes for s in everything)
    run.recorded_s = sum(s.seconds for s in everything)
    run.recorded_window_s = seconds_in_window(everything, t0, t1)
    return everything


# --- our agent --------------------------------------------------------------------------------
def run_ours(cameras: int, video: Path, work: Path, warmup: float, seconds: float, code: AgentCode) -> Run:
    run = Run("ours", cameras)
    root = work / "store"
    with rtsp_server(video, cameras, work / "rtsp-server.log") as (server, port):
        cam_args = [a for i in range(1, cameras + 1) for a in ("--camera", f"cam{i}=rtsp://127.0.0.1:{port}/cam{i}")]
        init = subprocess.run(
            [*code.argv, "config", "init", "--storage", str(root), "--record-only", *cam_args],
            capture_output=True,
            text=True,
            timeout=60,
            env=code.env,
            cwd=work,
        )
        if init.returncode != 0:
            raise RuntimeError(f"diaolou-agent config init failed: {init.stderr.strip()[-2000:]}")
        config = init.stdout
        config_path = work / "agent.yaml"
        config_path.write_text(config, encoding="utf-8")
        safety = warmup + seconds + 60  # --seconds: the agent stops by itself if the benchmark dies
        argv = [*code.argv, "run", "--config", str(config_path), "--seconds", f"{safety:.0f}"]
        agent = Child("agent", argv, work, work / "agent.log", env=code.env)
        root.mkdir(parents=True, exist_ok=True)
        t0, t1 = measure(run, [agent], server, root, warmup, seconds)
    if agent.exit_code != 0:
        run.problems.append(f"agent exit code {agent.exit_code}")
    segments = collect_segments(run, {f"cam{i}": root / f"cam{i}" for i in range(1, cameras + 1)}, t0, t1)
    if root.exists():
        run.nonvideo_files = {
            str(p.relative_to(root)): p.stat().st_size
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".mp4" and not p.name.endswith(".part")
        }
    run.index = read_index(root, t0, t1)
    status_path = root / "status.json"
    if status_path.exists():
        with contextlib.suppress(ValueError):
            run.status = json.loads(status_path.read_text(encoding="utf-8"))
    check_agent(run, {s.path for s in segments})
    return run


def read_index(root: Path, t0: float, t1: float) -> dict[str, Any]:
    path = root / "index.db"
    if not path.exists():
        return {"error": "no index.db"}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "select camera, count(*), sum(duration), sum(bytes), sum(max(0, min(end, ?) - max(start, ?))) "
            "from segments group by camera order by camera",
            [t1, t0],
        ).fetchall()
        paths = {r[0] for r in conn.execute("select path from segments")}
    except sqlite3.Error as exc:
        return {"error": str(exc)}
    finally:
        conn.close()
    return {
        "cameras": {r[0]: {"segments": r[1], "seconds": r[2], "bytes": r[3], "window_seconds": r[4]} for r in rows},
        "seconds": sum(r[2] or 0 for r in rows),
        "window_seconds": sum(r[4] or 0 for r in rows),
        "paths": sorted(paths),
    }


def check_agent(run: Run, files: set[str]) -> None:
    """Anything in the agent's own records that says it lost or mangled video."""
    index = run.index
    if "error" in index:
        run.problems.append(f"index: {index['error']}")
    else:
        indexed = set(index.get("paths", []))
        if files - indexed:
            run.problems.append(f"{len(files - indexed)} segment files not in the index after a clean shutdown")
        if indexed - files:
            run.problems.append(f"{len(indexed - files)} index rows without a segment file")
        gap = run.recorded_s - index.get("seconds", 0.0)
        if abs(gap) > 1.0:
            run.problems.append(
                f"index durations sum to {index.get('seconds', 0.0):.1f} s, the files hold {run.recorded_s:.1f} s"
            )
    for cam in run.status.get("cameras", []):
        notes = []
        for key in ("reconnects", "dropped_packets", "timestamp_repairs", "disk_full_events"):
            if cam.get(key):
                notes.append(f"{key}={cam[key]}")
        if cam.get("last_error"):
            notes.append(f"last_error={cam['last_error']!r}")
        if notes:
            run.problems.append(f"{cam.get('camera')}: " + ", ".join(notes))


# --- ffmpeg -----------------------------------------------------------------------------------
def run_ffmpeg(cameras: int, video: Path, work: Path, warmup: float, seconds: float, ffmpeg: str) -> Run:
    run = Run("ffmpeg", cameras)
    with rtsp_server(video, cameras, work / "rtsp-server.log") as (server, port):
        children = []
        for i in range(1, cameras + 1):
            cam_dir = work / f"cam{i}"
            cam_dir.mkdir(parents=True, exist_ok=True)
            argv = [
                ffmpeg,
                "-nostdin",
                "-hide_banner",
                "-nostats",
                "-loglevel",
                "warning",
                "-rtsp_transport",
                "tcp",
                "-i",
                f"rtsp://127.0.0.1:{port}/cam{i}",
                "-c",
                "copy",
                "-f",
                "segment",
                "-segment_time",
                "10",
                "-reset_timestamps",
                "1",
                "out%05d.mp4",
            ]
            children.append(Child(f"ffmpeg-cam{i}", argv, cam_dir, work / f"ffmpeg-cam{i}.log"))
        t0, t1 = measure(run, children, server, work, warmup, seconds)
    for child in children:
        if child.exit_code not in (0, 255):  # 255: "Exiting normally, received signal 15"
            run.problems.append(f"{child.name} exit code {child.exit_code}")
    collect_segments(run, {f"cam{i}": work / f"cam{i}" for i in range(1, cameras + 1)}, t0, t1)
    return run


# --- report -----------------------------------------------------------------------------------
@dataclass
class Row:
    cameras: int
    metric: str
    ours: str
    ffmpeg: str
    ratio: str
    goal: str
    result: str  # PASS | FAIL | info


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"  # NaN check


SUMMED_FIELDS = (
    "window_s", "run_wall_s", "cpu_window_s", "cpu_window_ticks_s", "cpu_total_s", "server_cpu_window_s",
    "recorded_s", "recorded_window_s", "video_bytes", "segments", "write_bytes", "cancelled_write_bytes",
    "wchar", "log_bytes", "window_write_bytes", "window_wchar", "window_log_bytes", "window_video_bytes",
    "shutdown_nonvideo_bytes",
)  # fmt: skip


def pool(runs: list[Run]) -> Run:
    """Several runs of one tool as one: time, CPU and bytes summed, so every ratio is the pooled
    one (total CPU / total camera-hours); peak memory is the largest, busy % the mean."""
    if len(runs) == 1:
        return runs[0]
    pooled = Run(runs[0].tool, runs[0].cameras)
    for name in SUMMED_FIELDS:
        setattr(pooled, name, sum(getattr(r, name) for r in runs))
    pooled.peak_rss_mib = max(r.peak_rss_mib for r in runs)
    pooled.machine_busy_pct = sum(r.machine_busy_pct for r in runs) / len(runs)
    pooled.problems = [p for r in runs for p in r.problems]
    return pooled


def cpu_ratio(ours: Run, ff: Run) -> float:
    return ours.cpu_per_cam_hour / ff.cpu_per_cam_hour if ff.cpu_per_cam_hour else float("nan")


def repeat_row(ours: list[Run], ff: list[Run]) -> Row:
    ratios = ", ".join(f"{fmt(cpu_ratio(o, f), 2)}x" for o, f in zip(ours, ff, strict=True))
    return Row(ours[0].cameras, f"CPU ratio of each of the {len(ours)} repeats", ratios, "", "", "", "info")


def summarise(ours: Run, ff: Run) -> list[Row]:
    n = ours.cameras
    rows = []
    ratio = cpu_ratio(ours, ff)
    rows.append(
        Row(
            n,
            "CPU s per camera-hour (steady window)",
            fmt(ours.cpu_per_cam_hour),
            fmt(ff.cpu_per_cam_hour),
            f"{fmt(ratio, 2)}x",
            f"<= {CPU_RATIO_GOAL}x ffmpeg",
            verdict(ratio <= CPU_RATIO_GOAL),
        )
    )
    ratio_total = ours.cpu_per_cam_hour_total / ff.cpu_per_cam_hour_total if ff.cpu_total_s else float("nan")
    rows.append(
        Row(
            n,
            "CPU s per camera-hour (whole run, start-up incl.)",
            fmt(ours.cpu_per_cam_hour_total),
            fmt(ff.cpu_per_cam_hour_total),
            f"{fmt(ratio_total, 2)}x",
            "",
            "info",
        )
    )

    def kib_h(run: Run, nonvideo: int) -> str:
        return fmt(run.per_cam_hour(nonvideo) / 1024, 0)

    pct = ours.nonvideo_pct
    rows.append(
        Row(
            n,
            "non-video bytes written, % of video (KiB per camera-hour)",
            f"{fmt(pct, 3)} % ({kib_h(ours, ours.nonvideo_bytes_window)})",
            f"{fmt(ff.nonvideo_pct, 3)} % ({kib_h(ff, ff.nonvideo_bytes_window)})",
            "",
            f"< {NONVIDEO_PCT_GOAL} %",
            verdict(pct < NONVIDEO_PCT_GOAL),
        )
    )
    rows.append(
        Row(
            n,
            "the same in dirtied pages (write_bytes; ffmpeg: method floor)",
            f"{fmt(ours.nonvideo_pages_pct, 3)} % ({kib_h(ours, ours.nonvideo_pages_window)})",
            f"{fmt(ff.nonvideo_pages_pct, 3)} % ({kib_h(ff, ff.nonvideo_pages_window)})",
            "",
            "",
            "info",
        )
    )
    rows.append(
        Row(
            n,
            "non-video bytes, whole run (start-up, shutdown incl.), % of video",
            f"{fmt(ours.nonvideo_pct_total, 3)} %",
            f"{fmt(ff.nonvideo_pct_total, 3)} %",
            "",
            "",
            "info",
        )
    )
    limit = RSS_BASE_MIB + RSS_PER_CAMERA_MIB * n
    rss_ratio = ours.peak_rss_mib / ff.peak_rss_mib if ff.peak_rss_mib else float("nan")
    rows.append(
        Row(
            n,
            "peak RSS MiB (ffmpeg: sum of its processes)",
            fmt(ours.peak_rss_mib),
            fmt(ff.peak_rss_mib),
            f"{fmt(rss_ratio, 2)}x",
            f"< {limit:.0f} MiB",
            verdict(ours.peak_rss_mib < limit),
        )
    )
    rows.append(
        Row(
            n,
            "recorded / wall video seconds in window",
            f"{fmt(100 * ours.coverage)} %",
            f"{fmt(100 * ff.coverage)} %",
            "",
            f">= {100 * COVERAGE_GOAL:.0f} %",
            verdict(ours.coverage >= COVERAGE_GOAL),
        )
    )
    rows.append(
        Row(
            n,
            "machine CPU busy in window (2 cores = 100 %)",
            f"{fmt(ours.machine_busy_pct, 0)} %",
            f"{fmt(ff.machine_busy_pct, 0)} %",
            "",
            "",
            "info",
        )
    )
    return rows


def markdown_table(rows: list[Row]) -> str:
    head = "| cameras | metric | ours | ffmpeg | ratio | goal | result |\n|---:|---|---:|---:|---:|---|---|\n"
    return head + "".join(
        f"| {r.cameras} | {r.metric} | {r.ours} | {r.ffmpeg} | {r.ratio} | {r.goal} | {r.result} |\n" for r in rows
    )


def environment(ffmpeg: str) -> dict[str, Any]:
    try:
        ff_version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=10).stdout
    except OSError as exc:
        ff_version = str(exc)
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg": ff_version.splitlines()[0] if ff_version else "",
    }


def describe_code(code: dict[str, Any]) -> str:
    if code["code"] == "worktree":
        changes = code.get("uncommitted_changes", 0)
        return f"working tree at {code.get('head', '')[:12]}" + (
            f" with {changes} uncommitted change(s) in the agent's packages" if changes else ""
        )
    return f"commit {code['commit'][:12]} ({code['code']})"


def write_results(args: argparse.Namespace, env: dict[str, Any], video: Path, runs: list[Run], rows: list[Row]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Recorder benchmark: `bench/record_cpu.py`",
        "",
        f"Latest run: {now}; {env['cpus']} CPUs, kernel {env['kernel']}, {env['ffmpeg']}, PyAV {env['pyav']}.",
        f"Agent code: {describe_code(env['agent'])}.",
        f"Streams: {WIDTH}x{HEIGHT} {FPS} fps H.264, GOP {GOP}, {BITRATE // 1000} kbit/s, RTSP over TCP "
        f"(GStreamer server on 127.0.0.1, one fresh server per run). Window: {args.seconds:.0f} s after "
        f"{args.warmup:.0f} s warm-up. Command: `{' '.join(sys.argv)}`.",
        "",
        markdown_table(rows),
        "Steady state = the window: CPU time in it / recorded camera-hours in it; non-video bytes = "
        "growth of /proc/<pid>/io wchar (bytes passed to write(), minus the log lines on the stderr "
        "pipe) in it - growth of the segment files in it; the page-level row uses write_bytes instead "
        "(whole 4 KiB pages; ffmpeg writes nothing but video, so its figure there is the method's "
        "rounding floor). Whole run = from launch to exit (Python start-up, creating the databases, "
        "the final flush). See bench/README.md.",
        "",
        "## Details",
        "",
    ]
    for run in runs:
        plural = "s" if run.cameras > 1 else ""
        lines.append(
            f"- **{run.tool}, {run.cameras} camera{plural}**: window {run.window_s:.1f} s, "
            f"CPU {run.cpu_window_s:.3f} s (clock ticks: {run.cpu_window_ticks_s:.2f} s) "
            f"in the window / {run.cpu_total_s:.2f} s in total, RTSP server {run.server_cpu_window_s:.2f} s; "
            f"{run.segments} segments, {run.recorded_s:.1f} video s "
            f"({run.recorded_window_s:.1f} in the window), "
            f"{run.video_bytes / MIB:.1f} MiB video; write_bytes {run.write_bytes / MIB:.2f} MiB "
            f"(cancelled {run.cancelled_write_bytes / 1024:.0f} KiB); peak RSS {run.peak_rss_each_mib} MiB; "
            f"first video on disk after {fmt(run.startup_s or float('nan'), 2)} s."
        )
        if run.tool == "ours":
            lines.append(
                f"  - non-video bytes written: {run.nonvideo_bytes_window / 1024:.0f} KiB in the window "
                f"({run.nonvideo_pages_window / 1024:.0f} KiB of pages), "
                f"{(run.startup_wchar or 0) / 1024:.0f} KiB before the first video byte "
                f"({(run.startup_write_bytes or 0) / 1024:.0f} KiB of pages), "
                f"{run.shutdown_nonvideo_bytes / 1024:.0f} KiB after SIGTERM; non-video files at the end: "
                + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in run.nonvideo_files.items())
                + f"; index: {fmt(run.index.get('seconds', float('nan')))} s recorded, "
                f"{fmt(run.index.get('window_seconds', float('nan')))} s in the window."
            )
        for problem in run.problems[:20]:
            lines.append(f"  - problem: {problem}")
        if len(run.problems) > 20:
            lines.append(f"  - ... {len(run.problems) - 20} more problems (see the .json)")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "record_cpu.md").write_text(text, encoding="utf-8")
    data: dict[str, Any] = {
        "time": now,
        "command": sys.argv,
        "args": vars(args),
        "environment": env,
        "stream": {
            "file": video.name,
            "width": WIDTH,
            "height": HEIGHT,
            "fps": FPS,
            "gop": GOP,
            "bitrate": BITRATE,
        },
        "goals": {
            "cpu_ratio_max": CPU_RATIO_GOAL,
            "nonvideo_pct_max": NONVIDEO_PCT_GOAL,
            "rss_mib_max": f"{RSS_BASE_MIB} + {RSS_PER_CAMERA_MIB} x cameras",
            "coverage_min": COVERAGE_GOAL,
        },
        "table": [asdict(r) for r in rows],
        "runs": [r.as_dict() for r in runs],
    }
    for run_data in data["runs"]:
        run_data["index"].pop("paths", None)
    (RESULTS / "record_cpu.json").write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return text


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_cameras(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of camera counts, got {text!r}") from None
    if not values or any(v < 1 or v > 64 for v in values):
        raise argparse.ArgumentTypeError("camera counts must be between 1 and 64")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=parse_cameras, default=[1, 4, 8], help="Camera counts (default 1,4,8).")
    parser.add_argument("--seconds", type=float, default=60.0, help="Measurement window (default 60).")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds after launch before the window.")
    parser.add_argument("--ffmpeg", default="ffmpeg", help="ffmpeg binary (default: ffmpeg on PATH).")
    parser.add_argument(
        "--code",
        default="worktree",
        help="Agent code to measure: worktree (default: the checkout, as installed in .venv) or a git "
        "commit (e.g. HEAD), exported read-only to bench/work/code/.",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="Runs per camera count and tool, alternating which goes first; the table pools them "
        "(default 1). One camera's ratio scatters by about 7 %% run to run on a 2-core VM.",
    )
    args = parser.parse_args()
    if not 1 <= args.repeats <= 20:
        parser.error("--repeats must be 1..20")
    if args.seconds < 10 or args.seconds > 3600 or args.warmup < 1 or args.warmup > 60:
        parser.error("--seconds must be 10..3600 and --warmup 1..60")
    if shutil.which(args.ffmpeg) is None:
        parser.error(f"{args.ffmpeg} not found")

    # The stream outlasts the run by a margin, so no camera "ends" while it is measured.
    video = ensure_video(int(args.warmup + args.seconds + 10))
    code = agent_code(args.code)
    preflight = subprocess.run(
        [str(VENV_PYTHON), "-c", "import edge_agent.agent, edge_agent.cli"],
        capture_output=True,
        text=True,
        timeout=120,
        env=code.env,
        cwd=WORK,
    )
    if preflight.returncode != 0:
        print(f"the agent code ({args.code}) does not import:\n{preflight.stderr[-3000:]}", file=sys.stderr)
        return 2
    env = environment(args.ffmpeg)
    env["agent"] = code.describe
    runs: list[Run] = []
    rows: list[Row] = []
    try:
        for n in args.cameras:
            pairs: dict[str, list[Run]] = {"ours": [], "ffmpeg": []}
            for repeat in range(args.repeats):
                # Alternate who goes first, so a drift in the machine's load falls on both alike.
                order = ("ours", "ffmpeg") if repeat % 2 == 0 else ("ffmpeg", "ours")
                for tool in order:
                    work = WORK / "runs" / f"n{n}" / tool
                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir(parents=True)
                    os.sync()  # the previous run's dirty pages must not be written back during this one
                    time.sleep(1)
                    log(
                        f"{n} camera(s), {tool}, repeat {repeat + 1}/{args.repeats}: "
                        f"{args.warmup + args.seconds:.0f} s ..."
                    )
                    if tool == "ours":
                        run = run_ours(n, video, work, args.warmup, args.seconds, code)
                    else:
                        run = run_ffmpeg(n, video, work, args.warmup, args.seconds, args.ffmpeg)
                    log(
                        f"  CPU {run.cpu_window_s:.2f} s in {run.window_s:.1f} s, {run.recorded_s:.1f} video s, "
                        f"peak RSS {run.peak_rss_mib:.1f} MiB, {len(run.problems)} problem(s)"
                    )
                    runs.append(run)
                    pairs[tool].append(run)
            rows += summarise(pool(pairs["ours"]), pool(pairs["ffmpeg"]))
            if args.repeats > 1:
                rows.append(repeat_row(pairs["ours"], pairs["ffmpeg"]))
    finally:
        Child.kill_all()
    text = write_results(args, env, video, runs, rows)
    print(text)
    return 0 if all(r.result != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
