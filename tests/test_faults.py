"""The issue's fault scenario with real processes on the production broker: the broker stopped
for 30 s while the agent keeps raising events, the agent killed with -9 with a full outbox and
restarted, the hub killed with -9 mid-stream and restarted. Afterwards every event is in the
hub exactly once, in the order the device raised them."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.events.ids import new_event_id
from tests.conftest import HUB_SUBSCRIBED, free_port, log_count, wait_for
from tests.support.brokers import Broker

RATE = 20.0
COUNT = 900  # 45 s of events at 20/s


def hub_ids(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return [r[0] for r in conn.execute("select id from events where device = 'gate-3' order by rowid")]


def test_broker_outage_agent_kill_and_hub_kill_lose_nothing(mosquitto: Broker, tmp_path: Path) -> None:
    ids = [new_event_id(time.time() + i / 1000) for i in range(COUNT)]
    assert ids == sorted(ids)
    (tmp_path / "ids").write_text("\n".join(ids))
    hub_cfg = tmp_path / "hub.yaml"
    hub_cfg.write_text(
        f"data_dir: {tmp_path / 'hub'}\nlisten: 127.0.0.1:{free_port()}\n"
        f"mqtt: {{url: '{mosquitto.url()}', protocol: v5}}\n"
    )
    hub_db = tmp_path / "hub" / "hub.db"
    hub_log = tmp_path / "hub.log"

    def start_hub() -> subprocess.Popen[bytes]:
        log = open(hub_log, "ab")  # noqa: SIM115 - owned by the process
        return subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(hub_cfg)], stderr=log)

    def start_agent() -> subprocess.Popen[bytes]:
        log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.publisher",
                "--root",
                str(tmp_path / "agent"),
                "--url",
                mosquitto.url(),
                "--protocol",
                "v5",
                "--site",
                "dorm",
                "--device",
                "gate-3",
                "--ids",
                str(tmp_path / "ids"),
                "--rate",
                str(RATE),
            ],
            stderr=log,
        )

    def raised() -> int:
        progress = tmp_path / "agent" / "progress"
        return int(progress.read_text() or 0) if progress.exists() else 0

    hub = start_hub()
    # The hub's persistent session exists before the first event.
    assert wait_for(lambda: log_count(hub_log, HUB_SUBSCRIBED) == 1, timeout=60)
    agent = start_agent()
    try:
        assert wait_for(lambda: len(hub_ids(hub_db)) >= 40, timeout=30)
        mosquitto.stop()  # the broker goes away for 30 s
        outage_started = time.monotonic()
        assert wait_for(lambda: raised() >= 200, timeout=30)
        agent.send_signal(signal.SIGKILL)  # killed with a full outbox
        agent.wait(10)
        agent = start_agent()
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
        mosquitto.start()  # same port, same persistence file
        assert wait_for(lambda: len(hub_ids(hub_db)) >= raised() - 40, timeout=60)
        hub.send_signal(signal.SIGKILL)  # hub killed mid-stream
        hub.wait(10)
        time.sleep(2)
        hub = start_hub()
        assert wait_for(lambda: (tmp_path / "agent" / "done").exists(), timeout=120)
        assert wait_for(lambda: len(set(hub_ids(hub_db))) >= COUNT, timeout=60)
    finally:
        for proc in (agent, hub):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
    stored = hub_ids(hub_db)
    assert len(stored) == COUNT == len(set(stored))  # every event, exactly once
    assert set(stored) == set(ids)
    assert stored == ids  # in the order the device raised them
