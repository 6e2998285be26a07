"""The door board at a village's scale, and what its index costs ingest.

    .venv/bin/python bench/door_board.py [--days 60] [--runs 200] [--ingest 40000]

1. The board: 23 buildings x 4 doors on 23 gate boxes, `--days` of swipes (3,800 residents, two
   a day: ~7,600 swipes and ~15,200 door changes a day), a door alarm in every ~200 swipes. One
   board (what every viewer's live stream computes twice a second while it changes) for an admin
   (all 92 doors) and for a dorm manager of two buildings, against the peer in the same run: the
   alert feed's first page for the admin over the same hub.db (what the alert stream polls).
2. Ingest: `--ingest` gate events, then as many person events, stored through HubDB.write in
   batches of 500 (ingest's batches), with idx_events_door and without it (dropped), alternating,
   best of 3 each: the ratio is what the index costs ingest.

Results: bench/results/door_board.md and .json. The database is built once and kept in
bench/work/door_board/ (delete it to rebuild).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contract import Event, Heartbeat, Status  # noqa: E402
from hub.access_sync import latest_version  # noqa: E402
from hub.config import HubConfig  # noqa: E402
from hub.db import HubDB  # noqa: E402
from hub.models import Principal  # noqa: E402
from hub.records import Record  # noqa: E402
from hub.services import alerts, audit, cards, door_board  # noqa: E402
from hub.store import connect  # noqa: E402

WORK = REPO / "bench" / "work" / "door_board"
RESULTS = REPO / "bench" / "results"
SITE = "dorms"
BUILDINGS = [f"b{n:02d}" for n in range(1, 24)]
DOORS = ("east", "west", "north", "south")
SWIPES_PER_DAY = 7_600
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(ms: int, n: int) -> str:
    out = []
    value = (ms << 80) | n
    for _ in range(26):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def gate_event(n: int, t: float, building: str, door: str, kind: str, **detail: Any) -> Record:
    ev = Event.model_construct(
        v=1, id=ulid(int(t * 1000), n), seq=0, kind=kind, phase="instant", camera=None, time=t, end=None,
        test=False, detail={"door": f"{building}-{door}", "building": building, **detail}, snapshot=None,
    )  # fmt: skip
    return Record("event", SITE, f"{building}-gate", t, message=ev)


def gate_events(count: int, start: float, span: float, seed: int) -> list[Record]:
    """`count` swipes spread over `span` seconds, each with its door's opening and closing."""
    rng = random.Random(seed)
    out: list[Record] = []
    n = seed * 10_000_000
    for i in range(count):
        t = start + i * span / count
        b, d = rng.choice(BUILDINGS), rng.choice(DOORS)
        granted = rng.random() > 0.05
        out.append(gate_event(n, t, b, d, "access", granted=granted, reason="granted" if granted else "wrong_building",
                              why="", card="12/345", employee_no="E0001", name="住户"))  # fmt: skip
        out.append(gate_event(n + 1, t + 1, b, d, "door", open=True))
        if i % 200 == 0:
            out.append(gate_event(n + 2, t + 1, b, d, "door_alarm", alarm="forced_open", why="no grant"))
        out.append(gate_event(n + 3, t + 4, b, d, "door", open=False))
        n += 4
    return out


def build(data_dir: Path, days: int) -> None:
    config = HubConfig.model_validate({"data_dir": str(data_dir)})
    db = HubDB(config.db_path, synchronous="NORMAL")
    conn = connect(config.db_path)
    for b in BUILDINGS:
        for d in DOORS:
            cards.set_door(conn, audit.CLI, SITE, f"{b}-gate", f"{b}-{d}", b)
    conn.close()
    now = time.time()
    swipes = days * SWIPES_PER_DAY
    records = gate_events(swipes, now - days * 86400, days * 86400 - 60, seed=1)
    for i in range(0, len(records), 20_000):
        db.write(records[i : i + 20_000])
        print(f"\r  {i + 20_000:,} of {len(records):,} events", end="", flush=True)
    print()
    db.close()
    conn = connect(config.db_path)
    conn.execute("ANALYZE")
    conn.close()


def alive(db_path: Path) -> None:
    """Every gate box heard from just now (the board's offline rule looks at the hub's clock)."""
    db = HubDB(db_path, synchronous="NORMAL")
    now = time.time()
    conn = connect(db_path)
    version = latest_version(conn, BUILDINGS)
    conn.close()
    records: list[Record] = []
    for b in BUILDINGS:
        device = f"{b}-gate"
        records.append(Record("status", SITE, device, now, message=Status(state="online", time=now)))
        beat = Heartbeat(time=now, uptime_seconds=60, access_list_version=version)
        records.append(Record("heartbeat", SITE, device, now, message=beat))
    db.write(records)
    db.close()


def timed(fn: Any, runs: int) -> dict[str, float]:
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    return {"median_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]}


def measure_board(db_path: Path, runs: int) -> dict[str, Any]:
    admin = Principal(user_id=1, username="admin", role="admin", locale="zh")
    manager = Principal(
        user_id=2, username="dorm", role="dorm_manager", locale="zh", buildings=frozenset(BUILDINGS[:2])
    )
    conn = connect(db_path)
    try:
        doors = sum(len(b.doors) for b in door_board.doors(conn, admin, 60.0))
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return {
            "doors": doors,
            "events": events,
            "board_admin": timed(lambda: door_board.board(conn, admin, 60.0), runs),
            "board_manager": timed(lambda: door_board.board(conn, manager, 60.0), runs),
            "peer_alert_feed_admin": timed(lambda: alerts.feed(conn, admin, limit=30), runs),
        }
    finally:
        conn.close()


def person_events(count: int, seed: int) -> list[Record]:
    now = time.time()
    out = []
    for i in range(count):
        t = now - count + i
        ev = Event.model_construct(
            v=1, id=ulid(int(t * 1000), seed * 10_000_000 + i), seq=0, kind="person", phase="new", camera="cam0",
            time=t, end=None, test=False, detail={"zone": "door", "max_score": 0.8, "persons": 1}, snapshot=None,
        )  # fmt: skip
        out.append(Record("event", "village", "shop-box", t, message=ev))
    return out


def store_seconds(data_dir: Path, records: list[Record], with_index: bool) -> float:
    shutil.rmtree(data_dir, ignore_errors=True)
    config = HubConfig.model_validate({"data_dir": str(data_dir)})
    db = HubDB(config.db_path, synchronous="NORMAL")
    if not with_index:
        conn = connect(config.db_path)
        conn.execute("DROP INDEX idx_events_door")
        conn.close()
    t0 = time.perf_counter()
    for i in range(0, len(records), 500):
        db.write(records[i : i + 500])
    seconds = time.perf_counter() - t0
    db.close()
    return seconds


def measure_ingest(count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    now = time.time()
    for name, records in (
        ("gate", gate_events(count // 3, now - 86400, 86000, seed=3)[:count]),
        ("person", person_events(count, seed=4)),
    ):
        best = {True: float("inf"), False: float("inf")}
        for attempt in range(3):
            for with_index in (attempt % 2 == 0, attempt % 2 != 0):
                seconds = store_seconds(WORK / "ingest", records, with_index)
                best[with_index] = min(best[with_index], seconds)
        out[name] = {
            "events": len(records),
            "with_index_per_s": len(records) / best[True],
            "without_index_per_s": len(records) / best[False],
            "ratio": best[True] / best[False],
        }
    shutil.rmtree(WORK / "ingest", ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--ingest", type=int, default=40_000)
    args = parser.parse_args()
    data_dir = WORK / f"days{args.days}"
    if not (data_dir / "hub.db").exists():
        print(f"building {args.days} days of a village's gate events in {data_dir} ...")
        build(data_dir, args.days)
    alive(data_dir / "hub.db")
    board = measure_board(data_dir / "hub.db", args.runs)
    ingest = measure_ingest(args.ingest)
    result = {"days": args.days, "runs": args.runs, "board": board, "ingest": ingest}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "door_board.json").write_text(json.dumps(result, indent=2) + "\n")
    b = board
    lines = [
        "# Door board: one board at a village's scale, and its index's cost on ingest",
        "",
        f"`bench/door_board.py --days {args.days} --runs {args.runs} --ingest {args.ingest}`: {b['doors']} doors "
        f"on 23 gate boxes, {b['events']:,} gate events in hub.db ({args.days} days of 7,600 swipes a day with "
        "their door changes and alarms). Every viewer's live stream computes one board per poll (0.5 s) "
        "while it changes; the peer is the alert feed's first page over the same database (what the alert "
        "stream polls).",
        "",
        "| what | median ms | p99 ms | / peer (median) |",
        "|---|---|---|---|",
    ]
    peer = b["peer_alert_feed_admin"]["median_ms"]
    for key, label in (
        ("board_admin", "board, admin (all doors)"),
        ("board_manager", "board, dorm manager (2 buildings)"),
        ("peer_alert_feed_admin", "peer: alert feed page, admin"),
    ):
        row = b[key]
        lines.append(f"| {label} | {row['median_ms']:.2f} | {row['p99_ms']:.2f} | {row['median_ms'] / peer:.1f} |")
    lines += [
        "",
        "Ingest through HubDB.write in batches of 500, best of 3, with the door index and without it:",
        "",
        "| events | count | with index /s | without /s | time ratio |",
        "|---|---|---|---|---|",
    ]
    for name, row in ingest.items():
        lines.append(
            f"| {name} | {row['events']:,} | {row['with_index_per_s']:,.0f} | {row['without_index_per_s']:,.0f} "
            f"| {row['ratio']:.2f} |"
        )
    (RESULTS / "door_board.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
