"""Dormitory card gates: reader frames, the local decision and its reasons, the CSV import, and
the commands an installer runs (`config init --door`, `gate import`, `decide`)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_agent.gate.credential import (
    CardReadError,
    Credential,
    bits_from_pulses,
    encode_wiegand,
    parse_card,
    parse_wedge_line,
    parse_wiegand,
)
from edge_agent.gate.engine import Engine
from edge_agent.gate.importer import HEADER, GateImportError, import_csv
from edge_agent.gate.reader import Reader, WedgeLine, WiegandBits, WiegandPulses
from edge_agent.gate.simulator import SimulatorReader
from edge_agent.gate.store import (
    DoorRow,
    add_to_group,
    open_db,
    put_credential,
    put_group,
    put_holder,
    put_holiday,
    put_schedule,
    set_state,
)
from tests.conftest import agent_cmd

ZONE = "Asia/Shanghai"
# A known H10301 frame: facility 18, card 12345 (every Wiegand calculator agrees on it).
W26 = "0" + "00010010" + "0011000000111001" + "1"


def at(text: str) -> float:
    """A local (site) time, e.g. "2026-12-07 09:30" (a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE)).timestamp()


# --- frames ---------------------------------------------------------------------------------------
def test_wiegand26_good_frame() -> None:
    assert encode_wiegand(26, 18, 12345) == W26
    card = parse_wiegand(W26)
    assert card == Credential("wiegand26", 26, 18, 12345, W26)
    assert card.label == "18/12345"


@pytest.mark.parametrize(("facility", "number"), [(0, 0), (255, 65535), (1, 2), (170, 43690)])
def test_wiegand26_round_trip(facility: int, number: int) -> None:
    card = parse_wiegand(encode_wiegand(26, facility, number))
    assert (card.facility, card.number, card.bits) == (facility, number, 26)


@pytest.mark.parametrize(("facility", "number"), [(0, 0), (65535, 65535), (1234, 56789)])
def test_wiegand34_good_frame(facility: int, number: int) -> None:
    frame = encode_wiegand(34, facility, number)
    assert len(frame) == 34
    assert frame[:17].count("1") % 2 == 0 and frame[17:].count("1") % 2 == 1
    card = parse_wiegand(frame)
    assert (card.format, card.facility, card.number) == ("wiegand34", facility, number)


def _flip(frame: str, i: int) -> str:
    return frame[:i] + ("1" if frame[i] == "0" else "0") + frame[i + 1 :]


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (_flip(W26, 0), "wrong even parity"),
        (_flip(W26, 25), "wrong odd parity"),
        (_flip(W26, 5), "wrong even parity"),  # a data bit in the leading half
        (_flip(W26, 20), "wrong odd parity"),  # a data bit in the trailing half
        (_flip(encode_wiegand(34, 1, 2), 0), "Wiegand 34: wrong even parity"),
        (_flip(encode_wiegand(34, 1, 2), 33), "Wiegand 34: wrong odd parity"),
        (W26[:-1], "wrong Wiegand length: 25 bits"),
        (W26 + "0", "wrong Wiegand length: 27 bits"),
        ("", "not a Wiegand frame"),
        ("01x01", "not a Wiegand frame"),
        ("0" * 10_000, "too long"),
        ("１" * 26, "not a Wiegand frame"),  # full-width digits are not bits
    ],
)
def test_bad_wiegand_frames_say_what_is_wrong(frame: str, words: str) -> None:
    with pytest.raises(CardReadError, match=words):
        parse_wiegand(frame)


def _pulses(bits: str, spacing: float = 0.002) -> tuple[tuple[float, int], ...]:
    return tuple((i * spacing, int(b)) for i, b in enumerate(bits))


def test_bits_from_pulse_timings() -> None:
    assert bits_from_pulses(_pulses(W26)) == W26
    pulses = list(_pulses(W26))
    with pytest.raises(CardReadError, match="noise or bounce"):
        bits_from_pulses([*pulses[:3], (pulses[2][0] + 0.000_01, 1), *pulses[3:]])
    late = [(t + (0.1 if i >= 10 else 0), w) for i, (t, w) in enumerate(pulses)]
    with pytest.raises(CardReadError, match="cut after 10 bits"):
        bits_from_pulses(late)
    with pytest.raises(CardReadError, match="neither D0"):
        bits_from_pulses([(0.0, 2)])
    with pytest.raises(CardReadError, match="empty"):
        bits_from_pulses([])
    with pytest.raises(CardReadError, match="too long"):
        bits_from_pulses(_pulses("1" * 1000))


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("\r\n", "empty keyboard line"),
        ("12a4\n", "not a card number"),
        ("-1234\n", "not a card number"),
        ("１２３\n", "not a card number"),  # full-width digits
        ("1" * 19 + "\n", "too long: 19 digits"),
        ("9" * 100_000, "keyboard line too long"),
    ],
)
def test_bad_wedge_lines(line: str, words: str) -> None:
    with pytest.raises(CardReadError, match=words):
        parse_wedge_line(line)


def test_wedge_line_and_installer_cards() -> None:
    assert parse_wedge_line("0001234567\r\n") == Credential("number", 0, None, 1234567, "0001234567")
    assert parse_card(f"26:{W26}") == parse_wiegand(W26)
    assert parse_card("18/12345") == (18, 12345)
    assert parse_card("1234567") == Credential("number", 0, None, 1234567, "1234567")
    for bad, words in [
        (f"34:{W26}", "26 bits after '34:'"),
        ("40:0101", "write 26:BITS or 34:BITS"),
        ("a/b", "FC/NUMBER"),
        ("1/99999", "below 65536"),
    ]:
        with pytest.raises(CardReadError, match=words):
            parse_card(bad)


def test_simulator_reader_behind_the_protocol() -> None:
    sim = SimulatorReader("b07-east")
    reader: Reader = sim
    sim.push(WiegandBits(W26))
    sim.push(WiegandBits(_flip(W26, 0)))
    sim.push(WiegandPulses(_pulses(encode_wiegand(34, 7, 8))))
    sim.push(WedgeLine("42\n"))
    assert reader.read(timeout=1) == parse_wiegand(W26)
    with pytest.raises(CardReadError, match="parity"):
        reader.read(timeout=1)
    third = reader.read(timeout=1)  # the reader stays usable after a bad frame
    assert third is not None and (third.facility, third.number, third.bits) == (7, 8, 34)
    fourth = reader.read(timeout=1)
    assert fourth is not None and fourth.number == 42
    assert reader.read(timeout=0) is None
    reader.close()
    assert reader.read(timeout=0) is None


# --- decisions ------------------------------------------------------------------------------------
DOORS = {
    "b07-east": DoorRow("b07-east", "b07", "b07", "in", False),
    "b03-gate": DoorRow("b03-gate", "b03", "b03", "in", False),
    "b05-in": DoorRow("b05-in", "b05", "b05", "in", True),
    "b05-out": DoorRow("b05-out", "b05", "b05", "out", True),
}


def card(n: int) -> Credential:
    return parse_wiegand(encode_wiegand(26, 1, n))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    db = open_db(tmp_path / "gate.db")
    people = [
        ("E1", "b07", {}),  # resident of b07
        ("E2", "b07", {"state": "suspended"}),
        ("E3", "b07", {"state": "revoked"}),
        ("E4", "b03", {}),  # a cleaner: b03, plus b07 on weekday mornings
        ("E5", "b05", {}),
    ]
    ids = {no: put_holder(db, no, f"name {no}", building, room="101", **kw) for no, building, kw in people}
    for i, no in enumerate(ids, start=1):
        put_credential(db, ids[no], "wiegand26", 26, 1, i, raw=str(i))
    put_credential(db, ids["E1"], "wiegand26", 26, 1, 10, state="lost")
    put_credential(db, ids["E1"], "wiegand26", 26, 1, 11, state="revoked")
    put_credential(db, ids["E1"], "wiegand26", 26, 1, 12, valid_from=at("2027-01-01 00:00"))
    put_credential(db, ids["E1"], "wiegand26", 26, 1, 13, valid_until=at("2026-12-01 00:00"))
    visitor = put_holder(db, "V1", "visitor", "b07", kind="visitor", valid_until=at("2026-12-31 00:00"))
    put_credential(db, visitor, "number", 0, None, 777, max_uses=2)
    put_schedule(db, "mornings", [(d, 8 * 60, 12 * 60) for d in range(5)] + [(0, 14 * 60, 16 * 60)])
    put_group(db, "cleaners", ["b07"], schedule="mornings")
    add_to_group(db, ids["E4"], "cleaners")
    put_holiday(db, "2026-12-08", "a holiday")
    yield Engine(db, DOORS, ZONE)
    db.close()


MONDAY_9 = at("2026-12-07 09:00")


@pytest.mark.parametrize(
    ("door", "number", "when", "reason"),
    [
        ("b07-east", 1, MONDAY_9, "granted"),
        ("b07-east", 1, at("2026-12-06 03:00"), "granted"),  # own building: night, Sunday
        ("b07-east", 1, at("2026-12-08 03:00"), "granted"),  # own building: on a holiday too
        ("b07-east", 99, MONDAY_9, "unknown_card"),
        ("nowhere", 1, MONDAY_9, "unknown_door"),
        ("b07-east", 2, MONDAY_9, "suspended"),
        ("b07-east", 3, MONDAY_9, "revoked"),
        ("b07-east", 11, MONDAY_9, "revoked"),
        ("b07-east", 10, MONDAY_9, "lost"),
        ("b07-east", 12, MONDAY_9, "not_yet_valid"),
        ("b07-east", 13, MONDAY_9, "expired"),
        ("b03-gate", 1, MONDAY_9, "wrong_building"),
        ("b07-east", 4, MONDAY_9, "granted"),  # the cleaner's schedule, first segment
        ("b07-east", 4, at("2026-12-07 15:00"), "granted"),  # second segment the same Monday
        ("b07-east", 4, at("2026-12-07 13:00"), "outside_schedule"),
        ("b07-east", 4, at("2026-12-09 15:00"), "outside_schedule"),  # Wednesday: mornings only
        ("b07-east", 4, at("2026-12-08 09:00"), "holiday"),
    ],
)
def test_decision_reasons(engine: Engine, door: str, number: int, when: float, reason: str) -> None:
    decision = engine.decide(door, card(number), when)
    assert decision.reason == reason, decision
    assert decision.granted == (reason == "granted")
    if reason not in ("unknown_card", "unknown_door"):
        assert decision.holder is not None
    assert decision.why


def test_visitor_pass_uses_and_expiry(engine: Engine) -> None:
    visitor = Credential("number", 0, None, 777, "777")
    for _ in range(2):
        decision = engine.decide("b07-east", visitor, MONDAY_9)
        assert decision.granted, decision
        engine.admit("b07-east", decision, MONDAY_9)
    refused = engine.decide("b07-east", visitor, MONDAY_9)
    assert (refused.reason, refused.why) == ("visitor_uses_exhausted", "card 777 was used 2 of 2 times")
    assert engine.decide("b07-east", visitor, at("2026-12-31 00:00")).reason == "expired"  # holder window


def test_anti_passback(engine: Engine) -> None:
    resident = card(5)
    first = engine.decide("b05-in", resident, MONDAY_9)
    assert first.granted
    assert engine.decide("b05-in", resident, MONDAY_9).granted  # decide alone changes nothing
    engine.admit("b05-in", first, MONDAY_9)
    assert engine.decide("b05-in", resident, MONDAY_9 + 5).reason == "anti_passback"
    leaving = engine.decide("b05-out", resident, MONDAY_9 + 60)
    assert leaving.granted
    engine.admit("b05-out", leaving, MONDAY_9 + 60)
    assert engine.decide("b05-in", resident, MONDAY_9 + 120).granted


def test_lost_card_reported_after_it_worked(engine: Engine) -> None:
    assert engine.decide("b07-east", card(1), MONDAY_9).granted
    assert set_state(engine.db, card=(1, 1, 26), state="lost") == 1
    assert engine.decide("b07-east", card(1), MONDAY_9).reason == "lost"


# --- import ---------------------------------------------------------------------------------------
GOOD_ROWS = [
    "E001,李伟,Foxconn,B07,301,13800000000,12/34567,wiegand26,2026-01-01,2027-06-30",
    "E002,Wang Fang,Foxconn,b03,101,,1234567890,number,,",
    "E003,Zhao,Luxshare,b03,102,,300/5,wiegand34,,",
]


def write_csv(tmp_path: Path, rows: list[str], header: str = ",".join(HEADER)) -> Path:
    path = tmp_path / "residents.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_import_good_file(tmp_path: Path) -> None:
    db = open_db(tmp_path / "gate.db")
    result = import_csv(db, write_csv(tmp_path, GOOD_ROWS), ZONE)
    assert (result.holders, result.credentials) == (3, 3)
    engine = Engine(db, DOORS, ZONE)
    decision = engine.decide("b07-east", parse_wiegand(encode_wiegand(26, 12, 34567)), MONDAY_9)
    assert decision.granted and decision.holder is not None and decision.holder.name == "李伟"
    assert engine.decide("b07-east", (12, 34567), at("2027-06-30 23:59")).granted  # valid_until: the whole day
    assert engine.decide("b07-east", (12, 34567), at("2027-07-01 00:00")).reason == "expired"
    assert engine.decide("b03-gate", (300, 5), MONDAY_9).granted
    # importing the same file again updates, it does not duplicate
    import_csv(db, write_csv(tmp_path, GOOD_ROWS), ZONE)
    assert db.execute("SELECT count(*) FROM credentials").fetchone() == (3,)


def test_broken_rows_import_nothing_and_are_named(tmp_path: Path) -> None:
    db = open_db(tmp_path / "gate.db")
    rows = [
        *GOOD_ROWS,
        "E004,,Foxconn,b07,1,,1/2,wiegand26,,",  # line 5: no name
        "E005,Li,Foxconn,b 7,1,,1/2,wiegand26,,",  # line 6: bad building
        "E006,Li,Foxconn,b07,1,,256/2,wiegand26,,",  # line 7: facility too big for 26 bits
        "E007,Li,Foxconn,b07,1,,12/34567,wiegand26,,",  # line 8: E001's card again
        "E008,Li,Foxconn,b07,1,,5,mifare,,",  # line 9: unknown format
        "E009,Li,Foxconn,b07,1,,12345,number,2026-02-30,",  # line 10: no such date
        "E010,Li,Foxconn,b07,1",  # line 11: too few columns
        "E011,Li,Foxconn,b07,1,,99,number,2026-05-01,2026-04-01",  # line 12: ends before it starts
    ]
    with pytest.raises(GateImportError) as caught:
        import_csv(db, write_csv(tmp_path, rows), ZONE)
    message = str(caught.value)
    assert "nothing imported" in message
    for expected in [
        "line 5: name: empty",
        "line 6: building: 'b 7'",
        "line 7: card_number: facility 256 does not fit wiegand26",
        "line 8: card_number: 12/34567 is already on line 2",
        "line 9: card_format: 'mifare'",
        "line 10: valid_from: '2026-02-30'",
        "line 11: 5 columns, 10 expected",
        "line 12: valid_until: not after valid_from",
    ]:
        assert expected in message, message
    assert not any(p.startswith(("line 2:", "line 3:", "line 4:")) for p in caught.value.problems)
    assert db.execute("SELECT count(*) FROM holders").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM credentials").fetchone() == (0,)


def test_import_refuses_wrong_header_and_someone_elses_card(tmp_path: Path) -> None:
    db = open_db(tmp_path / "gate.db")
    with pytest.raises(GateImportError, match="line 1: the header must be exactly"):
        import_csv(db, write_csv(tmp_path, GOOD_ROWS, header="id,name"), ZONE)
    import_csv(db, write_csv(tmp_path, GOOD_ROWS), ZONE)
    thief = ["E099,Other,Foxconn,b07,1,,1234567890,number,,"]
    with pytest.raises(GateImportError, match="line 2: card_number: 1234567890 already belongs to employee E002"):
        import_csv(db, write_csv(tmp_path, thief), ZONE)


def test_import_reads_a_gb18030_spreadsheet(tmp_path: Path) -> None:
    db = open_db(tmp_path / "gate.db")
    path = tmp_path / "gbk.csv"
    path.write_bytes(("\r\n".join([",".join(HEADER), GOOD_ROWS[0]]) + "\r\n").encode("gb18030"))
    assert import_csv(db, path, ZONE).credentials == 1
    assert db.execute("SELECT name FROM holders").fetchone() == ("李伟",)


# --- the commands ---------------------------------------------------------------------------------
def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(agent_cmd(*args), capture_output=True, text=True, timeout=120, cwd=cwd)


def test_config_init_with_doors_and_no_camera_passes_check(tmp_path: Path) -> None:
    init = cli(
        "config", "init", "--storage", str(tmp_path / "rec"), "--site", "v1", "--device", "gate-1",
        "--door", "b07-east=b07", "--door", "b03-gate=b03",
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(init.stdout, encoding="utf-8")
    check = cli("config", "check", str(cfg))
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == f"{cfg}: OK (0 cameras, 2 doors, storage {tmp_path / 'rec'})"
    bad = cli("config", "init", "--storage", str(tmp_path), "--door", "b07-east")
    assert bad.returncode == 1 and "--door expects NAME=BUILDING" in bad.stderr
    twice = cli("config", "init", "--storage", str(tmp_path), "--door", "a=b07", "--door", "a=b03")
    assert twice.returncode == 1 and "--door a given more than once" in twice.stderr


def test_decide_end_to_end(tmp_path: Path) -> None:
    init = cli("config", "init", "--storage", str(tmp_path / "rec"), "--door", "b07-east=b07", "--door", "b03-gate=b03")
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(init.stdout, encoding="utf-8")
    refused = cli("decide", "--config", str(cfg), "--door", "b07-east", "--card", "12/34567")
    assert refused.returncode == 1 and "no allow-list" in refused.stderr and "gate import" in refused.stderr

    broken = write_csv(tmp_path, [*GOOD_ROWS, "E009,x,y,b07,1,,1/2,wiegand99,,"])
    done = cli("gate", "import", "--config", str(cfg), str(broken))
    assert done.returncode == 1 and "line 5: card_format: 'wiegand99'" in done.stderr, done.stderr
    with sqlite3.connect(tmp_path / "rec" / "gate.db") as db:
        assert db.execute("SELECT count(*) FROM credentials").fetchone() == (0,)

    done = cli("gate", "import", "--config", str(cfg), str(write_csv(tmp_path, GOOD_ROWS)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"imported": str(tmp_path / "residents.csv"), "holders": 3, "cards": 3}

    def decide(door: str, card: str, *more: str) -> dict[str, object]:
        proc = cli("decide", "--config", str(cfg), "--door", door, "--card", card, *more)
        assert proc.returncode == 0, proc.stderr
        out: dict[str, object] = json.loads(proc.stdout)
        return out

    frame = encode_wiegand(26, 12, 34567)
    granted = decide("b07-east", f"26:{frame}", "--at", "2026-12-07T01:00:00Z")
    assert granted["granted"] is True and granted["reason"] == "granted"
    assert granted["holder"] == {"employee_no": "E001", "name": "李伟", "building": "b07", "room": "301"}
    assert decide("b03-gate", "12/34567", "--at", "2026-12-07T01:00:00Z")["reason"] == "wrong_building"
    assert decide("b07-east", "12/34567", "--at", "2027-07-01T00:00:00+08:00")["reason"] == "expired"
    assert decide("b03-gate", "1234567890")["reason"] == "granted"
    # --at without a zone is the site's time: valid_until 2027-06-30 covers that whole day in Shanghai
    assert decide("b07-east", "12/34567", "--at", "2027-06-30T23:59")["reason"] == "granted"
    assert decide("b07-east", "12/34567", "--at", "2027-07-01T00:00")["reason"] == "expired"
    late = cli("decide", "--config", str(cfg), "--door", "b07-east", "--card", "1", "--at", "yesterday")
    assert late.returncode == 1 and "--at: not an ISO-8601 time" in late.stderr
    unknown = decide("b03-gate", "555")
    assert unknown == {"granted": False, "reason": "unknown_card", "holder": None, "why": unknown["why"]}
    bad = cli("decide", "--config", str(cfg), "--door", "b07-east", "--card", "26:" + _flip(frame, 0))
    assert bad.returncode == 1 and "--card: Wiegand 26: wrong even parity" in bad.stderr
    assert "Traceback" not in bad.stderr
