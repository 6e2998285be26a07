"""`diaolou-agent test-alarm`: prove the path from this box to the broker with N test events.

The events take exactly the path a real alert takes: saved in events.db (kind `test`, marked
test), handed by the event store to its shipper, committed to the real outbox. Who sends them
depends on whether the agent runs (it holds <storage.root>/agent.lock):
- agent running: its MQTT session sends them (it polls the outbox); we only wait for the rows
  to be acknowledged. A second session under the same client id would kick the agent's off
  the broker, so we never open one;
- agent not running: we take the lock ourselves (an agent starting meanwhile waits for it),
  run a link with the agent's client id until the rows are acknowledged, and stop;
- broker unreachable or refusing: the events stay queued and the agent sends them when it runs.

A full outbox is reported, never hidden: test alarms may evict older replies and test alarms
(never real alerts), and the message says how many, before it says what was delivered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from contract import Event
from contract.broker import parse_broker_url
from edge_agent.comms.link import MqttLink
from edge_agent.comms.outbox import Added, AgentLock, Outbox
from edge_agent.comms.shipping import EventShipper
from edge_agent.comms.writer import OutboxWriter
from edge_agent.config.schema import AgentConfig
from edge_agent.events.ids import new_event_id
from edge_agent.events.local import LocalEvent
from edge_agent.events.store import EventStore

POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Queued:
    """How the test alarms went into the outbox."""

    count: int  # asked for
    seqs: list[int]  # ours, still in the outbox once all were added
    refused: int  # ours dropped at once: the outbox is full of real alerts
    pushed_out: int  # ours evicted by our own later ones: the outbox holds fewer than `count`
    evicted: int  # older messages dropped to make room for ours

    @classmethod
    def of(cls, added: list[Added]) -> Queued:
        ours = {a.seq for a in added if a.seq is not None}
        evicted = {seq for a in added for seq in a.evicted}
        return cls(
            count=len(added),
            seqs=sorted(ours - evicted),
            refused=sum(a.seq is None for a in added),
            pushed_out=len(ours & evicted),
            evicted=len(evicted - ours),
        )

    def notes(self, outbox: Outbox) -> list[str]:
        """One line per way the full outbox changed things; empty when it had room."""
        bound = f"mqtt.outbox_max_mb (now {outbox.max_bytes / 1e6:g} MB)"
        lines = []
        if self.evicted:
            lines.append(
                f"queued {_alarms(len(self.seqs))}; the outbox {outbox.path} is full and dropped {self.evicted} "
                f"older message{'' if self.evicted == 1 else 's'} to make room (replies or earlier test alarms, "
                f"never real alerts); raise {bound} to keep more while the link is down"
            )
        if self.pushed_out:
            lines.append(
                f"{self.pushed_out} of {_alarms(self.count)} were pushed out by the later ones: the outbox holds "
                f"fewer; ask for fewer (--count) or raise {bound}"
            )
        if self.refused:
            lines.append(
                f"{self.refused} of {_alarms(self.count)} were dropped at once: the outbox {outbox.path} is full of "
                "real alerts waiting for the broker (see the agent's log for the link state)"
            )
        return lines


@dataclass(frozen=True)
class TestAlarmResult:
    __test__ = False  # not a pytest test class, despite the name

    count: int  # asked for
    sent: int  # committed to the outbox (the rest were dropped: outbox full of real alerts)
    acked: int  # acknowledged by the broker
    queued: int  # still in the outbox, to be sent by the agent
    via: Literal["agent", "direct"]
    message: str  # for humans
    event_ids: list[str] = field(default_factory=list)
    evicted: int = 0  # older messages (replies, earlier test alarms) the full outbox dropped for these

    @property
    def ok(self) -> bool:
        return self.count > 0 and self.acked == self.count


def make_test_events(count: int) -> list[Event]:
    now = time.time()
    return [
        Event(
            id=new_event_id(now),
            kind="test",
            phase="instant",
            time=now,
            test=True,
            detail={"source": "diaolou-agent test-alarm", "n": n + 1, "of": count},
        )
        for n in range(count)
    ]


def send_test_alarms(config: AgentConfig, count: int = 1, wait_seconds: float = 30.0) -> TestAlarmResult:
    root = config.storage.root
    broker = parse_broker_url(config.mqtt.url).display()
    events = [LocalEvent(message=message) for message in make_test_events(count)]
    ids = [e.id for e in events]
    outbox = Outbox.at(root, config.mqtt.outbox_max_mb)
    # No wake-up to give: a running agent's link finds them at its next poll, ours below at once.
    store = EventStore(root, EventShipper(OutboxWriter(outbox, config.site, config.device), root))
    try:
        # An event that could not be queued at all counts as dropped; it stays in events.db.
        queued = Queued.of([store.save(event) or Added(None) for event in events])
        seqs = queued.seqs
        notes = queued.notes(outbox)
        lock = AgentLock(root)
        if not lock.try_acquire():
            left = _wait_gone(outbox, seqs, wait_seconds)
            message = _agent_message(lock, count, seqs, left, wait_seconds)
            return _result(queued, left, "agent", ids, "\n".join([*notes, message]))
        try:
            link = MqttLink.for_agent(config, outbox, poll_seconds=POLL_SECONDS)
            link.start()
            try:
                left = _wait_gone(outbox, seqs, wait_seconds, give_up=lambda: _refused(link))
                problem = link.last_error
            finally:
                link.stop()
        finally:
            lock.release()
        if not left:
            message = f"{_alarms(len(seqs))} acknowledged by {broker} (sent by this command: the agent is not running)"
        else:
            why = problem or f"not acknowledged within {wait_seconds:.0f} s"
            message = (
                f"{len(left)} of {_alarms(count)} not delivered: {why}. They stay queued in "
                f"{outbox.path} and the agent sends them when it runs"
            )
        return _result(queued, left, "direct", ids, "\n".join([*notes, message]))
    finally:
        store.close()
        outbox.close()


def _refused(link: MqttLink) -> bool:
    """A broker that refuses our credentials will not change its mind while we wait."""
    return not link.connected and "refused the connection" in (link.last_error or "")


def _wait_gone(
    outbox: Outbox, seqs: list[int], wait_seconds: float, give_up: Callable[[], bool] | None = None
) -> set[int]:
    deadline = time.monotonic() + wait_seconds
    left = outbox.remaining(seqs)
    while left and time.monotonic() < deadline:
        if give_up is not None and give_up():
            break
        time.sleep(POLL_SECONDS)
        left = outbox.remaining(seqs)
    return left


def _agent_message(lock: AgentLock, count: int, seqs: list[int], left: set[int], wait_seconds: float) -> str:
    pid = lock.holder()
    agent = f"the running agent (pid {pid})" if pid else "the running agent"
    if not left:
        return f"{_alarms(len(seqs))} acknowledged by the broker, sent by {agent}"
    return (
        f"{len(left)} of {_alarms(count)} not yet acknowledged after {wait_seconds:.0f} s; {agent} has them "
        "queued and sends them when its link is up (see its log for the link state)"
    )


def _alarms(n: int) -> str:
    return f"{n} test alarm{'' if n == 1 else 's'}"


def _result(
    queued: Queued, left: set[int], via: Literal["agent", "direct"], ids: list[str], message: str
) -> TestAlarmResult:
    return TestAlarmResult(
        count=queued.count,
        sent=len(queued.seqs),
        acked=len(queued.seqs) - len(left),
        queued=len(left),
        via=via,
        message=message,
        event_ids=ids,
        evicted=queued.evicted,
    )
