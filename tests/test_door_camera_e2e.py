"""Who swiped, end to end: a gate box whose door has a camera (the real footage over RTSP,
analysed by yolox-nano), a real Mosquitto and `diaolou-hub run`. A card shown at the door reaches
the hub's access log with the camera named and its picture stored against the access event,
the JPEG the box kept beside its recordings."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from contract.messages import check_snapshot
from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.gate.credential import encode_wiegand
from edge_agent.gate.reader import WiegandBits
from edge_agent.gate.service import Gate
from edge_agent.gate.simulator import SimulatorReader
from edge_agent.gate.store import put_credential, put_holder
from hub.models import AccessRecord
from hub.services import access_log
from hub.store import connect, open_store
from models.registry import install_model
from tests.conftest import HUB_SUBSCRIBED, SHARED, RtspServer, free_port, log_count, wait_for
from tests.support.brokers import Broker
from tests.test_end_to_end import hub_cmd


def test_a_swipe_reaches_the_hub_with_the_door_cameras_picture(
    tmp_path: Path, footage: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    broker = Broker("mosquitto", tmp_path / "broker").start()
    data_dir = tmp_path / "hub"
    hub_cfg = tmp_path / "hub.yaml"
    mqtt_cfg = {"url": broker.url(), "protocol": broker.protocol}
    hub_cfg.write_text(
        yaml.safe_dump({"data_dir": str(data_dir), "listen": f"127.0.0.1:{free_port()}", "mqtt": mqtt_cfg})
    )
    open_store(data_dir / "hub.db")
    hub_log = tmp_path / "hub.log"
    with hub_log.open("ab") as log:
        hub = subprocess.Popen(hub_cmd("run", "--config", str(hub_cfg)), stdout=log, stderr=log)
    models = tmp_path / "models"
    install_model("yolox-nano", models, str(SHARED / "models" / "yolox_nano.onnx"))
    server = rtsp_server({"/door": footage})
    config = parse_config(
        yaml.safe_dump(
            {
                "site": "dorms",
                "device": "b07-gate",
                "models_dir": str(models),
                "storage": {"root": str(tmp_path / "gate")},
                "mqtt": {**mqtt_cfg, "heartbeat_seconds": 1},
                "cameras": {"gatecam": {"source": server.url("/door"), "detect": {"model": "yolox-nano"}}},
                "doors": {"b07-east": {"building": "b07", "camera": "gatecam"}},
            }
        )
    )
    gate = Gate(config, create=True)  # a resident on the box's list (no hub list in this test)
    put_credential(gate.db, put_holder(gate.db, "E001", "李伟", "b07", room="301"), "wiegand26", 26, 12, 1)
    gate.close()
    agent = Agent(config)
    try:
        assert wait_for(lambda: log_count(hub_log, HUB_SUBSCRIBED) == 1, timeout=60)
        agent.start()
        assert agent.link is not None and agent.link.wait_connected(20)
        assert agent.doors is not None
        camera = agent.doors.cameras["b07-east"]
        assert wait_for(lambda: camera.grab(time.time()) is not None, timeout=60)  # the analysis has frames
        reader = agent.doors.readers["b07-east"]
        assert isinstance(reader, SimulatorReader)
        reader.push(WiegandBits(encode_wiegand(26, 12, 1)))

        def logged() -> list[AccessRecord]:
            conn = connect(data_dir / "hub.db")
            try:
                return [r for r in access_log.recent(conn, None, "b07") if r.snapshot is not None]
            finally:
                conn.close()

        assert wait_for(lambda: len(logged()) == 1, timeout=30)
        [record] = logged()
        assert record.granted and record.employee_no == "E001" and record.camera == "dorms.b07-gate.gatecam"
        conn = connect(data_dir / "hub.db")
        [row] = conn.execute("SELECT path FROM snapshots WHERE event_id = ?", (record.id,)).fetchall()
        [kept] = conn.execute("SELECT snapshot FROM events WHERE id = ?", (record.id,)).fetchall()
        conn.close()
        jpeg = (data_dir / row["path"]).read_bytes()
        assert check_snapshot(jpeg)
        # The same picture the box keeps under its snapshots, where the event says it is.
        box_path = json.loads(kept["snapshot"])["path"]
        assert (config.storage.root / box_path).read_bytes() == jpeg
    finally:
        agent.shutdown()
        hub.terminate()
        hub.wait(20)
        broker.stop()
