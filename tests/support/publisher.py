"""A stand-in agent process for fault tests: raises events from a list of ids at a steady rate
through the real outbox and MQTT link, and survives being killed with -9 and restarted.

    python -m tests.support.publisher --root DIR --url mqtt://... --protocol v5 \
        --site S --device D --ids IDS_FILE --rate 20

Progress (the index of the next id to raise) is kept in DIR/progress; after a kill the last id
may be raised twice (enqueued, then killed before the progress was written): the hub stores it
once.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from contract import Event
from edge_agent.comms import MqttLink, Outbox
from edge_agent.comms.writer import OutboxWriter
from edge_agent.config.schema import MqttConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--protocol", default="v5")
    parser.add_argument("--site", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--ids", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    ids = args.ids.read_text().split()
    progress = args.root / "progress"
    start = int(progress.read_text()) if progress.exists() else 0
    outbox = Outbox.at(args.root, 50)
    link = MqttLink(
        MqttConfig(url=args.url, protocol=args.protocol, client_id=f"pub-{args.device}"), args.site, args.device, outbox
    )
    writer = OutboxWriter(outbox, args.site, args.device, wake=link.notify)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    link.start()
    for i in range(start, len(ids)):
        if stopping:
            break
        writer.event(
            Event(id=ids[i], kind="camera_offline", phase="instant", camera="cam", time=time.time(), detail={"n": i})
        )
        progress.write_text(str(i + 1))
        time.sleep(1 / args.rate)
    # Done raising: stay until the outbox has drained (or SIGTERM).
    while not stopping and outbox.depth > 0:
        time.sleep(0.1)
    (args.root / "done").write_text("1" if outbox.depth == 0 else "0")
    link.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
