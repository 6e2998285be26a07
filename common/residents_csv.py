"""The residents CSV that both the gate box (`diaolou-agent gate import`) and the hub
(`diaolou-hub cards import`, the upload page) read: one parser, so a file the hub accepts is a file
a box accepts, with the same row-level errors.

The header is fixed: employee_no,name,company,building,room,phone,card_number,card_format,
valid_from,valid_until. Every row is checked before anything is written; one bad row and the
import stops with a list naming each bad row (its line in the file, the column, what is wrong).
`card_format` is wiegand26 (or 26), wiegand34 (or 34), or number (or uid: the decimal number a
keyboard-wedge reader types).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

Format = Literal["wiegand26", "wiegand34", "number"]
FORMATS: tuple[Format, ...] = ("wiegand26", "wiegand34", "number")
# Facility bits, number bits of each Wiegand layout (parity bits excluded).
WIEGAND_LAYOUT: dict[int, tuple[int, int]] = {26: (8, 16), 34: (16, 16)}
# A keyboard-wedge reader types the card number; 18 digits always fit SQLite's 64-bit integers
# and cover every UID a wedge reader prints (10 digits for a 32-bit UID, 17 for a 56-bit one).
MAX_WEDGE_DIGITS = 18
NO_FACILITY = -1  # a keyboard-wedge number has no facility code
# Buildings are named like door configs and MQTT names: lower-case letters, digits, - and _.
BUILDING_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

HEADER = (
    "employee_no",
    "name",
    "company",
    "building",
    "room",
    "phone",
    "card_number",
    "card_format",
    "valid_from",
    "valid_until",
)
MAX_FILE_BYTES = 20 * 1024 * 1024  # 3,800 residents take ~400 kB; room for every village at once
MAX_ROWS = 200_000
MAX_FIELD = 100
MAX_SHOWN_ERRORS = 50
FORMAT_NAMES: dict[str, Format] = {
    "wiegand26": "wiegand26",
    "26": "wiegand26",
    "wiegand34": "wiegand34",
    "34": "wiegand34",
    "number": "number",
    "uid": "number",  # a card UID as a keyboard-wedge reader types it
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ResidentsCsvError(ValueError):
    """The file was refused; `problems` lists each as `line N: column: what is wrong`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_SHOWN_ERRORS]
        more = len(problems) - len(shown)
        lines = [f"{source}: nothing imported, {len(problems)} problem(s):", *shown]
        if more:
            lines.append(f"... and {more} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Row:
    line: int
    employee_no: str
    name: str
    company: str
    building: str
    room: str
    phone: str
    format: Format
    bits: int
    facility: int | None
    number: int
    raw: str
    valid_from: float | None
    valid_until: float | None


@dataclass(frozen=True)
class ImportResult:
    holders: int
    credentials: int


def read_text(path: Path) -> str:
    """The text of a residents file on disk (size-checked), as `decode_text` reads it."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ResidentsCsvError(str(path), [f"file is {size} bytes; at most {MAX_FILE_BYTES} accepted"])
    return decode_text(path.read_bytes(), str(path))


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (with or without BOM) or GB18030, what spreadsheets save; ResidentsCsvError otherwise."""
    if len(data) > MAX_FILE_BYTES:
        raise ResidentsCsvError(source, [f"file is {len(data)} bytes; at most {MAX_FILE_BYTES} accepted"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")  # what a Chinese-locale spreadsheet saves by default
        except UnicodeDecodeError:
            raise ResidentsCsvError(source, ["file is neither UTF-8 nor GB18030 text"]) from None


def parse_card_number(fmt: Format, text: str) -> tuple[int, int | None, int]:
    """(bits, facility, number) of a card_number in format `fmt`, or ValueError."""
    if fmt == "number":
        if not (text.isascii() and text.isdigit()) or len(text) > MAX_WEDGE_DIGITS:
            raise ValueError(f"{text!r} is not a card number (1 to {MAX_WEDGE_DIGITS} digits)")
        return 0, None, int(text)
    bits = 26 if fmt == "wiegand26" else 34
    fc_bits, num_bits = WIEGAND_LAYOUT[bits]
    facility, slash, number = text.partition("/")
    if not slash or not all(p.isascii() and p.isdigit() and len(p) <= 6 for p in (facility, number)):
        raise ValueError(f"{text!r}: a {fmt} card is written FACILITY/NUMBER, e.g. 12/34567")
    fc, num = int(facility), int(number)
    if fc >= 1 << fc_bits:
        raise ValueError(f"facility {fc} does not fit {fmt} (at most {(1 << fc_bits) - 1})")
    if num >= 1 << num_bits:
        raise ValueError(f"number {num} does not fit {fmt} (at most {(1 << num_bits) - 1})")
    return bits, fc, num


def _when(text: str, zone: ZoneInfo, end: bool) -> float | None:
    """Empty, a date (valid_until: through the end of that day, site time) or an ISO time."""
    if not text:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
        return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def parse_rows(text: str, timezone: str) -> tuple[list[Row], list[str]]:
    """The rows of a residents CSV and the problems found (the rows are only usable without problems)."""
    zone = ZoneInfo(timezone)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return [], ["line 1: the file is empty; the first line must be the header " + ",".join(HEADER)]
    if tuple(h.strip() for h in header) != HEADER:
        return [], [f"line 1: the header must be exactly {','.join(HEADER)} (got {','.join(header)[:200]})"]
    rows: list[Row] = []
    problems: list[str] = []
    cards: dict[tuple[int, int, int], int] = {}
    people: dict[str, tuple[int, str, str]] = {}
    for values in reader:
        line = reader.line_num
        if len(rows) + len(problems) >= MAX_ROWS:
            problems.append(f"line {line}: more than {MAX_ROWS} rows")
            break
        if not any(v.strip() for v in values):
            continue  # a blank line (spreadsheets leave them at the end)
        if len(values) != len(HEADER):
            problems.append(f"line {line}: {len(values)} columns, {len(HEADER)} expected")
            continue
        field = dict(zip(HEADER, (v.strip() for v in values), strict=True))
        row_problems = []
        for key, value in field.items():
            if len(value) > MAX_FIELD:
                row_problems.append(f"{key}: longer than {MAX_FIELD} characters")
            elif _CONTROL.search(value):
                row_problems.append(f"{key}: contains a control character")
        for key in ("employee_no", "name", "building", "card_number", "card_format"):
            if not field[key]:
                row_problems.append(f"{key}: empty")
        building = field["building"].lower()
        if building and not re.fullmatch(BUILDING_PATTERN, building):
            row_problems.append(f"building: {field['building']!r} must be letters, digits, - and _ (like door configs)")
        fmt = FORMAT_NAMES.get(field["card_format"].lower())
        card: tuple[int, int | None, int] | None = None
        if fmt is None and field["card_format"]:
            row_problems.append(f"card_format: {field['card_format']!r} is not wiegand26, wiegand34, number or uid")
        elif fmt is not None and field["card_number"]:
            try:
                card = parse_card_number(fmt, field["card_number"])
            except ValueError as exc:
                row_problems.append(f"card_number: {exc}")
        times: list[float | None] = []
        for key in ("valid_from", "valid_until"):
            try:
                times.append(_when(field[key], zone, end=key == "valid_until"))
            except (ValueError, OverflowError):
                times.append(None)
                row_problems.append(f"{key}: {field[key]!r} is not a date (YYYY-MM-DD) or ISO time")
        if times[0] is not None and times[1] is not None and times[1] <= times[0]:
            row_problems.append("valid_until: not after valid_from")
        if card is not None:
            key3 = (NO_FACILITY if card[1] is None else card[1], card[2], card[0])
            if key3 in cards:
                row_problems.append(f"card_number: {field['card_number']} is already on line {cards[key3]}")
            else:
                cards[key3] = line
        seen = people.get(field["employee_no"])
        if seen is not None and (seen[1], seen[2]) != (field["name"], building):
            row_problems.append(
                f"employee_no: {field['employee_no']} is on line {seen[0]} with another name or building"
            )
        elif field["employee_no"]:
            people.setdefault(field["employee_no"], (line, field["name"], building))
        if row_problems:
            problems.extend(f"line {line}: {p}" for p in row_problems)
            continue
        assert fmt is not None and card is not None
        rows.append(
            Row(
                line,
                field["employee_no"],
                field["name"],
                field["company"],
                building,
                field["room"],
                field["phone"],
                fmt,
                card[0],
                card[1],
                card[2],
                field["card_number"],
                times[0],
                times[1],
            )
        )
    return rows, problems
