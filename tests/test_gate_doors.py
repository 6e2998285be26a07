"""A door at work without a network: the controller's decisions, relay pulses and alarms (held
open, repeated denials, an exit press is no forced opening), on the simulated door backend; the
libgpiod backend refuses a chip that is not there with words that name it."""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path

import gpiod
import pytest
import yaml
from gpiod.line import Value

from contract import Event
from edge_agent.comms import event_priority
from edge_agent.config import parse_config
from edge_agent.gate import loop
from edge_agent.gate.controller import DENIALS_FOR_ALARM, DoorController, DoorRules
from edge_agent.gate.credential import CardReadError, encode_wiegand, parse_wiegand
from edge_agent.gate.door import DoorIOError, GpiodDoor, GpioWiring, SimulatedDoor
from edge_agent.gate.engine import Engine
from edge_agent.gate.loop import GateDoors
from edge_agent.gate.reader import WedgeLine
from edge_agent.gate.serial_reader import SerialReader
from edge_agent.gate.simulator import SimulatorReader
from edge_agent.gate.store import DoorRow, open_db, put_credential, put_door, put_holder
from tests.conftest import wait_for

T = 1_790_000_000.0


@pytest.fixture
def door(tmp_path: Path) -> tuple[DoorController, SimulatedDoor, list[Event]]:
    db = open_db(tmp_path / "gate.db")
    row = DoorRow("b07-east", "b07", "b07", "in", False)
    put_door(db, row)
    holder = put_holder(db, "E001", "李伟", "b07", room="301")
    put_credential(db, holder, "wiegand26", 26, 12, 1)
    events: list[Event] = []
    sim = SimulatedDoor()
    controller = DoorController(
        DoorRules("b07-east", "b07", 3.0, 30.0), Engine(db, {row.name: row}, "UTC"), sim, events.append
    )
    sim.on_contact, sim.on_exit = controller.on_contact, controller.on_exit
    return controller, sim, events


def alarms(events: list[Event]) -> list[object]:
    return [e.detail["alarm"] for e in events if e.kind == "door_alarm"]


def test_a_grant_pulses_the_relay_and_a_door_held_open_raises_one_alarm(
    door: tuple[DoorController, SimulatedDoor, list[Event]],
) -> None:
    controller, sim, events = door
    assert controller.on_card(parse_wiegand(encode_wiegand(26, 12, 1)), T).granted
    assert [s for _, s in sim.pulses] == [3.0]
    sim.open_door(at=T + 1)
    controller.tick(T + 20)
    assert alarms(events) == []
    controller.tick(T + 31.5)
    controller.tick(T + 40)
    assert alarms(events) == ["held_open"]
    sim.close_door(at=T + 41)
    access = [e.detail for e in events if e.kind == "access"]
    assert access[0]["granted"] is True and access[0]["employee_no"] == "E001" and access[0]["building"] == "b07"


def test_an_exit_press_is_no_forced_opening_but_a_bare_opening_is(
    door: tuple[DoorController, SimulatedDoor, list[Event]],
) -> None:
    _, sim, events = door
    sim.press_exit(at=T)
    sim.open_door(at=T + 1)
    sim.close_door(at=T + 2)
    assert alarms(events) == [] and len(sim.pulses) == 1
    sim.open_door(at=T + 100)
    assert alarms(events) == ["forced_open"]


def test_each_change_of_the_contact_is_one_door_event(door: tuple[DoorController, SimulatedDoor, list[Event]]) -> None:
    controller, sim, events = door
    assert controller.on_card(parse_wiegand(encode_wiegand(26, 12, 1)), T).granted
    sim.open_door(at=T + 1)
    sim.open_door(at=T + 1.2)  # a bouncing contact repeats itself: still one opening
    sim.close_door(at=T + 5)
    sim.close_door(at=T + 5.1)
    sim.open_door(at=T + 100)  # forced: the opening, then its alarm
    changes = [(e.time, e.detail) for e in events if e.kind == "door"]
    assert changes == [
        (T + 1, {"door": "b07-east", "building": "b07", "open": True}),
        (T + 5, {"door": "b07-east", "building": "b07", "open": False}),
        (T + 100, {"door": "b07-east", "building": "b07", "open": True}),
    ]
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["door", "door_alarm"] and events[-2].id < events[-1].id  # the hub sorts by id
    assert event_priority(events[-2]) < event_priority(events[-1])  # a full outbox drops door changes first


def test_repeated_denials_raise_one_alarm_per_window(door: tuple[DoorController, SimulatedDoor, list[Event]]) -> None:
    controller, sim, events = door
    for i in range(DENIALS_FOR_ALARM * 2):
        if i % 2:
            controller.on_bad_read(CardReadError("wrong parity"), T + i)
        else:
            assert controller.on_card(parse_wiegand(encode_wiegand(26, 99, i)), T + i).reason == "unknown_card"
    assert alarms(events) == ["repeated_denials"]
    assert sim.pulses == []
    reasons = {e.detail["reason"] for e in events if e.kind == "access"}
    assert reasons == {"unknown_card", "bad_read"}


def test_gpio_door_on_a_missing_chip_names_it() -> None:
    """With the `gate` extra the chip is named; without it, the missing binding is."""
    try:
        import gpiod  # noqa: F401
    except ImportError:
        expected = "pip install gpiod"
    else:
        expected = "/dev/gpiochip-none"
    with pytest.raises(DoorIOError, match=expected):
        GpiodDoor(GpioWiring("/dev/gpiochip-none", 17, 27, 22))


def test_a_serial_reader_refuses_garbage_and_overlong_lines_and_keeps_reading(tmp_path: Path) -> None:
    """A real pseudo-terminal stands in for the RS-232 line: the reader opens it like a port."""

    master, slave = os.openpty()
    reader = SerialReader("b07-east", os.ttyname(slave))
    try:
        os.write(master, b"\x021234567890\x03\r\n")
        card = reader.read(2)
        assert card is not None and card.number == 1234567890
        os.write(master, b"\xff\xfe\x00garbage\r\n")
        with pytest.raises(CardReadError, match="serial line is not text"):
            reader.read(2)
        os.write(master, b"7" * 5000 + b"\r\n")
        with pytest.raises(CardReadError, match="serial line too long"):
            reader.read(2)
        os.write(master, b"12ab\r\n42\r\n")
        with pytest.raises(CardReadError, match="'12ab' is not a card number"):
            reader.read(2)
        card = reader.read(2)  # the line after the bad ones is read as usual
        assert card is not None and card.number == 42
        assert reader.read(0.2) is None  # nothing more: None, no error
    finally:
        reader.close()
        os.close(master)


def test_readers_and_gpio_chips_that_cannot_open_leave_the_other_doors_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every reader kind and the GPIO door backend, each pointed at something that is not there:
    each door is logged with its name and device, and the one working door still decides."""
    r, w = os.pipe()  # a pipe is no input device: the wedge reader cannot grab it
    (tmp_path / "bad.key").write_text("not a key\n")
    gpio = {"io": {"backend": "gpiod", "chip": "/dev/gpiochip-none"}, "relay": {"line": 17}}
    wiegand = {"kind": "wiegand", "chip": "/dev/gpiochip-none", "d0_line": 5, "d1_line": 6}
    osdp = {"kind": "osdp", "device": "/dev/ttyNONE"}
    config = parse_config(
        yaml.safe_dump(
            {
                "storage": {"root": str(tmp_path)},
                "doors": {
                    "b07-east": {"building": "b07"},
                    "b07-west": {"building": "b07", "reader": {"kind": "serial", "device": str(tmp_path / "ttyNONE")}},
                    "b07-wedge": {"building": "b07", "reader": {"kind": "wedge", "device": f"/proc/self/fd/{r}"}},
                    "b07-wg": {"building": "b07", "reader": wiegand},
                    "b07-osdp": {"building": "b07", "reader": {**osdp, "key_file": "bad.key"}},
                    "b07-nokey": {"building": "b07", "reader": {**osdp, "key_file": "none.key"}},
                    "b07-gpio": {"building": "b07", **gpio},
                },
            }
        ),
        base_dir=tmp_path,
    )  # fmt: skip
    db = open_db(tmp_path / "gate.db")
    rows = {n: DoorRow(n, "b07", "b07", "in", False) for n in config.doors}
    events: list[Event] = []
    try:
        doors = GateDoors(config, Engine(db, rows, "UTC"), events.append)
    finally:
        os.close(r)
        os.close(w)
    # A door without a reader still runs (contact, exit button) and tries its reader again; a door
    # without its I/O is out of service.
    assert set(doors.controllers) == set(config.doors) - {"b07-gpio"}
    assert {n for n, r in doors.readers.items() if r is not None} == {"b07-east"}
    for expected in (
        "door b07-west: reader b07-west: cannot open serial port",
        f"door b07-wedge: reader b07-wedge: cannot grab input device /proc/self/fd/{r}",
        "door b07-wg: cannot open GPIO chip /dev/gpiochip-none lines D0=5 D1=6",
        f"door b07-osdp: OSDP key file {tmp_path / 'bad.key'}: 32 hex digits expected",
        f"door b07-nokey: cannot read the OSDP key file {tmp_path / 'none.key'}",
        "door b07-gpio: door I/O: cannot open GPIO chip /dev/gpiochip-none lines [17]",
    ):
        assert expected in caplog.text
    doors.start()
    reader = doors.readers["b07-east"]
    assert isinstance(reader, SimulatorReader)
    reader.push(WedgeLine("99\r\n"))
    assert wait_for(lambda: len(events) == 1, timeout=5)
    assert events[0].detail["reason"] == "unknown_card"
    doors.stop()


def test_a_reader_plugged_in_after_the_agent_started_reads_cards_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serial port is not there when the gate starts (a USB-serial adapter enumerating late):
    the door runs without it, tries again, and decides the first card once the port appears. Then
    the port goes away (the cable pulled) and comes back: the door reads again."""
    monkeypatch.setattr(loop, "REOPEN_S", 0.2)
    port = tmp_path / "ttyUSB0"
    config = parse_config(
        yaml.safe_dump(
            {"storage": {"root": str(tmp_path)},
             "doors": {"b07-east": {"building": "b07", "reader": {"kind": "serial", "device": str(port)}}}}
        )
    )  # fmt: skip
    db = open_db(tmp_path / "gate.db")
    events: list[Event] = []
    doors = GateDoors(
        config, Engine(db, {"b07-east": DoorRow("b07-east", "b07", "b07", "in", False)}, "UTC"), events.append
    )
    doors.start()
    assert "cannot open serial port" in caplog.text and doors.readers["b07-east"] is None
    master, slave = os.openpty()
    try:
        port.symlink_to(os.ttyname(slave))  # the adapter appears
        assert wait_for(lambda: doors.readers["b07-east"] is not None, timeout=10)
        os.write(master, b"42\r\n")
        assert wait_for(lambda: len(events) == 1, timeout=5)
        assert events[0].detail["reason"] == "unknown_card"
        assert "its reader is open again" in caplog.text
        os.close(master)  # the cable pulled: the port reads as gone
        master = -1
        assert wait_for(lambda: doors.readers["b07-east"] is None, timeout=10)
        assert "reader lost" in caplog.text
        os.close(slave)
        master, slave = os.openpty()  # plugged in again, under the same name
        port.unlink()
        port.symlink_to(os.ttyname(slave))
        assert wait_for(lambda: doors.readers["b07-east"] is not None, timeout=10)
        os.write(master, b"43\r\n")
        assert wait_for(lambda: len(events) == 2, timeout=5)
    finally:
        doors.stop()
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


class RecordedDoorLines:
    """A libgpiod line request for a door's lines: set values are noted, input edges replayed."""

    def __init__(self) -> None:
        self.outputs: list[tuple[int, Value]] = []
        self.edges: list[gpiod.EdgeEvent] = []
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.released = False

    def set_value(self, line: int, value: Value) -> None:
        self.outputs.append((line, value))

    def wait_edge_events(self, timeout: datetime.timedelta) -> bool:
        return self.ready.wait(timeout.total_seconds())

    def read_edge_events(self) -> list[gpiod.EdgeEvent]:
        with self.lock:
            out, self.edges = self.edges, []
            self.ready.clear()
        return out

    def edge(self, line: int, rising: bool) -> None:
        kind = gpiod.EdgeEvent.Type.RISING_EDGE if rising else gpiod.EdgeEvent.Type.FALLING_EDGE
        with self.lock:
            self.edges.append(gpiod.EdgeEvent(kind.value, 0, line, 1, 1))
            self.ready.set()

    def release(self) -> None:
        self.released = True


def test_gpio_door_lines_drive_the_relay_and_report_contact_and_exit_button() -> None:
    """The GPIO backend's own code over recorded lines: the relay goes active for the pulse and
    back, an open contact and an exit press reach the controller; levels are logical (libgpiod
    applies each line's active-low)."""
    lines = RecordedDoorLines()
    io = GpiodDoor(GpioWiring("/dev/gpiochip0", 17, 27, 22, relay_active_low=True), request=lines)
    seen: list[object] = []
    io.watch(lambda is_open, _at: seen.append("open" if is_open else "closed"), lambda _at: seen.append("exit"))
    io.release(0.2)
    assert wait_for(lambda: len(lines.outputs) == 2, timeout=5)
    assert lines.outputs == [(17, Value.ACTIVE), (17, Value.INACTIVE)]
    lines.edge(22, rising=True)  # the button pressed
    lines.edge(22, rising=False)  # and let go: no second press
    lines.edge(27, rising=True)  # edges read in one burst: each keeps its own direction
    lines.edge(27, rising=False)
    assert wait_for(lambda: len(seen) == 3, timeout=5)
    assert seen == ["exit", "open", "closed"]
    io.close()
    assert lines.released and lines.outputs[-1] == (17, Value.INACTIVE)
