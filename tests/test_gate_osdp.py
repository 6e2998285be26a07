"""An OSDP reader with the agent as control panel (libosdp), against a real libosdp peripheral
device in the same process over a pair of pipes standing in for RS-485: secure channel with the
reader's key, Wiegand and ASCII card reads decoded like every reader's, a wrong parity refused,
a reader with another key never trusted."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import osdp
import pytest
import yaml

from contract import Event
from edge_agent.config import parse_config
from edge_agent.gate.credential import CardReadError, encode_wiegand
from edge_agent.gate.engine import Engine
from edge_agent.gate.loop import GateDoors
from edge_agent.gate.osdp_reader import OsdpReader, frame_of
from edge_agent.gate.store import DoorRow, open_db
from tests.conftest import wait_for

KEY = bytes(range(16))
ADDRESS = 101


class PipeChannel(osdp.Channel):  # type: ignore[misc]
    def __init__(self, rfd: int, wfd: int) -> None:
        super().__init__()
        self.rfd, self.wfd = rfd, wfd
        fcntl.fcntl(rfd, fcntl.F_SETFL, os.O_NONBLOCK)

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.rfd, max_bytes)
        except BlockingIOError:
            return b""

    def write(self, buf: bytes) -> int:
        return os.write(self.wfd, buf)

    def flush(self) -> None:
        pass


def link(pd_key: bytes) -> tuple[OsdpReader, osdp.PeripheralDevice]:
    to_pd_r, to_pd_w = os.pipe()
    to_cp_r, to_cp_w = os.pipe()
    pd = osdp.PeripheralDevice(
        osdp.PDInfo(ADDRESS, PipeChannel(to_pd_r, to_cp_w), scbk=pd_key),
        osdp.PDCapabilities([]),
        log_level=osdp.LogLevel.Error,
    )
    pd.start()
    return OsdpReader("b07-east", PipeChannel(to_cp_r, to_pd_w), ADDRESS, KEY), pd


@pytest.fixture
def reader() -> Iterator[tuple[OsdpReader, osdp.PeripheralDevice]]:
    r, pd = link(KEY)
    yield r, pd
    r.close()
    pd.stop()


def card(bits: str) -> dict[str, object]:
    padded = bits + "0" * (-len(bits) % 8)
    data = bytes(int(padded[i : i + 8], 2) for i in range(0, len(padded), 8))
    return {"event": osdp.Event.CardRead, "reader_no": 0, "direction": 0, "format": osdp.CardFormat.Wiegand,
            "length": len(bits), "data": data}  # fmt: skip


def test_card_reads_arrive_over_the_secure_channel(reader: tuple[OsdpReader, osdp.PeripheralDevice]) -> None:
    r, pd = reader
    assert r.wait_secure(10)
    assert pd.submit_event(card(encode_wiegand(26, 12, 34567)))
    got = r.read(5)
    assert got is not None and (got.bits, got.facility, got.number) == (26, 12, 34567)
    bad = encode_wiegand(34, 300, 5)
    assert pd.submit_event(card(bad[:-1] + ("0" if bad[-1] == "1" else "1")))  # last parity bit flipped
    with pytest.raises(CardReadError, match="wrong odd parity"):
        r.read(5)
    assert r.read(0.3) is None


@pytest.mark.parametrize("pd_key", [bytes(16), bytes(range(1, 17))], ids=["default-key", "other-key"])
def test_a_reader_with_another_key_is_never_trusted(pd_key: bytes) -> None:
    r, pd = link(pd_key)
    try:
        assert not r.wait_secure(3)
        pd.submit_event(card(encode_wiegand(26, 12, 1)))
        assert r.read(1) is None
    finally:
        r.close()
        pd.stop()


def test_ascii_card_data_is_a_typed_number_and_events_that_are_no_card_are_refused() -> None:
    assert frame_of({"event": 1, "format": 2, "length": 10, "data": b"1234567890"}).text == "1234567890"  # type: ignore[union-attr]
    with pytest.raises(CardReadError, match="not a card read"):
        frame_of({"event": 2, "data": b""})
    with pytest.raises(CardReadError, match="26 bits in 2 bytes"):
        frame_of({"event": 1, "format": 1, "length": 26, "data": b"\x01\x02"})
    with pytest.raises(CardReadError, match="neither raw Wiegand nor ASCII"):
        frame_of({"event": 1, "format": 0, "length": 8, "data": b"\x01"})


def test_an_osdp_reader_from_agent_yaml_reads_cards_over_a_serial_port(tmp_path: Path) -> None:
    """The gate loop builds the reader from its config (port, address, key file): a pseudo-terminal
    stands in for the RS-485 port, a libosdp reader sits on its other end with the same key."""
    master, slave = os.openpty()
    (tmp_path / "b07-east.scbk").write_text(KEY.hex() + "\n")
    reader = {"kind": "osdp", "device": os.ttyname(slave), "address": ADDRESS, "key_file": "b07-east.scbk"}
    config = parse_config(
        yaml.safe_dump(
            {"storage": {"root": str(tmp_path)}, "doors": {"b07-east": {"building": "b07", "reader": reader}}}
        ),
        base_dir=tmp_path,
    )
    pd = osdp.PeripheralDevice(
        osdp.PDInfo(ADDRESS, PipeChannel(master, master), scbk=KEY),
        osdp.PDCapabilities([]),
        log_level=osdp.LogLevel.Error,
    )
    pd.start()
    db = open_db(tmp_path / "gate.db")
    events: list[Event] = []
    doors = GateDoors(
        config, Engine(db, {"b07-east": DoorRow("b07-east", "b07", "b07", "in", False)}, "UTC"), events.append
    )
    try:
        assert set(doors.controllers) == {"b07-east"}
        doors.start()
        assert pd.submit_event(card(encode_wiegand(26, 12, 34567)))
        assert wait_for(lambda: any(e.kind == "access" for e in events), timeout=20)
        access = next(e.detail for e in events if e.kind == "access")
        assert (access["card"], access["reason"]) == ("12/34567", "unknown_card")
    finally:
        doors.stop()
        pd.stop()
        os.close(master)
        os.close(slave)
