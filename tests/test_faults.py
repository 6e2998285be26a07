"""The issue's fault scenario with real processes on the production broker: the broker stopped
for 30 s while alarms keep being raised, the real agent (`diaolou-agent run`) killed with -9 with
a full outbox and restarted, the hub killed with -9 mid-stream and restarted. Afterwards every
event is in the hub exactly once, in the order the device raised them.

The events are test alarms: `diaolou-agent test-alarm` saves them in the agent's events.db and
queues them through the event store's shipper, the path a real alert takes, and the running agent's
MQTT session sends them. They are raised in batches, one command after another, beside the
agent; while the agent is down a command finds the lock free and tries the broker itself (it is
stopped then), leaving its alarms queued for the agent."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import HUB_SUBSCRIBED, agent_cmd, free_port, log_count, wait_for
from tests.support.brokers import Broker

COUNT = 900  # 45 s of alarms
BATCH = 20  # per test-alarm command, one command a second: 20 alarms/s


def hub_ids(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        sql = "select id from events where device = 'gate-3' and kind = 'test' order by rowid"
        return [r[0] for r in conn.execute(sql)]


def outbox_depth(root: Path) -> int:
    with sqlite3.connect(f"file:{root / 'outbox.db'}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute("select count(*) from outbox").fetchone()[0])


def raised_ids(root: Path) -> list[str]:
    """The alarms saved on the box so far, in the order they were raised."""
    db = root / "events.db"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        try:
            return [r[0] for r in conn.execute("select id from events where kind = 'test' order by id")]
        except sqlite3.OperationalError:  # created but not yet migrated/filled
            return []


class Raiser(threading.Thread):
    """Runs `diaolou-agent test-alarm --count BATCH --wait 0` once a second until COUNT alarms are
    saved (or it is stopped)."""

    def __init__(self, cfg: Path, root: Path, log: Path) -> None:
        super().__init__(name="raiser", daemon=True)
        self.cfg, self.root, self.log = cfg, root, log
        self.stopping = threading.Event()

    def run(self) -> None:
        with open(self.log, "ab") as log:
            while not self.stopping.is_set() and (left := COUNT - len(raised_ids(self.root))) > 0:
                started = time.monotonic()
                command = agent_cmd("test-alarm", "--config", str(self.cfg), "--count", str(min(BATCH, left)))
                subprocess.run([*command, "--wait", "0"], stdout=log, stderr=log, timeout=120)
                self.stopping.wait(max(0.0, started + 1 - time.monotonic()))


def test_broker_outage_agent_kill_and_hub_kill_lose_nothing(mosquitto: Broker, tmp_path: Path) -> None:
    hub_cfg = tmp_path / "hub.yaml"
    hub_cfg.write_text(
        f"data_dir: {tmp_path / 'hub'}\nlisten: 127.0.0.1:{free_port()}\n"
        f"mqtt: {{url: '{mosquitto.url()}', protocol: v5}}\n"
    )
    hub_db = tmp_path / "hub" / "hub.db"
    hub_log = tmp_path / "hub.log"
    root = tmp_path / "agent"
    agent_cfg = tmp_path / "agent.yaml"
    agent_cfg.write_text(
        f"site: dorm\ndevice: gate-3\nstorage: {{root: {root}}}\n"
        f"mqtt: {{url: '{mosquitto.url()}', protocol: v5}}\n"
        f"cameras:\n  gate: {{source: 'rtsp://127.0.0.1:{free_port()}/none', detect: {{enabled: false}}}}\n"
    )

    def start_hub() -> subprocess.Popen[bytes]:
        log = open(hub_log, "ab")  # noqa: SIM115 - owned by the process
        return subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(hub_cfg)], stderr=log)

    def start_agent() -> subprocess.Popen[bytes]:
        log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115
        return subprocess.Popen(agent_cmd("run", "--config", str(agent_cfg)), stderr=log)

    def raised() -> int:
        return len(raised_ids(root))

    hub = start_hub()
    # The hub's persistent session exists before the first event.
    assert wait_for(lambda: log_count(hub_log, HUB_SUBSCRIBED) == 1, timeout=60)
    agent = start_agent()
    raiser = Raiser(agent_cfg, root, tmp_path / "test-alarm.log")
    try:
        assert wait_for(lambda: (root / "agent.lock").exists(), timeout=30)
        raiser.start()
        assert wait_for(lambda: len(hub_ids(hub_db)) >= 40, timeout=30)
        mosquitto.stop()  # the broker goes away for 30 s
        outage_started = time.monotonic()
        assert wait_for(lambda: raised() >= 200, timeout=30)
        assert agent.poll() is None  # the agent kept running through the outage
        assert outbox_depth(root) >= 100
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
        raiser.join(120)
        assert not raiser.is_alive() and raised() == COUNT
        assert wait_for(lambda: len(set(hub_ids(hub_db))) >= COUNT, timeout=60)
    finally:
        raiser.stopping.set()
        raiser.join(120)
        for proc in (agent, hub):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
    stored = hub_ids(hub_db)
    ids = raised_ids(root)
    assert len(stored) == COUNT == len(set(stored))  # every event, exactly once
    assert set(stored) == set(ids)
    assert stored == ids  # in the order the device raised them
    assert "Traceback" not in (tmp_path / "agent.log").read_text()
