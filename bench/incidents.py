"""Incident registry under load (issue 13).

    .venv/bin/python bench/incidents.py [--rate 100] [--seconds 20] [--incidents 200000]

1. Triage from a stream: alerts written into hub.db at --rate per second (through HubDB.write, as
   ingest does) while the real `Triage` thread runs; per alert, the delay from its write to its
   incident (opened or attached). Then a backlog of 20,000 alerts triaged at full speed, against
   the peer in the same run: HubDB.write storing the same 20,000 alerts (ingest's own cost).
2. The dashboard figures over --incidents incidents (762 grids, 8 categories, a year): by grid,
   category and month for 30 days and a year, median of 5, against the peer: the bare indexed
   count of the same incidents. Goal: under 200 ms per figure table.
Results: bench/results/incidents.md and .json. Exit status 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contract import Event  # noqa: E402
from hub.db import HubDB  # noqa: E402
from hub.records import Record  # noqa: E402
from hub.services import audit, figures, triage  # noqa: E402
from hub.services.triage import Triage, TriageRule  # noqa: E402
from hub.store import connect  # noqa: E402

RULES = [
    TriageRule(name="person", kinds=["person"], category="intrusion", dedup_minutes=30),
    TriageRule(name="door", kinds=["door_alarm"], category="forced_door", priority="urgent"),
]


def _alerts(n: int, start: int, cameras: int = 200) -> list[Record]:
    now = time.time()
    out = []
    for i in range(start, start + n):
        cam = i % cameras
        kind = "person" if i % 10 else "door_alarm"
        ev = Event(id=f"01JA2B3C4D5E6F7G8H{i:08d}", kind=kind, phase="instant" if kind != "person" else "new",
                   camera=f"c{cam}", time=now, detail={"zone": "z"})  # fmt: skip
        out.append(Record("event", "site", f"box{cam % 50}", now, message=ev))
    return out


def stream(work: Path, rate: float, seconds: float) -> dict[str, float]:
    db_path = work / "stream.db"
    db = HubDB(db_path)
    conn = connect(db_path)
    triage.set_rules(conn, audit.CLI, RULES)
    worker = Triage(db_path)
    worker.start()
    total = int(rate * seconds)
    written: dict[str, float] = {}
    t0 = time.perf_counter()
    for i, record in enumerate(_alerts(total, 0)):
        due = t0 + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        db.write([record])
        written[record.message.id] = time.time()  # type: ignore[union-attr]
    deadline = time.time() + 30
    while time.time() < deadline:
        done = conn.execute("SELECT count(*) FROM incident_alerts").fetchone()[0]
        if done >= total:
            break
        time.sleep(0.05)
    worker.stop()
    delays = sorted(
        (attached - written[event_id]) * 1000
        for event_id, attached in conn.execute("SELECT event_id, attached FROM incident_alerts")
    )
    opened = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    conn.close()
    db.close()
    return {
        "alerts": total,
        "triaged": len(delays),
        "incidents": opened,
        "p50_ms": delays[len(delays) // 2],
        "p99_ms": delays[int(len(delays) * 0.99) - 1],
    }


def backlog(work: Path, n: int = 20000) -> dict[str, float]:
    db_path = work / "backlog.db"
    db = HubDB(db_path)
    conn = connect(db_path)
    triage.set_rules(conn, audit.CLI, RULES)
    records = _alerts(n, 10**6)
    t = time.perf_counter()
    for i in range(0, n, 500):
        db.write(records[i : i + 500])
    ingest_s = time.perf_counter() - t
    t = time.perf_counter()
    while triage.triage_step(conn, time.time())[0]:
        pass
    triage_s = time.perf_counter() - t
    conn.close()
    db.close()
    return {"alerts": n, "triage_per_s": n / triage_s, "ingest_per_s": n / ingest_s}


def dashboard(work: Path, n: int) -> dict[str, dict[str, float]]:
    db_path = work / "figures.db"
    HubDB(db_path).close()
    conn = connect(db_path)
    rng = random.Random(13)
    year = 365 * 86400
    end = time.time()
    rows = []
    cats = ["intrusion", "forced_door", "tailgating", "camera_offline", "public_report", "fire", "litter", "noise"]
    for _ in range(n):
        created = end - rng.random() * year
        due = created + rng.choice([2, 12, 72, 168]) * 3600
        closed = created + rng.random() * 200 * 3600 if rng.random() < 0.95 else None
        resolved = closed - 600 if closed else None
        status = "closed" if closed else "in_progress"
        rows.append((status, f"G{rng.randrange(762):03d}", rng.choice(cats), created, created, created, due, resolved,
                     closed, int(rng.random() < 0.05)))  # fmt: skip
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO incidents (status, grid, category, priority, title, description, source, created, updated, "
        "dispatched, due, resolved, closed, reworks) VALUES (?, ?, ?, 'normal', 't', '', 'rule', ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    out: dict[str, dict[str, float]] = {}
    for label, since in (("30 days", end - 30 * 86400), ("1 year", end - year - 86400)):
        peer = []
        for _ in range(5):
            t = time.perf_counter()
            conn.execute("SELECT count(*) FROM incidents WHERE due >= ? AND due < ?", (since, end)).fetchone()
            peer.append((time.perf_counter() - t) * 1000)
        for by in ("grid", "category", "month"):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                table = figures.figures(conn, None, by, since, end)  # type: ignore[arg-type]
                times.append((time.perf_counter() - t) * 1000)
            out[f"{label} by {by}"] = {"rows": len(table.rows), "median_ms": statistics.median(times),
                                       "peer_count_ms": statistics.median(peer)}  # fmt: skip
    conn.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--incidents", type=int, default=200000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        s = stream(work, args.rate, args.seconds)
        b = backlog(work)
        d = dashboard(work, args.incidents)
    lines = [
        "# Incident registry (bench/incidents.py)",
        "",
        f"Triage from a stream of {args.rate:.0f} alerts/s for {args.seconds:.0f} s: {s['triaged']:.0f} of "
        f"{s['alerts']:.0f} alerts on {s['incidents']:.0f} incidents; write-to-incident delay "
        f"p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms (the triage thread polls every 0.5 s).",
        "",
        f"Backlog of {b['alerts']:.0f} alerts: triage {b['triage_per_s']:,.0f} alerts/s; peer (HubDB.write of the "
        f"same alerts) {b['ingest_per_s']:,.0f} alerts/s; ratio {b['triage_per_s'] / b['ingest_per_s']:.2f}.",
        "",
        f"Figures over {args.incidents:,} incidents (goal < 200 ms per table):",
        "",
        "| table | rows | median ms | peer: bare indexed count ms | ratio |",
        "|---|---|---|---|---|",
    ]
    for label, r in d.items():
        ratio = r["median_ms"] / max(r["peer_count_ms"], 0.001)
        lines.append(f"| {label} | {r['rows']:.0f} | {r['median_ms']:.1f} | {r['peer_count_ms']:.1f} | {ratio:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "incidents.md").write_text(text)
    (results / "incidents.json").write_text(json.dumps({"stream": s, "backlog": b, "figures": d}, indent=1))
    ok = s["triaged"] == s["alerts"] and all(r["median_ms"] < 200 for r in d.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
