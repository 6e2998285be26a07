"""Hub ingest benchmark (issue 4): events/s into SQLite, bursts, publish-to-row latency, 1,000 agents.

Everything runs on 127.0.0.1 in one run, so the Mosquitto and embedded-broker figures share the
machine's state and can be compared:

1. ingest rate: P publisher processes (paho, QoS 1, a bounded in-flight window, one device topic
   each) send N `contract.Event`s as fast as the broker takes them to `diaolou-hub run` (a child
   process); a read-only SQLite reader polls the hub's `events` table every 0.1 s. Through
   Mosquitto (MQTT v5) and through the hub's embedded amqtt broker (MQTT 3.1.1).
   Backlog drain (Mosquitto only): N events published while the hub is stopped (its persistent
   session queues them), then the hub is started and the drain is timed.
   Burst (Mosquitto only): 200 simulated agents (one MQTT connection each, a few processes, each
   agent with the agent's own window of 20 unacknowledged events) publish 20,000 events between
   them as fast as they can; a read-only poll every 2 ms notes each commit that adds rows, and the
   time between two such commits is a commit pause (p50 / p99 / max).
2. latency: one publisher at a steady 100 events/s for 20 s; the event's `time` is the wall clock
   just before publish(); a reader polling every 2 ms notes when each row first becomes visible.
3. 1,000 simulated agents (few processes, one paho client per device driven by a selector loop):
   retained online status, QoS 0 heartbeats every 10 s; hub CPU and peak RSS and Mosquitto CPU
   over a 60 s steady-state window.

Prints a markdown table and writes bench/results/hub_ingest.md and .json. Method: bench/README.md.

    .venv/bin/python bench/hub_ingest.py [--events 50000] [--agents 1000] [--only rate,backlog,burst,latency,agents]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import heapq
import itertools
import json
import os
import platform
import random
import resource
import selectors
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "hub_ingest"
RESULTS = REPO / "bench" / "results"
HUB = REPO / ".venv" / "bin" / "diaolou-hub"
# --hub-code REV: the hub runs hub/ and contract/ as of that git revision (exported here and put
# first on its PYTHONPATH); everything else, the benchmark included, is the work tree's.
HUB_ENV: dict[str, str] | None = None
SITE = "bench"

CLK_TCK = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, str(REPO / "bench"))
from record_cpu import machine_cpu  # noqa: E402  (the benchmarks share their /proc readers)
from record_cpu import proc_cpu_seconds as _proc_cpu_seconds  # noqa: E402

MAX_LOG_LINES = 20_000

# Goals of the issue.
RATE_GOAL = 5_000.0  # events/s sustained through Mosquitto
P99_GOAL_MS = 50.0  # publish -> committed row at 100 events/s
BURST_RATE_GOAL = 10_000.0  # events/s from 200 agents at once through Mosquitto
BURST_PAUSE_GOAL_MS = 200.0  # p99 of the time between commits during that burst

KINDS = ("mosquitto", "embedded")
LABEL = {"mosquitto": "Mosquitto (v5)", "embedded": "embedded amqtt (v3.1.1)"}


# --- /proc ------------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a live process (all threads); None for no process."""
    return None if pid is None else _proc_cpu_seconds(pid)


def proc_status_kib(pid: int, key: str) -> int:
    """A Vm* line of /proc/<pid>/status in KiB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def proc_io(pid: int) -> dict[str, int]:
    """/proc/<pid>/io as {key: value} (empty if the process is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key.strip()] = int(value)
    return out


def self_cpu() -> float:
    """CPU seconds of this benchmark process (its pollers and log readers)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMark:
    """CPU counters at one instant: our processes by name, this process, the machine."""

    wall: float
    procs: dict[str, float]
    own: float
    machine: tuple[int, int]

    @staticmethod
    def take(pids: dict[str, int | None]) -> CpuMark:
        procs = {name: cpu for name, pid in pids.items() if (cpu := proc_cpu_seconds(pid)) is not None}
        return CpuMark(time.time(), procs, self_cpu(), machine_cpu())


def cpu_between(a: CpuMark, b: CpuMark) -> dict[str, Any]:
    """CPU % (100 = one core) of each process, of this process, of the machine, and of everything
    that is not ours (the background load), between two marks."""
    wall = max(b.wall - a.wall, 1e-9)
    procs = {n: 100 * (b.procs[n] - a.procs[n]) / wall for n in a.procs if n in b.procs}
    own = 100 * (b.own - a.own) / wall
    busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
    cores = os.cpu_count() or 1
    machine = 100 * busy / total if total else float("nan")  # of all cores
    ours_jiffies = (sum(procs.values()) + own) / 100 * wall * CLK_TCK
    others = 100 * max(busy - ours_jiffies, 0) / total if total else float("nan")
    return {
        "window_s": wall,
        "cpu_pct": procs,
        "bench_pct": own,
        "machine_busy_pct": machine,
        "others_busy_pct": others,
        "cores": cores,
    }


# --- child processes --------------------------------------------------------------------------
class Child:
    """A child process in its own session, output logged with arrival times, stdin optionally a pipe."""

    live: ClassVar[dict[int, Child]] = {}  # every child not reaped yet, for cleanup on errors

    def __init__(
        self, name: str, argv: list[str], log_path: Path, stdin: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.lines: list[tuple[float, str]] = []
        self.exit_code: int | None = None
        self.killed = False
        self.cpu_total: float | None = None
        self.hwm_kib = 0
        self._cond = threading.Condition()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w", encoding="utf-8")
        self.popen = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
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
            now = time.time()
            self._log.write(line)
            self._log.flush()
            with self._cond:
                if len(self.lines) < MAX_LOG_LINES:
                    self.lines.append((now, line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def find(self, needle: str) -> tuple[float, str] | None:
        with self._cond:
            return next(((t, s) for t, s in self.lines if needle in s), None)

    def wait_line(self, needle: str, timeout: float) -> tuple[float, str]:
        """The first output line containing `needle`; RuntimeError after `timeout` or if the child exits."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next(((t, s) for t, s in self.lines if needle in s), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.exited():
                    tail = " | ".join(s for _, s in self.lines[-8:])
                    state = "timed out" if left <= 0 else "exited"
                    raise RuntimeError(f"{self.name} {state} waiting for {needle!r}: {tail}")
                self._cond.wait(min(left, 0.2))

    def exited(self) -> bool:
        """Without reaping it (Popen.poll() would), so reap() can still read its CPU time."""
        if self.exit_code is not None:
            return True
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None

    def send(self, line: str) -> None:
        if self.popen.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                self.popen.stdin.write(line + "\n")
                self.popen.stdin.flush()

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.exit_code is None else self.cpu_total

    def sample_memory(self) -> None:
        if self.exit_code is None:
            self.hwm_kib = max(self.hwm_kib, proc_status_kib(self.pid, "VmHWM"))

    def signal(self, sig: signal.Signals) -> None:
        if self.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def reap(self, timeout: float) -> int:
        """Wait for the exit (SIGKILL after `timeout`) and reap it; returns the exit code."""
        if self.exit_code is not None:
            return self.exit_code
        self.sample_memory()
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > deadline:
                if self.killed:
                    raise RuntimeError(f"{self.name} (pid {self.pid}) survives SIGKILL")
                self.killed = True
                self.signal(signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.05)
        _, status, usage = os.wait4(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.exit_code
        self.cpu_total = usage.ru_utime + usage.ru_stime
        Child.live.pop(self.pid, None)
        self._reader.join(5)
        for stream in (self.popen.stdout, self.popen.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()
        return self.exit_code

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        return self.reap(timeout)

    def problems(self) -> list[str]:
        marks = (" ERROR ", " WARNING ", " CRITICAL ", "Traceback", "Error:")
        with self._cond:
            return [s for _, s in self.lines if any(m in s for m in marks)]

    @classmethod
    def kill_all(cls) -> None:
        for child in list(cls.live.values()):
            child.signal(signal.SIGTERM)
        for child in list(cls.live.values()):
            with contextlib.suppress(Exception):
                child.reap(5)


# --- brokers and the hub ----------------------------------------------------------------------
@dataclass
class Setup:
    """A broker and a hub config pointing at it."""

    kind: str
    work: Path
    port: int
    protocol: str
    broker_pid: int | None  # Mosquitto's pid; None for the embedded broker (it is inside the hub)
    config_path: Path

    @property
    def db_path(self) -> Path:
        return self.work / "data" / "hub.db"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_config_text(kind: str, work: Path, port: int) -> str:
    lines = [
        f"data_dir: {json.dumps(str(work / 'data'))}",
        f"listen: 127.0.0.1:{_free_port()}",
        "mqtt:",
        f"  url: mqtt://127.0.0.1:{port}",
        f"  protocol: {'v5' if kind == 'mosquitto' else 'v311'}",
        "  client_id: bench-hub",
    ]
    if kind == "embedded":
        lines += ["embedded_broker:", "  enabled: true", "  host: 127.0.0.1", f"  port: {port}"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def setup(kind: str, work: Path) -> Iterator[Setup]:
    """A fresh work directory and (for Mosquitto) a fresh broker from tests/support/brokers.py.
    The embedded broker starts with the hub."""
    from tests.support.brokers import Broker, free_port

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    broker = None
    try:
        if kind == "mosquitto":
            broker = Broker("mosquitto", work / "broker").start()
            port, pid = broker.port, broker.proc.pid if broker.proc else None
        else:
            port, pid = free_port(), None
        config = work / "hub.yaml"
        config.write_text(hub_config_text(kind, work, port), encoding="utf-8")
        yield Setup(kind, work, port, "v5" if kind == "mosquitto" else "v311", pid, config)
    finally:
        Child.kill_all()  # publishers, agents, the hub: before their broker goes
        if broker is not None:
            broker.stop()


def start_hub(s: Setup, name: str = "hub", wait: bool = True) -> Child:
    hub = Child(name, [str(HUB), "run", "--config", str(s.config_path)], s.work / f"{name}.log", env=HUB_ENV)
    if wait:
        hub.wait_line("subscribed to", 60)
    return hub


def hub_stats(hub: Child) -> dict[str, Any]:
    """The counters the hub logs when it stops (`ingest stopped: {...}`)."""
    found = hub.find("ingest stopped: ")
    if found is None:
        return {}
    try:
        value = ast.literal_eval(found[1].split("ingest stopped: ", 1)[1])
    except (ValueError, SyntaxError):
        return {}
    return value if isinstance(value, dict) else {}


def stop_hub(hub: Child, problems: list[str]) -> dict[str, Any]:
    code = hub.stop(30)
    if code != 0:
        problems.append(f"{hub.name} exit code {code}" + (" (SIGKILLed after 30 s)" if hub.killed else ""))
    problems += [f"{hub.name} log: {line}" for line in hub.problems()[:10]]
    stats = hub_stats(hub)
    for key in ("rejected", "uncommitted"):
        if stats.get(key):
            problems.append(f"{hub.name}: {key} = {stats[key]} ({stats.get('by_cause') or ''})")
    return stats


def reader(db_path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """A read-only connection to the hub's database (WAL: it never blocks the hub's writer)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
            conn.execute("SELECT 1 FROM events LIMIT 1")
            return conn
        except sqlite3.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def max_rowid(conn: sqlite3.Connection) -> int:
    """Rows in `events` so far: rowids grow by one per inserted row (no deletes), and a max() on the
    rowid is a single b-tree lookup, unlike count(*)."""
    return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0])


def check_events(conn: sqlite3.Connection, expected: int) -> dict[str, Any]:
    """Stored vs sent, duplicates, and order per device (ids are time-ordered per publisher)."""
    rows = conn.execute("SELECT device, id FROM events ORDER BY rowid").fetchall()
    last: dict[str, str] = {}
    out_of_order = 0
    for device, event_id in rows:
        if device in last and event_id <= last[device]:
            out_of_order += 1
        last[device] = event_id
    distinct = int(conn.execute("SELECT count(DISTINCT id) FROM events").fetchone()[0])
    return {
        "expected": expected,
        "stored": len(rows),
        "distinct_ids": distinct,
        "lost": max(expected - distinct, 0),
        "extra": max(len(rows) - expected, 0),
        "out_of_order": out_of_order,
        "devices": len(last),
    }


def worker(name: str, spec: dict[str, Any], work: Path) -> Child:
    argv = [sys.executable, str(Path(__file__).resolve()), "_worker", json.dumps(spec)]
    return Child(name, argv, work / f"{name}.log", stdin=True)


def worker_result(child: Child, timeout: float, problems: list[str]) -> dict[str, Any]:
    try:
        _, line = child.wait_line("result ", timeout)
        result: dict[str, Any] = json.loads(line.split("result ", 1)[1])
    except (RuntimeError, json.JSONDecodeError) as exc:
        problems.append(f"{child.name}: no result: {exc}")
        result = {}
    code = child.reap(15)
    if code != 0:
        problems.append(f"{child.name} exit code {code}")
    for err in result.get("errors", []):
        problems.append(f"{child.name}: {err}")
    return result


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- 1. ingest rate and backlog ---------------------------------------------------------------
def publishers(s: Setup, n_events: int, count: int, window: int, tag: str) -> list[Child]:
    """`count` publisher processes, each posing as its own device, splitting `n_events` between them."""
    children = []
    for i in range(count):
        share = n_events // count + (1 if i < n_events % count else 0)
        spec = {
            "mode": "publish",
            "port": s.port,
            "protocol": s.protocol,
            "client_id": f"bench-{tag}-pub{i}",
            "device": f"{tag}-pub{i}",
            "count": share,
            "window": window,
            "rate": 0,
            "max_seconds": 300,
        }
        children.append(worker(f"{tag}-pub{i}", spec, s.work))
    for child in children:
        child.wait_line("ready", 60)
    return children


def rate_profile(timeline: list[tuple[float, int]], total: int) -> dict[str, Any]:
    """Sustained rate between 10 % and 90 % of the events (interpolated: no start-up, no tail),
    the slowest and fastest 1-s stretch in between, and the longest pause without a new row
    between the first row and the last (a stall)."""

    def crossing(level: float) -> float | None:
        for (t0, c0), (t1, c1) in itertools.pairwise(timeline):
            if c1 >= level:
                return t0 if c1 == c0 else t0 + (t1 - t0) * (level - c0) / (c1 - c0)
        return None

    lo, hi = crossing(0.1 * total), crossing(0.9 * total)
    out: dict[str, Any] = {"sustained": float("nan"), "slowest_1s": float("nan"), "fastest_1s": float("nan")}
    changes = [timeline[0][0]] + [t1 for (_, c0), (t1, c1) in itertools.pairwise(timeline) if c1 > c0]
    first_row = next((i for i, (_, c) in enumerate(timeline) if c > 0), None)
    if first_row is not None and len(changes) > 2:
        # between sample times at which the count rose: the pause is at least this minus one poll interval
        out["longest_pause_s"] = max(b - a for a, b in itertools.pairwise(changes[1:]))
    if lo is None or hi is None or hi <= lo:
        return out
    out["sustained"] = 0.8 * total / (hi - lo)
    inside = [(t, c) for t, c in timeline if lo <= t <= hi]
    stretches = []
    j = 0
    for t, c in inside:
        while j < len(inside) and inside[j][0] < t + 1.0:
            j += 1
        if j < len(inside):
            stretches.append((inside[j][1] - c) / (inside[j][0] - t))
    if stretches:
        out["slowest_1s"], out["fastest_1s"] = min(stretches), max(stretches)
    out["window"] = [lo, hi]
    return out


def flag_stall(res: dict[str, Any], problems: list[str]) -> None:
    pause = res.get("longest_pause_s", 0.0)
    if pause >= 0.5:
        problems.append(f"stall: no new row for {pause:.1f} s (+- one poll interval) while events were outstanding")


def scenario_rate(kind: str, n_events: int, n_pub: int, window: int) -> dict[str, Any]:
    res: dict[str, Any] = {"scenario": "rate", "broker": kind, "events": n_events, "publishers": n_pub}
    problems: list[str] = res.setdefault("problems", [])
    with setup(kind, WORK / f"rate-{kind}") as s:
        hub = start_hub(s)
        pubs = publishers(s, n_events, n_pub, window, "rate")
        conn = reader(s.db_path)
        pids = {"hub": hub.pid, "broker": s.broker_pid} | {p.name: p.pid for p in pubs}
        mark0 = CpuMark.take(pids)
        for p in pubs:
            p.send("go")
        timeline = [(mark0.wall, max_rowid(conn))]
        deadline = time.monotonic() + 60 + n_events / 500  # a floor of 500 events/s, then give up
        last_progress = time.monotonic()
        while timeline[-1][1] < n_events and time.monotonic() < deadline:
            time.sleep(0.1)
            count = max_rowid(conn)
            if count > timeline[-1][1]:
                last_progress = time.monotonic()
            timeline.append((time.time(), count))
            hub.sample_memory()
            if time.monotonic() - last_progress > 20:
                problems.append(f"no progress for 20 s at {count} of {n_events} events: gave up")
                break
        mark1 = CpuMark.take(pids)
        results = [worker_result(p, 60, problems) for p in pubs]
        res["timeline"] = [(round(t - mark0.wall, 3), c) for t, c in timeline]
        res["publishers_detail"] = results
        acked = sum(r.get("acked", 0) for r in results)
        done = next((t for t, c in timeline if c >= n_events), None)
        res["seconds_to_all"] = (done - mark0.wall) if done is not None else float("nan")
        res["overall_rate"] = n_events / res["seconds_to_all"] if done is not None else float("nan")
        res |= rate_profile(timeline, n_events)
        flag_stall(res, problems)
        pub_end = max((r.get("t_last_ack", 0.0) for r in results), default=0.0)
        res["publish_rate"] = acked / (pub_end - mark0.wall) if pub_end > mark0.wall else float("nan")
        res["cpu"] = cpu_between(mark0, mark1)
        hub_cpu = mark1.procs.get("hub", 0.0) - mark0.procs.get("hub", 0.0)
        broker_cpu = mark1.procs.get("broker", 0.0) - mark0.procs.get("broker", 0.0)
        res["hub_cpu_s_per_10k"] = 1e4 * hub_cpu / max(timeline[-1][1], 1)
        res["broker_cpu_s_per_10k"] = 1e4 * broker_cpu / max(timeline[-1][1], 1) if s.broker_pid else None
        time.sleep(0.5)  # anything the broker still had in flight
        res["check"] = check_events(conn, acked)
        conn.close()
        res["hub_peak_rss_mib"] = hub.hwm_kib / 1024
        res["hub_stats"] = stop_hub(hub, problems)
        add_check_problems(res["check"], problems, acked, n_events)
        stats = res["hub_stats"]
        if stats.get("commits"):
            res["events_per_commit"] = stats.get("stored", 0) / stats["commits"]
    return res


def add_check_problems(check: dict[str, Any], problems: list[str], acked: int, sent: int) -> None:
    if acked != sent:
        problems.append(f"the broker acknowledged {acked} of {sent} events")
    if check["lost"]:
        problems.append(f"{check['lost']} acknowledged events missing from the hub's database")
    if check["extra"] or check["stored"] != check["distinct_ids"]:
        problems.append(f"{check['stored']} rows for {check['distinct_ids']} ids (duplicates)")
    if check["out_of_order"]:
        problems.append(f"{check['out_of_order']} events stored out of order per device")


def scenario_backlog(n_events: int, n_pub: int, window: int) -> dict[str, Any]:
    """Mosquitto only: the embedded broker lives in the hub process, so its queue dies with the hub."""
    res: dict[str, Any] = {"scenario": "backlog", "broker": "mosquitto", "events": n_events}
    problems: list[str] = res.setdefault("problems", [])
    with setup("mosquitto", WORK / "backlog-mosquitto") as s:
        first = start_hub(s, "hub-first")  # creates the database, the session and its subscriptions
        stop_hub(first, problems)
        pubs = publishers(s, n_events, n_pub, window, "backlog")
        t_pub = time.time()
        for p in pubs:
            p.send("go")
        results = [worker_result(p, 120, problems) for p in pubs]
        acked = sum(r.get("acked", 0) for r in results)
        res["queue_seconds"] = max((r.get("t_last_ack", t_pub) for r in results), default=t_pub) - t_pub
        time.sleep(1.5)  # Mosquitto's autosave_interval is 1 s; nothing depends on it, but be fair
        conn = reader(s.db_path)
        if max_rowid(conn):
            problems.append("rows arrived while the hub was stopped")
        mark0 = CpuMark.take({"broker": s.broker_pid})
        hub = start_hub(s, "hub", wait=False)
        timeline = [(mark0.wall, 0)]
        deadline = time.monotonic() + 60 + n_events / 500
        while timeline[-1][1] < acked and time.monotonic() < deadline:
            time.sleep(0.05)
            timeline.append((time.time(), max_rowid(conn)))
        mark1 = CpuMark.take({"broker": s.broker_pid, "hub": hub.pid})
        mark0.procs["hub"] = 0.0  # the hub started after mark0
        res["timeline"] = [(round(t - mark0.wall, 3), c) for t, c in timeline[::4]]
        first_row = next((t for t, c in timeline if c > 0), None)
        done = next((t for t, c in timeline if c >= acked), None)
        connected = hub.find("connected (session present")
        res["session_present"] = bool(connected and "True" in connected[1])
        res["hub_connected_s"] = connected[0] - mark0.wall if connected else float("nan")
        res["first_row_s"] = first_row - mark0.wall if first_row else float("nan")
        res["all_rows_s"] = done - mark0.wall if done else float("nan")
        res |= rate_profile(timeline, acked)
        flag_stall(res, problems)
        res["cpu"] = cpu_between(mark0, mark1)
        time.sleep(0.5)
        res["check"] = check_events(conn, acked)
        conn.close()
        res["hub_stats"] = stop_hub(hub, problems)
        add_check_problems(res["check"], problems, acked, n_events)
        if not res["session_present"]:
            problems.append("the hub's session was not resumed (session present: False)")
    return res


def commit_pauses(times: list[float]) -> dict[str, float]:
    """Gaps between successive commits that added rows (each seen by the fast poll), from the first
    new row to the last: while events were outstanding the hub stored nothing for this long."""
    gaps = [1000 * (b - a) for a, b in itertools.pairwise(times)]
    return {
        "p50_ms": percentile(gaps, 50),
        "p99_ms": percentile(gaps, 99),
        "max_ms": max(gaps, default=float("nan")),
        "n": len(gaps),
    }


def scenario_burst(n_events: int, n_agents: int, n_procs: int, window: int, poll_s: float) -> dict[str, Any]:
    """Mosquitto only: `n_agents` simulated agents (one MQTT connection each, like real boxes) publish
    `n_events` between them as fast as they can, each with at most `window` unacknowledged (the
    agent's own window). A read-only poll every `poll_s` notes each commit that added rows."""
    res: dict[str, Any] = {
        "scenario": "burst",
        "broker": "mosquitto",
        "events": n_events,
        "agents": n_agents,
        "processes": n_procs,
        "agent_window": window,
        "poll_s": poll_s,
    }
    problems: list[str] = res.setdefault("problems", [])
    with setup("mosquitto", WORK / "burst-mosquitto") as s:
        hub = start_hub(s)
        sims = []
        per_agent = [n_events // n_agents + (1 if i < n_events % n_agents else 0) for i in range(n_agents)]
        first = 0
        for i in range(n_procs):
            share = n_agents // n_procs + (1 if i < n_agents % n_procs else 0)
            spec = {
                "mode": "burst",
                "port": s.port,
                "protocol": s.protocol,
                "first": first,
                "events": per_agent[first : first + share],
                "window": window,
                "max_seconds": 300,
            }
            sims.append(worker(f"burst{i}", spec, s.work))
            first += share
        for sim in sims:
            sim.wait_line("ready", 120)
        conn = reader(s.db_path)
        pids = {"hub": hub.pid, "broker": s.broker_pid} | {sim.name: sim.pid for sim in sims}
        mark0 = CpuMark.take(pids)
        for sim in sims:
            sim.send("go")
        timeline = [(mark0.wall, max_rowid(conn))]
        commits: list[float] = []
        deadline = time.monotonic() + 60 + n_events / 500
        last_progress = time.monotonic()
        while timeline[-1][1] < n_events and time.monotonic() < deadline:
            time.sleep(poll_s)
            now, count = time.time(), max_rowid(conn)
            if count > timeline[-1][1]:
                commits.append(now)
                last_progress = time.monotonic()
                timeline.append((now, count))
            if time.monotonic() - last_progress > 20:
                problems.append(f"no progress for 20 s at {count} of {n_events} events: gave up")
                break
        hub.sample_memory()
        mark1 = CpuMark.take(pids)
        results = [worker_result(sim, 60, problems) for sim in sims]
        acked = sum(r.get("acked", 0) for r in results)
        res["simulators"] = results
        res["timeline"] = [(round(t - mark0.wall, 3), c) for t, c in timeline]
        done = next((t for t, c in timeline if c >= n_events), None)
        res["seconds_to_all"] = (done - mark0.wall) if done is not None else float("nan")
        res["overall_rate"] = n_events / res["seconds_to_all"] if done is not None else float("nan")
        res |= rate_profile(timeline, n_events)
        res["commit_pause"] = commit_pauses(commits)
        pub_end = max((r.get("t_last_ack", 0.0) for r in results), default=0.0)
        res["publish_rate"] = acked / (pub_end - mark0.wall) if pub_end > mark0.wall else float("nan")
        res["cpu"] = cpu_between(mark0, mark1)
        time.sleep(0.5)  # anything the broker still had in flight
        res["check"] = check_events(conn, acked)
        conn.close()
        res["hub_peak_rss_mib"] = hub.hwm_kib / 1024
        res["hub_stats"] = stop_hub(hub, problems)
        add_check_problems(res["check"], problems, acked, n_events)
        stats = res["hub_stats"]
        if stats.get("commits"):
            res["events_per_commit"] = stats.get("stored", 0) / stats["commits"]
        if res["check"]["devices"] != n_agents:
            problems.append(f"events from {res['check']['devices']} of {n_agents} agents stored")
    return res


# --- 2. latency ---------------------------------------------------------------------------------
def scenario_latency(kind: str, rate: float, seconds: float, poll_s: float) -> dict[str, Any]:
    count = int(rate * seconds)
    res: dict[str, Any] = {"scenario": "latency", "broker": kind, "rate": rate, "events": count, "poll_s": poll_s}
    problems: list[str] = res.setdefault("problems", [])
    with setup(kind, WORK / f"latency-{kind}") as s:
        hub = start_hub(s)
        spec = {
            "mode": "publish",
            "port": s.port,
            "protocol": s.protocol,
            "client_id": "bench-latency-pub",
            "device": "latency-pub",
            "count": count,
            "window": 100,
            "rate": rate,
            "max_seconds": seconds + 120,
        }
        pub = worker("latency-pub", spec, s.work)
        pub.wait_line("ready", 60)
        conn = reader(s.db_path)
        pids = {"hub": hub.pid, "broker": s.broker_pid, "publisher": pub.pid}
        mark0 = CpuMark.take(pids)
        pub.send("go")
        committed: list[float] = []
        received: list[float] = []
        in_hub: list[float] = []
        last = 0
        deadline = time.monotonic() + seconds + 30
        while len(committed) < count and time.monotonic() < deadline:
            t_query = time.time()  # a row seen now was committed before this query's snapshot
            rows = conn.execute(
                "SELECT rowid, time, received FROM events WHERE rowid > ? ORDER BY rowid", (last,)
            ).fetchall()
            for rowid, sent, got in rows:
                committed.append(1000 * (t_query - sent))
                received.append(1000 * (got - sent))
                in_hub.append(1000 * (t_query - got))
                last = rowid
            time.sleep(poll_s)
        mark1 = CpuMark.take(pids)
        result = worker_result(pub, 60, problems)
        acked = result.get("acked", 0)
        res["publisher"] = result
        for name, values in (("committed", committed), ("received", received), ("in_hub", in_hub)):
            res[name] = {
                "p50_ms": percentile(values, 50),
                "p99_ms": percentile(values, 99),
                "max_ms": max(values, default=float("nan")),
                "n": len(values),
            }
        res["slowest_ms"] = sorted(committed)[-5:]
        res["cpu"] = cpu_between(mark0, mark1)
        res["check"] = check_events(conn, acked)
        conn.close()
        res["hub_stats"] = stop_hub(hub, problems)
        add_check_problems(res["check"], problems, acked, count)
        if result.get("late_max_ms", 0) > 20:
            problems.append(f"the publisher fell up to {result['late_max_ms']:.0f} ms behind its schedule")
    return res


# --- 3. 1,000 agents ------------------------------------------------------------------------------
def scenario_agents(n_agents: int, n_procs: int, heartbeat_s: float, seconds: float) -> dict[str, Any]:
    res: dict[str, Any] = {
        "scenario": "agents",
        "broker": "mosquitto",
        "agents": n_agents,
        "processes": n_procs,
        "heartbeat_s": heartbeat_s,
        "window_s": seconds,
    }
    problems: list[str] = res.setdefault("problems", [])
    with setup("mosquitto", WORK / "agents-mosquitto") as s:
        hub = start_hub(s)
        sims = []
        for i in range(n_procs):
            share = n_agents // n_procs + (1 if i < n_agents % n_procs else 0)
            first = i * (n_agents // n_procs) + min(i, n_agents % n_procs)
            spec = {
                "mode": "agents",
                "port": s.port,
                "protocol": s.protocol,
                "first": first,
                "count": share,
                "heartbeat_s": heartbeat_s,
                "keepalive": 30,
                "max_seconds": seconds + 300,
                "seed": i,
            }
            sims.append(worker(f"agents{i}", spec, s.work))
        t0 = time.time()
        for sim in sims:
            sim.wait_line("ready", 120)
        res["connect_all_s"] = time.time() - t0
        conn = reader(s.db_path)

        def online() -> int:
            return int(conn.execute("SELECT count(*) FROM devices WHERE state = 'online'").fetchone()[0])

        deadline = time.monotonic() + 60
        while online() < n_agents and time.monotonic() < deadline:
            time.sleep(0.5)
        res["online_after_connect"] = online()
        res["online_all_s"] = time.time() - t0
        time.sleep(heartbeat_s + 2)  # every agent has sent a heartbeat: steady state
        pids = {"hub": hub.pid, "broker": s.broker_pid} | {sim.name: sim.pid for sim in sims}
        mark0 = CpuMark.take(pids)
        io0 = proc_io(hub.pid)
        rss_kib: list[int] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(end - time.monotonic(), 0)))
            hub.sample_memory()
            rss_kib.append(proc_status_kib(hub.pid, "VmRSS"))
        mark1 = CpuMark.take(pids)
        io1 = proc_io(hub.pid)
        t_end = time.time()
        res["hub_io_per_s"] = {k: (io1.get(k, 0) - io0.get(k, 0)) / seconds for k in ("write_bytes", "syscw")}
        res["cpu"] = cpu_between(mark0, mark1)
        res["hub_cpu_pct"] = res["cpu"]["cpu_pct"].get("hub", float("nan"))
        res["broker_cpu_pct"] = res["cpu"]["cpu_pct"].get("broker", float("nan"))
        res["simulators_cpu_pct"] = sum(v for k, v in res["cpu"]["cpu_pct"].items() if k.startswith("agents"))
        res["hub_peak_rss_mib"] = hub.hwm_kib / 1024
        res["hub_rss_start_end_mib"] = [rss_kib[0] / 1024, rss_kib[-1] / 1024] if rss_kib else []
        res["broker_rss_mib"] = proc_status_kib(s.broker_pid, "VmRSS") / 1024 if s.broker_pid else None
        row = conn.execute(
            "SELECT count(*), sum(state = 'online'), sum(heartbeat_time >= ?), sum(last_seen >= ?) FROM devices",
            (t_end - heartbeat_s - 2, t_end - heartbeat_s - 2),
        ).fetchone()
        res["devices"] = {
            "rows": row[0],
            "online": row[1] or 0,
            "recent_heartbeat": row[2] or 0,
            "recent_last_seen": row[3] or 0,
        }
        conn.close()
        for sim in sims:
            sim.send("stop")
        sim_results = [worker_result(sim, 60, problems) for sim in sims]
        res["simulators"] = sim_results
        beats = sum(r.get("beats", 0) for r in sim_results)
        res["heartbeats_sent"] = beats
        res["hub_stats"] = stop_hub(hub, problems)
        stats = res["hub_stats"]
        res["hub_received"] = stats.get("received", 0)  # statuses + heartbeats
        res["commits_per_message"] = stats["commits"] / stats["received"] if stats.get("received") else None
        res["messages_sent"] = n_agents + beats
        dev = res["devices"]
        if dev["online"] != n_agents:
            problems.append(f"{dev['online']} of {n_agents} devices online in the hub's devices table")
        if dev["recent_heartbeat"] != n_agents:
            problems.append(f"{dev['recent_heartbeat']} of {n_agents} devices had a heartbeat in the last period")
        late = max((r.get("late_max_ms", 0.0) for r in sim_results), default=0.0)
        res["simulator_late_max_ms"] = late
        if late > 1000:
            problems.append(f"a simulator fell {late:.0f} ms behind its heartbeat schedule")
        drops = sum(r.get("disconnects", 0) for r in sim_results)
        if drops:
            problems.append(f"{drops} simulated agents were disconnected")
    return res


# --- workers (run in child processes) ---------------------------------------------------------
def make_event(now: float, n: int) -> bytes:
    from contract import Event, SnapshotRef, encode
    from edge_agent.events.ids import new_event_id

    event_id = new_event_id(now)
    return encode(
        Event(
            id=event_id,
            kind="person",
            phase="new",
            camera="cam1",
            time=now,
            detail={"score": 0.87, "box": [412, 188, 96, 240], "zone": "door", "n": n},
            snapshot=SnapshotRef(path=f"snapshots/cam1/{event_id}.jpg"),
        )
    )


def worker_publish(spec: dict[str, Any]) -> int:
    """One device publishing events at QoS 1: as fast as the broker acknowledges them with at most
    `window` unacknowledged (rate 0), or at a steady `rate` per second. Single-threaded: paho is
    driven by client.loop(). Prints `ready` once connected, waits for `go` on stdin, and ends with
    `result {json}`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from contract import topic

    v5 = spec["protocol"] == "v5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=spec["client_id"],
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
    )
    state: dict[str, Any] = {"connected": False, "acked": 0, "failed": 0, "receive_maximum": None, "errors": []}

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            state["errors"].append(f"connect refused: {reason}")
            return
        state["connected"] = True
        state["receive_maximum"] = getattr(props, "ReceiveMaximum", None) if props is not None else None

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: Any, props: Any) -> None:
        if reason is not None and reason.is_failure:
            state["failed"] += 1
        else:
            state["acked"] += 1

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.max_inflight_messages_set(spec["window"])  # only before connecting; the loop below keeps to `window`
    client.max_queued_messages_set(0)
    deadline = time.monotonic() + spec["max_seconds"]
    client.connect("127.0.0.1", spec["port"], keepalive=60)
    while not state["connected"] and time.monotonic() < deadline and not state["errors"]:
        client.loop(0.05)
    if not state["connected"]:
        print("result " + json.dumps({"errors": state["errors"] or ["not connected"]}), flush=True)
        return 3
    # paho does not honour the broker's receive maximum by itself: exceeding it is a protocol error.
    window = min(spec["window"], state["receive_maximum"] or spec["window"])
    count, rate = int(spec["count"]), float(spec["rate"])
    t_topic = topic(SITE, spec["device"], "event")
    payloads = [make_event(time.time(), i) for i in range(count)] if rate == 0 else []
    print(f"ready window={window}", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 4
    t_go = time.time()
    sent = 0
    late_max = 0.0
    while state["acked"] + state["failed"] < count and time.monotonic() < deadline:
        if rate == 0:
            while sent < count and sent - state["acked"] - state["failed"] < window:
                info = client.publish(t_topic, payloads[sent], qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    state["errors"].append(f"publish rc {info.rc}")
                    return 5
                sent += 1
            client.loop(0.01)
        else:
            due = t_go + sent / rate
            now = time.time()
            if sent < count and now >= due:
                late_max = max(late_max, now - due)
                client.publish(t_topic, make_event(time.time(), sent), qos=1)
                sent += 1
            else:
                client.loop(min(max(due - now, 0.0), 0.005) if sent < count else 0.01)
    t_last_ack = time.time()
    result = {
        "sent": sent,
        "acked": state["acked"],
        "failed": state["failed"],
        "window": window,
        "receive_maximum": state["receive_maximum"],
        "t_go": t_go,
        "t_last_ack": t_last_ack,
        "rate": state["acked"] / max(t_last_ack - t_go, 1e-9),
        "late_max_ms": 1000 * late_max,
        "errors": state["errors"],
    }
    client.disconnect()
    client.loop(0.1)
    print("result " + json.dumps(result), flush=True)
    return 0


def heartbeat(now: float, started: float, rng: random.Random) -> bytes:
    from contract import CameraHealth, Heartbeat, encode

    cameras = [
        CameraHealth(
            camera=f"cam{i}",
            state="online",
            fps=5.0,
            dropped_packets=0,
            recording=True,
            last_segment_end=now - rng.random() * 10,
        )
        for i in (1, 2)
    ]
    return encode(
        Heartbeat(
            time=now,
            uptime_seconds=round(now - started, 3),
            cpu_percent=round(rng.uniform(5, 40), 1),
            memory_mb=round(rng.uniform(80, 160), 1),
            disk_free_bytes=rng.randrange(10**10, 10**11),
            disk_total_bytes=128 * 10**9,
            temperature_c=round(rng.uniform(40, 70), 1),
            cameras=cameras,
        )
    )


def worker_agents(spec: dict[str, Any]) -> int:
    """`count` agents in one thread: one paho client each (no network threads), all sockets in one
    selector. Each connects with its last will (offline, retained), publishes a retained online
    status at QoS 1, then a QoS 0 heartbeat every `heartbeat_s` (phases spread at random). Prints
    `ready` once every status is acknowledged; `stop` on stdin disconnects them all."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from contract import Status, encode, topic

    rng = random.Random(spec["seed"])
    v5 = spec["protocol"] == "v5"
    hb = float(spec["heartbeat_s"])
    count = int(spec["count"])
    started = time.time()
    deadline = time.monotonic() + spec["max_seconds"]
    sel = selectors.DefaultSelector()
    clients: list[mqtt.Client] = []
    sockets: dict[int, socket.socket] = {}
    devices = [f"a{spec['first'] + i:05d}" for i in range(count)]
    state: dict[str, Any] = {"connected": 0, "status_acked": 0, "disconnects": 0, "beats": 0, "errors": []}
    dropped: list[int] = []
    status_mids: set[tuple[int, int]] = set()  # (client, mid) of the online statuses not yet acknowledged

    def on_connect(c: mqtt.Client, idx: int, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            state["errors"].append(f"{devices[idx]}: connect refused: {reason}")
            return
        state["connected"] += 1
        status = Status(state="online", time=time.time(), agent_version="bench", cameras=["cam1", "cam2"])
        info = c.publish(topic(SITE, devices[idx], "status"), encode(status), qos=1, retain=True)
        status_mids.add((idx, info.mid))

    def on_publish(c: mqtt.Client, idx: int, mid: int, reason: Any, props: Any) -> None:
        if (idx, mid) in status_mids:  # QoS 0 heartbeats report here too, as soon as they are written
            status_mids.discard((idx, mid))
            state["status_acked"] += 1

    def on_disconnect(c: mqtt.Client, idx: int, flags: Any, reason: Any, props: Any) -> None:
        if not state.get("stopping"):
            state["disconnects"] += 1
            dropped.append(idx)

    for i, device in enumerate(devices):
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-agent-{device}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
            userdata=i,
        )
        will = Status(state="offline", time=time.time(), clean=False)
        c.will_set(topic(SITE, device, "status"), encode(will), qos=1, retain=True)
        c.on_connect = on_connect
        c.on_publish = on_publish
        c.on_disconnect = on_disconnect
        c.connect("127.0.0.1", spec["port"], keepalive=spec["keepalive"])
        sock = c.socket()
        if not isinstance(sock, socket.socket):
            print("result " + json.dumps({"errors": [f"{device}: no socket after connect"]}), flush=True)
            return 3
        sockets[i] = sock
        sel.register(sock, selectors.EVENT_READ, i)
        clients.append(c)
    sel.register(sys.stdin, selectors.EVENT_READ, -1)

    beats: list[tuple[float, int]] = [(time.time() + rng.random() * hb, i) for i in range(count)]
    heapq.heapify(beats)
    next_misc = time.time() + 1.0
    ready = False
    late_max = 0.0
    stop = False
    while not stop and time.monotonic() < deadline:
        now = time.time()
        timeout = max(min(beats[0][0], next_misc) - now, 0.0) if beats else 0.5
        for key, _ in sel.select(min(timeout, 0.5)):
            idx = key.data
            if idx == -1:
                if sys.stdin.readline().strip() in ("stop", ""):
                    stop = True
                continue
            c = clients[idx]
            c.loop_read()
            if c.want_write():
                c.loop_write()
        for idx in dropped:
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(sockets[idx])
        dropped.clear()
        now = time.time()
        while beats and beats[0][0] <= now:
            due, idx = heapq.heappop(beats)
            c = clients[idx]
            if c.is_connected():
                late_max = max(late_max, now - due) if ready else late_max
                c.publish(topic(SITE, devices[idx], "heartbeat"), heartbeat(now, started, rng), qos=0)
                state["beats"] += 1
                if c.want_write():
                    c.loop_write()
            heapq.heappush(beats, (due + hb, idx))
        if now >= next_misc:
            for c in clients:
                c.loop_misc()  # keepalive pings
                if c.want_write():
                    c.loop_write()
            next_misc = now + 1.0
        if not ready and state["status_acked"] == count:
            ready = True
            state["t_ready"] = time.time()
            print(f"ready: {count} agents connected, their statuses acknowledged", flush=True)
    state["stopping"] = True
    for c in clients:
        if c.is_connected():
            c.disconnect()
            with contextlib.suppress(Exception):
                c.loop_write()
    state.pop("stopping")
    state["late_max_ms"] = 1000 * late_max
    state["ready"] = ready
    print("result " + json.dumps(state), flush=True)
    return 0 if ready else 3


def worker_burst(spec: dict[str, Any]) -> int:
    """`len(events)` agents in one thread, one paho client each, all sockets in one selector (as in
    worker_agents). Prints `ready` once every agent is connected; on `go` each publishes its share
    of events at QoS 1, keeping at most `window` unacknowledged, and the worker ends with
    `result {json}` once every event is acknowledged."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from contract import topic

    v5 = spec["protocol"] == "v5"
    shares = [int(n) for n in spec["events"]]
    window = int(spec["window"])
    deadline = time.monotonic() + spec["max_seconds"]
    devices = [f"b{spec['first'] + i:05d}" for i in range(len(shares))]
    topics = [topic(SITE, d, "event") for d in devices]
    payloads = [[make_event(time.time(), n) for n in range(share)] for share in shares]
    sent = [0] * len(shares)
    acked = [0] * len(shares)
    state: dict[str, Any] = {"connected": 0, "failed": 0, "disconnects": 0, "errors": []}
    clients: list[mqtt.Client] = []
    sel = selectors.DefaultSelector()

    def pump(idx: int) -> None:
        c = clients[idx]
        while sent[idx] < shares[idx] and sent[idx] - acked[idx] < window:
            info = c.publish(topics[idx], payloads[idx][sent[idx]], qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                state["errors"].append(f"{devices[idx]}: publish rc {info.rc}")
                return
            sent[idx] += 1
        if c.want_write():
            c.loop_write()

    def on_connect(c: mqtt.Client, idx: int, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            state["errors"].append(f"{devices[idx]}: connect refused: {reason}")
        else:
            state["connected"] += 1

    def on_publish(c: mqtt.Client, idx: int, mid: int, reason: Any, props: Any) -> None:
        if reason is not None and reason.is_failure:
            state["failed"] += 1
        acked[idx] += 1

    def on_disconnect(c: mqtt.Client, idx: int, flags: Any, reason: Any, props: Any) -> None:
        state["disconnects"] += 1

    for i, device in enumerate(devices):
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-burst-{device}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
            userdata=i,
        )
        c.on_connect = on_connect
        c.on_publish = on_publish
        c.on_disconnect = on_disconnect
        c.max_inflight_messages_set(0)  # the window above bounds it
        c.max_queued_messages_set(0)
        c.connect("127.0.0.1", spec["port"], keepalive=60)
        sock = c.socket()
        if not isinstance(sock, socket.socket):
            print("result " + json.dumps({"errors": [f"{device}: no socket after connect"]}), flush=True)
            return 3
        sel.register(sock, selectors.EVENT_READ, i)
        clients.append(c)

    def serve(timeout: float) -> None:
        for key, _ in sel.select(timeout):
            idx = key.data
            clients[idx].loop_read()
            if go:
                pump(idx)
        for c in clients:  # a socket that was full: finish writing (only reads are selected)
            if c.want_write():
                c.loop_write()

    go = False
    while state["connected"] + len(state["errors"]) < len(clients) and time.monotonic() < deadline:
        serve(0.5)
    if state["errors"] or state["connected"] < len(clients):
        print("result " + json.dumps({"errors": state["errors"] or ["not all connected"]}), flush=True)
        return 3
    print(f"ready: {len(clients)} agents connected", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 4
    go = True
    t_go = time.time()
    for i in range(len(clients)):
        pump(i)
    total = sum(shares)
    while sum(acked) < total and time.monotonic() < deadline:
        serve(0.5)
    t_last_ack = time.time()
    result = {
        "agents": len(clients),
        "sent": sum(sent),
        "acked": sum(acked) - state["failed"],
        "failed": state["failed"],
        "disconnects": state["disconnects"],
        "t_go": t_go,
        "t_last_ack": t_last_ack,
        "errors": state["errors"],
    }
    for c in clients:
        c.disconnect()
        with contextlib.suppress(Exception):
            c.loop_write()
    print("result " + json.dumps(result), flush=True)
    return 0


def run_worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    workers = {"publish": worker_publish, "agents": worker_agents, "burst": worker_burst}
    return workers[spec["mode"]](spec)


# --- report -------------------------------------------------------------------------------------
@dataclass
class Row:
    scenario: str
    metric: str
    mosquitto: str
    embedded: str
    goal: str = ""
    result: str = "info"


def fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:,.{digits}f}"


def summarise(runs: list[dict[str, Any]]) -> list[Row]:
    by = {(r["scenario"], r["broker"]): r for r in runs}
    rows: list[Row] = []

    def add(
        scenario: str,
        label: str,
        metric: str,
        get: Callable[[dict[str, Any]], str],
        missing: str = "not run",
        goal: str = "",
        judge: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        cells = {k: get(by[(scenario, k)]) if (scenario, k) in by else missing for k in KINDS}
        judged = [judge(by[(scenario, k)]) for k in KINDS if judge is not None and (scenario, k) in by]
        result = "info" if judge is None else ("PASS" if judged and all(judged) else "FAIL")
        rows.append(Row(label, metric, cells["mosquitto"], cells["embedded"], goal, result))

    def stored(r: dict[str, Any]) -> str:
        c = r.get("check", {})
        return f"{c.get('stored', 0):,} / {c.get('expected', 0):,}, lost {c.get('lost', 0)}, dup {c.get('extra', 0)}"

    def p50_p99(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{fmt(r[key]['p50_ms'], 1)} / {fmt(r[key]['p99_ms'], 1)}"

    first = {s: next((r for (sc, _), r in by.items() if sc == s), None) for s in ("rate", "latency")}
    if (n := first["rate"]) is not None:
        label = f"ingest, {n['events']:,} events, {n['publishers']} publishers"
        add(
            "rate",
            label,
            "sustained events/s (10 %-90 % of the events)",
            lambda r: fmt(r["sustained"]),
            goal=f">= {RATE_GOAL:,.0f} (Mosquitto)",
            judge=lambda r: r["broker"] != "mosquitto" or r["sustained"] >= RATE_GOAL,
        )
        add("rate", label, "events/s, go -> last row committed", lambda r: fmt(r["overall_rate"]))
        add(
            "rate",
            label,
            "slowest / fastest 1 s (events/s)",
            lambda r: f"{fmt(r['slowest_1s'])} / {fmt(r['fastest_1s'])}",
        )
        add("rate", label, "longest pause with no new row (s)", lambda r: fmt(r.get("longest_pause_s"), 1))
        add("rate", label, "publishers' acknowledged events/s", lambda r: fmt(r["publish_rate"]))
        add(
            "rate",
            label,
            "rows stored / events acknowledged",
            stored,
            goal="all, once",
            judge=lambda r: not (r["check"]["lost"] or r["check"]["extra"]),
        )
        add("rate", label, "events per SQLite commit (mean)", lambda r: fmt(r.get("events_per_commit"), 1))
        add(
            "rate",
            label,
            "hub CPU s per 10k events (embedded: incl. its broker)",
            lambda r: fmt(r["hub_cpu_s_per_10k"], 2),
        )
        add("rate", label, "Mosquitto CPU s per 10k events", lambda r: fmt(r["broker_cpu_s_per_10k"], 2))
        add("rate", label, "hub peak RSS MiB", lambda r: fmt(r["hub_peak_rss_mib"], 1))
    if ("backlog", "mosquitto") in by:
        label = f"backlog drain, {by[('backlog', 'mosquitto')]['events']:,} events queued while the hub was down"
        na = "n/a: queue dies with the hub"
        add("backlog", label, "drain events/s (10 %-90 % of the events)", lambda r: fmt(r["sustained"]), na)
        add(
            "backlog",
            label,
            "drain events/s, first row -> all rows",
            lambda r: fmt(r["events"] / max(r["all_rows_s"] - r["first_row_s"], 1e-9)),
            na,
        )
        add(
            "backlog",
            label,
            "hub start -> connected / first row / all rows (s)",
            lambda r: f"{fmt(r['hub_connected_s'], 2)} / {fmt(r['first_row_s'], 2)} / {fmt(r['all_rows_s'], 2)}",
            na,
        )
        add(
            "backlog",
            label,
            "longest pause with no new row (s)",
            lambda r: fmt(r.get("longest_pause_s"), 1),
            na,
        )
        add(
            "backlog",
            label,
            "rows stored / events queued",
            stored,
            na,
            goal="all, once",
            judge=lambda r: not (r["check"]["lost"] or r["check"]["extra"]),
        )
    if ("burst", "mosquitto") in by:
        b = by[("burst", "mosquitto")]
        label = f"burst, {b['events']:,} events from {b['agents']} agents (window {b['agent_window']} each)"
        na = "not run (Mosquitto only)"
        add(
            "burst",
            label,
            "sustained events/s (10 %-90 % of the events)",
            lambda r: fmt(r["sustained"]),
            na,
            goal=f">= {BURST_RATE_GOAL:,.0f}",
            judge=lambda r: r["sustained"] >= BURST_RATE_GOAL,
        )
        add("burst", label, "events/s, go -> last row committed", lambda r: fmt(r["overall_rate"]), na)
        add(
            "burst",
            label,
            "commit pause p50 / p99 / max ms (time between commits that added rows)",
            lambda r: (
                f"{fmt(r['commit_pause']['p50_ms'], 0)} / {fmt(r['commit_pause']['p99_ms'], 0)} / "
                f"{fmt(r['commit_pause']['max_ms'], 0)}"
            ),
            na,
            goal=f"p99 < {BURST_PAUSE_GOAL_MS:.0f}",
            judge=lambda r: r["commit_pause"]["p99_ms"] < BURST_PAUSE_GOAL_MS,
        )
        add(
            "burst",
            label,
            "rows stored / events acknowledged",
            stored,
            na,
            goal="all, once",
            judge=lambda r: not (r["check"]["lost"] or r["check"]["extra"]),
        )
        add("burst", label, "events per SQLite commit (mean)", lambda r: fmt(r.get("events_per_commit"), 1), na)
        add(
            "burst",
            label,
            "hub receive queue peak (messages) / network thread held back (s)",
            lambda r: f"{fmt(r['hub_stats'].get('queue_peak'))} / {fmt(r['hub_stats'].get('held_back_seconds'), 2)}",
            na,
        )
        add("burst", label, "hub peak RSS MiB", lambda r: fmt(r["hub_peak_rss_mib"], 1), na)
    if (n := first["latency"]) is not None:
        label = f"latency, {n['rate']:.0f} events/s for {n['events'] / n['rate']:.0f} s"
        add(
            "latency",
            label,
            "publish -> committed row p50 / p99 ms",
            p50_p99("committed"),
            goal=f"p99 < {P99_GOAL_MS:.0f}",
            judge=lambda r: r["committed"]["p99_ms"] < P99_GOAL_MS,
        )
        add("latency", label, "publish -> committed row max ms", lambda r: fmt(r["committed"]["max_ms"], 1))
        add("latency", label, "publish -> hub receipt (`received`) p50 / p99 ms", p50_p99("received"))
        add("latency", label, "hub receipt -> committed row p50 / p99 ms", p50_p99("in_hub"))
        add(
            "latency",
            label,
            "rows stored / events acknowledged",
            stored,
            goal="all, once",
            judge=lambda r: not (r["check"]["lost"] or r["check"]["extra"]),
        )
    if ("agents", "mosquitto") in by:
        a = by[("agents", "mosquitto")]
        label = f"{a['agents']:,} agents, heartbeat every {a['heartbeat_s']:g} s, {a['window_s']:g} s window"
        add(
            "agents",
            label,
            "devices online / with a heartbeat in the last period",
            lambda r: f"{r['devices']['online']:,} / {r['devices']['recent_heartbeat']:,}",
            goal=f"{a['agents']:,} / {a['agents']:,}",
            judge=lambda r: r["devices"]["online"] == r["devices"]["recent_heartbeat"] == r["agents"],
        )
        add("agents", label, "hub CPU % (100 = one core)", lambda r: fmt(r["hub_cpu_pct"], 1))
        add("agents", label, "hub peak RSS MiB", lambda r: fmt(r["hub_peak_rss_mib"], 1))
        add(
            "agents",
            label,
            "messages (statuses + heartbeats) received by the hub / sent",
            lambda r: f"{r['hub_received']:,} / {r['messages_sent']:,}",
        )
        add(
            "agents",
            label,
            "hub: SQLite commits per message (whole run) / disk writes KiB/s (window)",
            lambda r: f"{fmt(r['commits_per_message'], 2)} / {fmt(r['hub_io_per_s']['write_bytes'] / 1024, 0)}",
        )
        add(
            "agents",
            label,
            "Mosquitto CPU % / RSS MiB",
            lambda r: f"{fmt(r['broker_cpu_pct'], 1)} / {fmt(r['broker_rss_mib'], 1)}",
        )
        add("agents", label, "simulators' CPU % (all processes)", lambda r: fmt(r["simulators_cpu_pct"], 1))
        add(
            "agents",
            label,
            "all connected / all online in the hub (s after launch)",
            lambda r: f"{fmt(r['connect_all_s'], 1)} / {fmt(r['online_all_s'], 1)}",
        )
    return rows


def markdown_table(rows: list[Row]) -> str:
    head = (
        f"| scenario | metric | {LABEL['mosquitto']} | {LABEL['embedded']} | goal | result |\n"
        "|---|---|---:|---:|---|---|\n"
    )
    return head + "".join(
        f"| {r.scenario} | {r.metric} | {r.mosquitto} | {r.embedded} | {r.goal} | {r.result} |\n" for r in rows
    )


def export_hub_code(rev: str) -> str:
    """Export hub/ and contract/ of git revision `rev` for the hub to run (see HUB_ENV); its full hash.
    A directory holding hub/ and contract/ (a copy of work in progress) is used as it is."""
    global HUB_ENV
    if Path(rev, "hub").is_dir():
        HUB_ENV = dict(os.environ, PYTHONPATH=str(Path(rev).resolve()))
        return f"directory {rev}"
    full = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    target = WORK / f"code-{full[:12]}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", full, "hub", "contract"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    HUB_ENV = dict(os.environ, PYTHONPATH=str(target))
    return full


def versions() -> dict[str, Any]:
    from importlib.metadata import version

    out: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    for dist in ("paho-mqtt", "amqtt", "sqlite-utils"):
        with contextlib.suppress(Exception):
            out[dist] = version(dist)
    out["sqlite"] = sqlite3.sqlite_version
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        text = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=10).stdout
        out["mosquitto"] = text.splitlines()[0] if text else ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=20)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "hub", "contract"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
        out["head"] = head.stdout.strip()
        out["hub_uncommitted_files"] = len(dirty.stdout.splitlines())
    return out


def baseline_load(seconds: float = 3.0) -> dict[str, Any]:
    """How busy the machine is before the benchmark starts anything (the background load)."""
    a = machine_cpu()
    time.sleep(seconds)
    b = machine_cpu()
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {"busy_pct": 100 * (b[0] - a[0]) / max(b[1] - a[1], 1), "loadavg": load, "seconds": seconds}


def describe(runs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in runs:
        cpu = r.get("cpu", {})
        procs = ", ".join(f"{k} {v:.0f} %" for k, v in cpu.get("cpu_pct", {}).items())
        head = f"- **{r['scenario']}, {LABEL[r['broker']]}**: "
        if cpu:
            head += (
                f"window {cpu['window_s']:.1f} s; CPU {procs}, benchmark's pollers {cpu['bench_pct']:.0f} %; "
                f"machine busy {cpu['machine_busy_pct']:.0f} % of {cpu['cores']} cores, of which not ours "
                f"{cpu['others_busy_pct']:.0f} %."
            )
        stats = r.get("hub_stats")
        if stats:
            head += (
                f" Hub counters: received {stats.get('received')}, stored {stats.get('stored')}, duplicates "
                f"{stats.get('duplicates')}, rejected {stats.get('rejected')}, commits {stats.get('commits')}, "
                f"queue peak {stats.get('queue_peak', 'n/a')}, network thread held back "
                f"{stats.get('held_back_seconds', float('nan')):.2f} s, connects {stats.get('connects')}."
            )
        lines.append(head)
        for problem in r.get("problems", [])[:15]:
            lines.append(f"  - problem: {problem}")
    return lines


def write_results(
    args: argparse.Namespace, env: dict[str, Any], runs: list[dict[str, Any]], rows: list[Row], elapsed: float
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    base = env["baseline"]
    hub_code = f"{env.get('head', '')[:12]}" + (
        f" with {env['hub_uncommitted_files']} uncommitted file(s) in hub/ or contract/"
        if env.get("hub_uncommitted_files")
        else ""
    )
    lines = [
        "# Hub ingest benchmark: `bench/hub_ingest.py`",
        "",
        f"Latest run: {now}, {elapsed:.0f} s in all; {env['cpus']} CPUs, kernel {env['kernel']}, Python "
        f"{env['python']}, {env.get('mosquitto', 'mosquitto ?')}, paho-mqtt {env.get('paho-mqtt')}, amqtt "
        f"{env.get('amqtt')}, SQLite {env['sqlite']}. Hub code: {hub_code}.",
        f"Machine load before the run (nothing of ours running, {base['seconds']:.0f} s): "
        f"{base['busy_pct']:.0f} % busy (of all cores), load average {' / '.join(base['loadavg'])}; per scenario, "
        "'not ours' in the details is the machine's busy time minus our processes'.",
        f"Command: `{' '.join(sys.argv)}`. Hub: `diaolou-hub run` with the default ingest settings "
        "(synchronous=FULL, batches of <= 1000 messages or 50 ms, cut to what fits in 0.1 s of commit; heartbeats "
        "alone wait up to 1 s; at most 2000 messages held uncommitted), fresh database per scenario. Mosquitto from "
        "tests/support/brokers.py (max_inflight_messages 100, persistence on; `user root` when run as root).",
        "",
        markdown_table(rows),
        "Rates come from polling `max(rowid)` of the hub's `events` table read-only every 0.1 s; latency from "
        f"a read-only poll every {args.poll_ms:g} ms: a row first seen by the query started at t was committed "
        "before t, so 'committed' = t - the event's `time` (wall clock just before publish()), an upper bound "
        f"off by at most one poll interval; `received` is the hub's clock when paho handed it the message. "
        "See bench/README.md.",
        "",
        "## Details",
        "",
        *describe(runs),
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hub_ingest.md").write_text(text, encoding="utf-8")
    data = {
        "time": now,
        "command": sys.argv,
        "args": vars(args),
        "environment": env,
        "table": [asdict(r) for r in rows],
        "runs": runs,
    }
    (RESULTS / "hub_ingest.json").write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return text


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "_worker":
        return run_worker(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="Events per ingest-rate run (default 50,000).")
    parser.add_argument("--publishers", type=int, default=2, help="Publisher processes (default 2).")
    parser.add_argument("--window", type=int, default=100, help="QoS 1 in-flight window per publisher (default 100).")
    parser.add_argument("--backlog", type=int, default=20_000, help="Events queued while the hub is down.")
    parser.add_argument("--rate", type=float, default=100.0, help="Latency run: events/s (default 100).")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="Latency run length (default 20).")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="Latency run: reader poll interval (default 2).")
    parser.add_argument("--agents", type=int, default=1000, help="Simulated agents (default 1000).")
    parser.add_argument("--agent-procs", type=int, default=4, help="Processes simulating them (default 4).")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="Heartbeat interval s (default 10).")
    parser.add_argument("--agents-seconds", type=float, default=60.0, help="Agents steady-state window (default 60).")
    parser.add_argument("--burst-events", type=int, default=20_000, help="Burst: events in all (default 20,000).")
    parser.add_argument("--burst-agents", type=int, default=200, help="Burst: simulated agents (default 200).")
    parser.add_argument("--burst-procs", type=int, default=4, help="Burst: processes simulating them (default 4).")
    parser.add_argument(
        "--burst-window", type=int, default=20, help="Burst: unacknowledged events per agent (default 20, the agent's)."
    )
    parser.add_argument(
        "--only", default="rate,backlog,burst,latency,agents", help="Scenarios to run (comma-separated)."
    )
    parser.add_argument("--brokers", default="mosquitto,embedded", help="Brokers for rate and latency.")
    parser.add_argument(
        "--hub-code",
        metavar="REV",
        help="Run the hub's hub/ and contract/ as of this git revision, or from this directory (default: the "
        "work tree), for before/after runs on the same machine.",
    )
    args = parser.parse_args()
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    brokers = [b for b in KINDS if b in args.brokers.split(",")]
    if not only <= {"rate", "backlog", "burst", "latency", "agents"} or not brokers:
        parser.error("--only takes rate, backlog, burst, latency, agents; --brokers takes mosquitto, embedded")
    if not (
        1 <= args.publishers <= 8
        and 100 <= args.events <= 1_000_000
        and 1 <= args.window <= 1000
        and 100 <= args.backlog <= 90_000
        and 1 <= args.agent_procs <= 32
        and 1 <= args.agents <= 10_000
        and 5 <= args.agents_seconds <= 600
        and 1 <= args.latency_seconds <= 300
        and 0 < args.rate <= 2000
        and 100 <= args.burst_events <= 1_000_000
        and 1 <= args.burst_procs <= 32
        and args.burst_procs <= args.burst_agents <= 10_000
        and 1 <= args.burst_window <= 1000
    ):
        parser.error("an argument is out of range (see --help)")
    started = time.monotonic()
    env = versions()
    if args.hub_code:
        env["head"] = export_hub_code(args.hub_code)
        env["hub_uncommitted_files"] = 0
        env["hub_code"] = args.hub_code
    env["baseline"] = baseline_load()
    log(f"machine {env['baseline']['busy_pct']:.0f} % busy before the run, load {env['baseline']['loadavg']}")
    runs: list[dict[str, Any]] = []

    def run(name: str, func: Callable[[], dict[str, Any]]) -> None:
        log(f"{name} ...")
        res = func()
        log(f"  {len(res.get('problems', []))} problem(s)")
        runs.append(res)

    try:
        if "rate" in only:
            for kind in brokers:
                run(f"rate, {kind}", functools.partial(scenario_rate, kind, args.events, args.publishers, args.window))
        if "backlog" in only:
            run("backlog, mosquitto", lambda: scenario_backlog(args.backlog, args.publishers, args.window))
        if "burst" in only:
            run(
                "burst, mosquitto",
                lambda: scenario_burst(
                    args.burst_events, args.burst_agents, args.burst_procs, args.burst_window, args.poll_ms / 1000
                ),
            )
        if "latency" in only:
            for kind in brokers:
                run(
                    f"latency, {kind}",
                    functools.partial(scenario_latency, kind, args.rate, args.latency_seconds, args.poll_ms / 1000),
                )
        if "agents" in only:
            run(
                "agents, mosquitto",
                lambda: scenario_agents(args.agents, args.agent_procs, args.heartbeat, args.agents_seconds),
            )
    finally:
        Child.kill_all()
    rows = summarise(runs)
    text = write_results(args, env, runs, rows, time.monotonic() - started)
    print(text)
    return 0 if all(r.result != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # tests.support.brokers
    sys.exit(main())
