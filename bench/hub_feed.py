"""The alert feed under load: 1,000,000 events from 200 cameras in hub.db, pages asked over HTTP
from a real hub web server, per role, against the same page's bare SQL as the peer (the floor).

    .venv/bin/python bench/hub_feed.py [--events 1000000] [--cameras 200] [--requests 300]

Goal (issue "the hub for people"): p99 under 50 ms per page of the feed API. The table also
gives the SQL floor in the same run, so the ratio says what the API adds on this machine.
Results: bench/results/hub_feed.md and .json. The database is built once and kept in
bench/work/feed/ (delete it to rebuild). Exit status 1 if the goal is missed.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contract import Event, Status  # noqa: E402
from hub.api.app import create_app  # noqa: E402
from hub.config import HubConfig  # noqa: E402
from hub.db import HubDB  # noqa: E402
from hub.models import Principal  # noqa: E402
from hub.records import Record  # noqa: E402
from hub.services import accounts, alerts, audit  # noqa: E402
from hub.store import connect  # noqa: E402

WORK = REPO / "bench" / "work" / "feed"
RESULTS = REPO / "bench" / "results"
PASSWORD = "bench password 1"
SITES = 10
GOAL_P99_MS = 50.0
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(ms: int, n: int) -> str:
    out = []
    value = (ms << 80) | n
    for _ in range(26):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def cameras(count: int) -> list[tuple[str, str, str]]:
    """(site, device, camera): 10 sites, 2 cameras per box."""
    return [(f"site{i % SITES}", f"box{i // 2}", f"cam{i % 2}") for i in range(count)]


def build(data_dir: Path, events: int, camera_count: int) -> None:
    config = HubConfig.model_validate({"data_dir": str(data_dir)})
    db = HubDB(config.db_path, synchronous="NORMAL")
    now = time.time()
    cams = cameras(camera_count)
    boxes: dict[tuple[str, str], list[str]] = {}
    for site, device, camera in cams:
        boxes.setdefault((site, device), []).append(camera)
    db.write(
        [
            Record("status", site, device, now, message=Status(state="online", time=now, cameras=names))
            for (site, device), names in boxes.items()
        ]
    )
    rng = random.Random(7)
    start = now - 7 * 86400
    step = 7 * 86400 / events
    batch: list[Record] = []
    for n in range(events):
        site, device, camera = cams[rng.randrange(camera_count)]
        t = start + n * step
        ev = Event.model_construct(
            v=1, id=ulid(int(t * 1000), n), seq=0, kind="person", phase="new", camera=camera, time=t, end=None,
            test=False, detail={"zone": "door" if n % 3 else "lane", "max_score": 0.8, "persons": 1}, snapshot=None,
        )  # fmt: skip
        batch.append(Record("event", site, device, t, message=ev))
        if len(batch) == 20_000:
            db.write(batch)
            batch = []
            print(f"\r  {n + 1:,} events", end="", flush=True)
    db.write(batch)
    print()
    db.close()
    conn = connect(config.db_path)
    accounts.add_user(conn, audit.CLI, "admin", PASSWORD, "admin")
    accounts.add_user(conn, audit.CLI, "police", PASSWORD, "police", sites=["site3"])
    site, device, camera = cams[5]
    accounts.add_user(conn, audit.CLI, "owner", PASSWORD, "shop_owner", cameras=[f"{site}.{device}.{camera}"])
    conn.execute("ANALYZE")
    conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(base: str, token: str, principal: Principal, db_path: Path, requests: int) -> dict[str, Any]:
    """The first page, then pages further back by cursor, over HTTP; the same pages' SQL alone."""
    headers = {"Authorization": f"Bearer {token}"}
    api_ms: list[float] = []
    sql_ms: list[float] = []
    cursors: list[str | None] = [None]
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for i in range(requests):
            cursor = cursors[i % len(cursors)] if i % 2 else None  # half first pages, half deeper ones
            params = {"limit": 30, **({"before": cursor} if cursor else {})}
            t0 = time.perf_counter()
            response = client.get("/api/v1/alerts", params=params)
            api_ms.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
            page = response.json()
            if page["next"] and len(cursors) < 50:
                cursors.append(page["next"])
    conn = connect(db_path)
    try:
        for i in range(requests):
            cursor = cursors[i % len(cursors)] if i % 2 else None
            t0 = time.perf_counter()
            alerts.feed(conn, principal, before=cursor, limit=30)
            sql_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    return {
        "api_p50_ms": round(statistics.median(api_ms), 2),
        "api_p99_ms": round(percentile(api_ms, 99), 2),
        "service_p50_ms": round(statistics.median(sql_ms), 2),
        "service_p99_ms": round(percentile(sql_ms, 99), 2),
        "requests": requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    data_dir = WORK / f"{args.events}-{args.cameras}"
    if not (data_dir / "hub.db").exists():
        print(f"building hub.db with {args.events:,} events from {args.cameras} cameras in {data_dir} ...")
        build(data_dir, args.events, args.cameras)
    port = free_port()
    config = HubConfig.model_validate({"data_dir": str(data_dir), "listen": f"127.0.0.1:{port}"})
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    rows = []
    conn = connect(config.db_path)
    try:
        for user in ("admin", "police", "owner"):
            token = httpx.post(f"{base}/api/v1/auth/login", json={"username": user, "password": PASSWORD}).json()[
                "token"
            ]
            principal = accounts.authenticate(conn, token, "bearer")
            assert principal is not None
            result = measure(base, token, principal, config.db_path, args.requests)
            result["role"] = principal.role
            result["ratio"] = round(result["api_p99_ms"] / max(result["service_p99_ms"], 0.01), 1)
            rows.append(result)
            print(result)
    finally:
        conn.close()
        server.should_exit = True
        thread.join(10)
    met = all(r["api_p99_ms"] < GOAL_P99_MS for r in rows)
    lines = [
        "# Alert feed under load (bench/hub_feed.py)",
        "",
        f"{args.events:,} events from {args.cameras} cameras in hub.db; {args.requests} page requests per role "
        "(half first pages, half deeper pages by cursor), 30 alerts per page, over HTTP on loopback to the hub's "
        "web server (uvicorn, one worker). Peer: the same pages from the service function alone (SQL and models, "
        "no HTTP), in the same run.",
        "",
        "| role (what it sees) | API p50 ms | API p99 ms (goal < 50) | service p50 ms | service p99 ms "
        "| API/service p99 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    scope = {"admin": "all 200 cameras", "police": "one site, 20 cameras", "shop_owner": "one camera"}
    for r in rows:
        lines.append(
            f"| {r['role']} ({scope[r['role']]}) | {r['api_p50_ms']} | **{r['api_p99_ms']}** | {r['service_p50_ms']} "
            f"| {r['service_p99_ms']} | {r['ratio']}x |"
        )
    lines += ["", f"Goal met: {'yes' if met else 'NO'}."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hub_feed.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "hub_feed.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
