"""One door at work: a card in, a decision, the lock released, an access event out; the contact
and exit button watched for alarms.

Every decision (granted or not, and unreadable cards) becomes an `access` event, every alarm a
`door_alarm` event, and every change of the contact (opened, closed) a `door` event, all through
the outbox (`emit`), so the hub's access log and door board miss nothing while the link is down.
Alarms:

- `forced_open`: the contact opens when no grant or exit press released the lock (within the
  relay's pulse);
- `held_open`: the door stays open past `held_open_seconds` (checked by `tick`);
- `repeated_denials`: `DENIALS_FOR_ALARM` refusals at the door within `DENIAL_WINDOW_S` (someone
  trying cards), once per window;
- `tailgating` (a door with a camera and a door line): more persons crossed in than were granted
  during the door's open time (gate/doorline.py), found by the camera, raised by `tick`.

At a door with a camera every event names the camera and carries the picture of its moment
(gate/doorcam.py): the controller takes only a reference to a decoded frame, after the relay.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from contract import Event
from edge_agent.events.ids import new_event_id
from edge_agent.gate.credential import CardReadError, Credential
from edge_agent.gate.door import DoorIO
from edge_agent.gate.engine import Decision, Engine

if TYPE_CHECKING:
    from edge_agent.gate.doorcam import DoorCamera, Grab

DENIALS_FOR_ALARM = 5
DENIAL_WINDOW_S = 60.0
MAX_WHY = 300


@dataclass(frozen=True)
class DoorRules:
    name: str
    building: str
    pulse_seconds: float
    held_open_seconds: float


class DoorController:
    def __init__(
        self,
        rules: DoorRules,
        engine: Engine,
        io: DoorIO,
        emit: Callable[[Event], object],
        camera: DoorCamera | None = None,
    ) -> None:
        self.rules = rules
        self.engine = engine
        self.io = io
        self.emit = emit
        self.camera = camera
        self._lock = threading.Lock()
        self._released_until = 0.0
        self._opened_at: float | None = None
        self._held_alarmed = False
        self._contact_open = False  # a door starts closed: the first report that matters is an opening
        self._denials: deque[float] = deque()
        self._denial_alarm_at = float("-inf")

    def on_card(self, credential: Credential, at: float) -> Decision:
        with self._lock:
            decision = self.engine.decide(self.rules.name, credential, at)
            if decision.granted:
                self.engine.admit(self.rules.name, decision, at)
                self.io.release(self.rules.pulse_seconds)
                self._released_until = at + self.rules.pulse_seconds
                if self.camera is not None:
                    self.camera.granted(at, self._released_until + self.rules.held_open_seconds)
            holder = decision.holder
            self._event(
                "access",
                at,
                granted=decision.granted,
                reason=decision.reason,
                why=decision.why[:MAX_WHY],
                card=credential.label,
                employee_no=holder.employee_no if holder else None,
                name=holder.name if holder else None,
            )
            if not decision.granted:
                self._denied(at)
        return decision

    def on_bad_read(self, error: CardReadError, at: float) -> None:
        """A frame no card could have sent (noise, wrong parity, garbage): refused and logged."""
        with self._lock:
            self._event("access", at, granted=False, reason="bad_read", why=str(error)[:MAX_WHY])
            self._denied(at)

    def on_exit(self, at: float) -> None:
        with self._lock:
            self.io.release(self.rules.pulse_seconds)
            self._released_until = at + self.rules.pulse_seconds

    def on_contact(self, is_open: bool, at: float) -> None:
        with self._lock:
            if is_open != self._contact_open:  # a bouncing contact repeats its state: one event per change
                self._contact_open = is_open
                self._event("door", at, open=is_open)
            if not is_open:
                self._opened_at, self._held_alarmed = None, False
                return
            self._opened_at = at
            if at > self._released_until:
                self._event("door_alarm", at, alarm="forced_open", why="the door opened without a grant or exit press")

    def tick(self, now: float) -> None:
        with self._lock:
            opened = self._opened_at
            if opened is not None and not self._held_alarmed and now - opened > self.rules.held_open_seconds:
                self._held_alarmed = True
                why = f"open for more than {self.rules.held_open_seconds:.0f} s"
                self._event("door_alarm", now, alarm="held_open", why=why)
            for found in self.camera.findings() if self.camera is not None else []:
                tail = found.tailgating
                why = f"{tail.persons} persons crossed the door line; cards granted: {tail.grants}"
                self._event(
                    "door_alarm",
                    tail.at,
                    found.grab,
                    alarm="tailgating",
                    why=why,
                    grants=tail.grants,
                    persons=tail.persons,
                )

    def _denied(self, at: float) -> None:
        self._denials.append(at)
        while self._denials and self._denials[0] < at - DENIAL_WINDOW_S:
            self._denials.popleft()
        if len(self._denials) >= DENIALS_FOR_ALARM and at - self._denial_alarm_at > DENIAL_WINDOW_S:
            self._denial_alarm_at = at
            why = f"{len(self._denials)} refusals within {DENIAL_WINDOW_S:.0f} s"
            self._event("door_alarm", at, alarm="repeated_denials", why=why)

    def _event(
        self, kind: Literal["access", "door_alarm", "door"], at: float, grab: Grab | None = None, **detail: Any
    ) -> None:
        """Emit the event; at a door with a camera, with the picture `grab` (default: the newest). A
        `door` change (opened, closed) carries no picture: its swipe or alarm has one."""
        detail = {"door": self.rules.name, "building": self.rules.building, **detail}
        event_id, camera = new_event_id(at), self.camera if kind != "door" else None
        if camera is None:
            self.emit(Event(id=event_id, kind=kind, phase="instant", time=at, detail=detail))
            return
        grab = grab or camera.grab(at)
        ref = camera.snapshot_ref(event_id, at) if grab is not None else None
        self.emit(
            Event(id=event_id, kind=kind, phase="instant", camera=camera.camera, time=at, detail=detail, snapshot=ref)
        )
        if grab is not None and ref is not None:
            camera.ship(event_id, ref, grab)  # after the event: the hub keeps a snapshot of an event it has
