"""`diaolou-agent test-alarm`: prove the path from this box to the broker with N test events.

The events go through the real outbox, so they take exactly the path a real alert takes.
Who sends them depends on whether the agent runs (it holds <storage.root>/agent.lock):
- agent running: its MQTT session sends them (it polls the outbox); we only wait for the rows
  to be acknowledged. A second session under the same client id would kick the agent's off
  the broker, so we never open one;
- agent not running: we take the lock ourselves (an agent starting meanwhile waits for it),
  run a link with the agent's client id until the rows are acknowledged, and stop;
- broker unreachable or refusing: the events stay queued and the agent sends them when it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from contract import Event, encode, topic
from contract.broker import parse_broker_url
from edge_agent.comms.link import MqttLink
from edge_agent.comms.outbox import PRIORITY_TEST, AgentLock, Outbox
from edge_agent.config.schema import AgentConfig
from edge_agent.events.ids import new_event_id

POLL_SECONDS = 0.1


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
    events = make_test_events(count)
    ids = [e.id for e in events]
    outbox = Outbox.at(root, config.mqtt.outbox_max_mb)
    try:
        event_topic = topic(config.site, config.device, "event")
        seqs = [s for s in (outbox.enqueue(event_topic, encode(e), 1, PRIORITY_TEST) for e in events) if s is not None]
        lock = AgentLock(root)
        if not lock.try_acquire():
            left = _wait_gone(outbox, seqs, wait_seconds)
            return _result(count, seqs, left, "agent", ids, _agent_message(lock, count, seqs, left, wait_seconds))
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
        return _result(count, seqs, left, "direct", ids, _with_drops(message, count, seqs))
    finally:
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
        return _with_drops(f"{_alarms(len(seqs))} acknowledged by the broker, sent by {agent}", count, seqs)
    return _with_drops(
        f"{len(left)} of {_alarms(count)} not yet acknowledged after {wait_seconds:.0f} s; {agent} has them "
        "queued and sends them when its link is up (see its log for the link state)",
        count,
        seqs,
    )


def _alarms(n: int) -> str:
    return f"{n} test alarm{'' if n == 1 else 's'}"


def _with_drops(message: str, count: int, seqs: list[int]) -> str:
    if len(seqs) < count:
        return f"{message}; {count - len(seqs)} were dropped because the outbox is full of real alerts"
    return message


def _result(
    count: int, seqs: list[int], left: set[int], via: Literal["agent", "direct"], ids: list[str], message: str
) -> TestAlarmResult:
    return TestAlarmResult(
        count=count,
        sent=len(seqs),
        acked=len(seqs) - len(left),
        queued=len(left),
        via=via,
        message=message,
        event_ids=ids,
    )
