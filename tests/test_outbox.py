"""The outbox: durable, ordered, bounded (lowest priority and oldest go first, counted), shared by
two processes (the running agent and `test-alarm`), the agent lock that tells them apart, and the
one writer every message goes in through."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Literal

import pytest

from contract import ContractError, Event, Reply, decode
from contract.topics import parse_topic
from edge_agent.comms.outbox import PRIORITY_EVENT, PRIORITY_STATUS, PRIORITY_TEST, AgentLock, Outbox, message_size
from edge_agent.comms.writer import PRIORITY_SNAPSHOT, OutboxWriter
from edge_agent.events.ids import new_event_id
from tests.conftest import REPO, wait_for

TOPIC = "diaolou/v1/site/box/event"


def payload(n: int, size: int = 100) -> bytes:
    return f"{n:08d}".encode().ljust(size, b".")


def test_messages_come_out_in_enqueue_order_and_go_on_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    maybe = [box.enqueue(TOPIC, payload(n), qos=1, priority=PRIORITY_EVENT) for n in range(10)]
    seqs = [s for s in maybe if s is not None]
    assert len(seqs) == 10 and seqs == sorted(seqs)
    pending = box.pending(100)
    assert [m.payload for m in pending] == [payload(n) for n in range(10)]
    assert [m.seq for m in pending] == seqs
    assert pending[0].topic == TOPIC and pending[0].qos == 1 and pending[0].size == message_size(TOPIC, payload(0))
    assert [m.seq for m in box.pending(3, after=pending[4].seq)] == seqs[5:8]
    assert box.depth == 10 and box.bytes == 10 * message_size(TOPIC, payload(0))

    assert box.ack(pending[3].seq) is True
    assert box.ack(pending[3].seq) is False  # a second PUBACK (a re-send) deletes nothing more
    assert box.ack_many([pending[0].seq, pending[1].seq, 999_999]) == 2
    assert [m.payload for m in box.pending(100)] == [payload(n) for n in (2, 4, 5, 6, 7, 8, 9)]
    assert box.remaining(seqs) == {s for s in seqs if s not in (seqs[0], seqs[1], seqs[3])}
    assert box.depth == 7 and box.bytes == 7 * message_size(TOPIC, payload(0))
    box.close()

    # What was committed survives closing (and a crash: enqueue commits before returning).
    again = Outbox(tmp_path / "outbox.db")
    assert [m.payload for m in again.pending(100)] == [payload(n) for n in (2, 4, 5, 6, 7, 8, 9)]
    # seq is never reused: a new message sorts after everything ever sent.
    assert (again.enqueue(TOPIC, payload(10)) or 0) > max(seqs)
    again.close()


def test_full_outbox_drops_lowest_priority_then_oldest_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = message_size(TOPIC, payload(0))
    box = Outbox(tmp_path / "outbox.db", max_bytes=10 * size)  # room for exactly 10 messages
    events = [box.enqueue(TOPIC, payload(n), priority=PRIORITY_EVENT) for n in range(4)]
    tests = [box.enqueue(TOPIC, payload(100 + n), priority=PRIORITY_TEST) for n in range(4)]
    events += [box.enqueue(TOPIC, payload(n), priority=PRIORITY_EVENT) for n in range(4, 6)]
    assert box.depth == 10 and box.dropped == 0

    caplog.set_level(logging.WARNING, logger="edge_agent.comms.outbox")
    # Three more events: the three oldest test messages go, not any event.
    events += [box.enqueue(TOPIC, payload(n), priority=PRIORITY_EVENT) for n in range(6, 9)]
    assert box.dropped == 3
    left = {m.seq for m in box.pending(100)}
    assert set(events) <= left and left - set(events) == {tests[3]}
    # Two more: the last test message, then the oldest event.
    events += [box.enqueue(TOPIC, payload(n), priority=PRIORITY_EVENT) for n in range(9, 11)]
    assert box.dropped == 5
    assert [m.payload for m in box.pending(100)] == [payload(n) for n in range(1, 11)]
    assert box.bytes == 10 * size

    # A test message never pushes out an event: it is the one dropped (and counted).
    assert box.enqueue(TOPIC, payload(200), priority=PRIORITY_TEST) is None
    assert box.dropped == 6 and box.depth == 10
    # A message larger than the whole bound is dropped too, nothing else is.
    assert box.enqueue(TOPIC, b"x" * (11 * size), priority=PRIORITY_EVENT) is None
    assert box.dropped == 7 and box.depth == 10
    # One burst of drops, one warning (not one per message).
    warnings = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(warnings) == 1

    # Room again (acks): the burst ends with a summary, and the next burst warns again.
    box.ack_many([m.seq for m in box.pending(2)])
    box.enqueue(TOPIC, payload(300), priority=PRIORITY_EVENT)
    assert any("has room again; 7 messages were dropped" in r.getMessage() for r in caplog.records)
    box.enqueue(TOPIC, payload(301), priority=PRIORITY_EVENT)
    box.enqueue(TOPIC, payload(302), priority=PRIORITY_EVENT)
    assert box.dropped == 8
    assert len([r for r in caplog.records if "is full" in r.getMessage()]) == 2
    box.close()

    # The counter and the byte total survive a restart.
    again = Outbox(tmp_path / "outbox.db", max_bytes=10 * size)
    assert again.dropped == 8 and again.depth == 10 and again.bytes == 10 * size
    again.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from edge_agent.comms.outbox import Outbox
    path, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    box = Outbox(path)
    while not go.exists():
        time.sleep(0.01)
    for n in range(count):
        box.enqueue("diaolou/v1/site/box/event", f"{name}:{n}".encode(), 1, 2)
    print("done", flush=True)
    """
)


def test_two_processes_and_threads_enqueue_into_one_outbox(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    go = tmp_path / "go"
    count = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("agent", "cli")
    ]
    box = Outbox(path)  # this process writes too, from two threads

    def write(name: str) -> None:
        for n in range(count):
            box.enqueue(TOPIC, f"{name}:{n}".encode())

    threads = [threading.Thread(target=write, args=(name,)) for name in ("t1", "t2")]
    go.touch()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.strip() == "done", err

    rows = box.pending(10_000)
    assert len(rows) == 4 * count == box.depth
    assert len({r.seq for r in rows}) == len(rows)
    # Each writer's messages are in its own order: seq order is commit order.
    for name in ("agent", "cli", "t1", "t2"):
        mine = [int(r.payload.split(b":")[1]) for r in rows if r.payload.startswith(name.encode() + b":")]
        assert mine == list(range(count)), name
    assert box.bytes == sum(r.size for r in rows)
    box.close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from edge_agent.comms.outbox import AgentLock
    lock = AgentLock(Path(sys.argv[1]))
    lock.acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_agent_lock_tells_whether_an_agent_runs_and_dies_with_it(tmp_path: Path) -> None:
    assert not AgentLock.is_held(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert AgentLock.is_held(tmp_path)
        mine = AgentLock(tmp_path)
        assert not mine.try_acquire()
        assert mine.holder() == holder.pid
        with pytest.raises(RuntimeError, match="is an agent running"):
            mine.acquire(timeout=0.3)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    # The kernel releases a flock when its holder dies: no stale lock after kill -9.
    assert wait_for(lambda: not AgentLock.is_held(tmp_path), timeout=5)
    with AgentLock(tmp_path) as lock:
        assert lock.held and AgentLock.is_held(tmp_path)
        assert not AgentLock(tmp_path).try_acquire()  # a second open file in the same process, too
    assert not AgentLock.is_held(tmp_path)


def test_the_writer_encodes_ranks_and_wakes_for_every_kind_of_message(tmp_path: Path) -> None:
    """Events, snapshots, replies and test alarms go in through one writer: each on its topic with
    the priority its kind earns, the link woken once per message that went in."""
    woken: list[int] = []
    box = Outbox(tmp_path / "outbox.db", max_bytes=4000)
    writer = OutboxWriter(box, "site", "box", wake=lambda: woken.append(1))
    now = time.time()

    def event(test: bool) -> Event:
        kind: Literal["test", "camera_offline"] = "test" if test else "camera_offline"
        return Event(id=new_event_id(), kind=kind, phase="instant", camera=None, time=now, test=test)

    alert, alarm = writer.event(event(test=False)), writer.event(event(test=True))
    reply = writer.reply(Reply(id="c-1", ok=True, time=now))
    jpeg = b"\xff\xd8\xff" + b"\x00" * 100 + b"\xff\xd9"
    picture = writer.snapshot(new_event_id(), jpeg)
    with pytest.raises(ContractError, match="not a complete JPEG"):
        writer.snapshot(new_event_id(), b"GIF89a")
    rows = {row.seq: row for row in box.pending()}
    assert [
        (parse_topic(rows[a.seq or 0].topic).kind, rows[a.seq or 0].priority) for a in (alert, alarm, reply, picture)
    ] == [
        ("event", PRIORITY_EVENT),
        ("event", PRIORITY_TEST),
        ("reply", PRIORITY_STATUS),
        ("snapshot", PRIORITY_SNAPSHOT),
    ]
    assert decode(Reply, rows[reply.seq or 0].payload).id == "c-1" and rows[picture.seq or 0].payload == jpeg
    assert len(woken) == 4
    # A full outbox makes room from the bottom: a real alert pushes out the test alarm first.
    for _ in range(50):
        added = writer.event(event(test=False))
        if added.evicted:
            break
    assert added.seq is not None and added.evicted[0] == alarm.seq
    assert box.remaining([alert.seq or 0]) == {alert.seq}
