"""The reader drivers that need hardware, fed what the hardware delivers: a keyboard-wedge reader
gets real `struct input_event` bytes through a pipe standing in for its /dev/input node, a
Wiegand reader a recorded stream of real `gpiod.EdgeEvent`s through the same consumer as a GPIO
line request. Bad input (overlong lines, noise, truncated frames, wrong parity) is refused with
its reason and the next card reads as usual."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge_agent.config import ConfigError, parse_config
from edge_agent.gate.credential import CardReadError, encode_wiegand
from edge_agent.gate.wedge_reader import EV_KEY, EVENT, KEY_ENTER, KEY_KPENTER, WedgeReader, encode_line
from edge_agent.gate.wiegand_reader import GpiodEdges, RecordedLines, WiegandReader, request_wiegand_lines

# ---- keyboard wedge -------------------------------------------------------------------------

KEYS = {"7": 8}


def key(code: int, value: int) -> bytes:
    return EVENT.pack(1_790_000_000, 0, EV_KEY, code, value)


KEYPAD = {"7": 71, "8": 72, "9": 73, "4": 75, "5": 76, "6": 77, "1": 79, "2": 80, "3": 81, "0": 82}


def on_keypad(text: str) -> bytes:
    """Digits typed on the numeric keypad, bare key events (no scan codes or report boundaries)."""
    keys = [KEYPAD[char] for char in text] + [KEY_KPENTER]
    return b"".join(key(code, 1) + key(code, 0) for code in keys)


def feed(fd: int, data: bytes) -> threading.Thread:
    """Write more than a pipe holds without blocking the test, which is the one reading it."""
    thread = threading.Thread(target=os.write, args=(fd, data), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def wedge() -> Iterator[tuple[WedgeReader, int]]:
    r, w = os.pipe()
    reader = WedgeReader("b07-east", f"/proc/self/fd/{r}", grab=False)  # a pipe has nothing to grab
    yield reader, w
    reader.close()
    os.close(r)
    os.close(w)


def test_a_wedge_reader_reads_card_numbers_from_kernel_input_events(wedge: tuple[WedgeReader, int]) -> None:
    reader, w = wedge
    data = encode_line("0012345678")
    os.write(w, data[:37])  # the kernel's structs may arrive split anywhere
    assert reader.read(0.05) is None
    os.write(w, data[37:])
    card = reader.read(2)
    assert card is not None and (card.format, card.number, card.raw) == ("number", 12345678, "0012345678")
    os.write(w, on_keypad("4321") + encode_line("99"))  # two lines in one read
    assert [c.number for c in (reader.read(2), reader.read(2)) if c is not None] == [4321, 99]
    assert reader.read(0.1) is None


def test_a_wedge_reader_refuses_a_stuck_key_and_garbage_and_reads_the_next_card(
    wedge: tuple[WedgeReader, int],
) -> None:
    reader, w = wedge
    stuck = key(KEYS["7"], 1) + b"".join(key(KEYS["7"], 2) for _ in range(4999)) + key(KEYS["7"], 0)
    writer = feed(w, stuck + key(KEY_ENTER, 1) + key(KEY_ENTER, 0))
    with pytest.raises(CardReadError, match="keyboard line too long: 5000 keys before Enter"):
        reader.read(5)
    writer.join(5)
    os.write(w, encode_line("12ab") + encode_line("!1") + encode_line(""))
    with pytest.raises(CardReadError, match="'12ab' is not a card number"):
        reader.read(2)
    with pytest.raises(CardReadError, match="'!1' is not a card number"):
        reader.read(2)
    with pytest.raises(CardReadError, match="empty keyboard line"):
        reader.read(2)
    os.write(w, encode_line("42"))
    card = reader.read(2)
    assert card is not None and card.number == 42


def test_a_wedge_reader_that_is_unplugged_says_so_and_reads_nothing(
    wedge: tuple[WedgeReader, int], caplog: pytest.LogCaptureFixture
) -> None:
    reader, w = wedge
    os.write(w, encode_line("7"))
    r2, w2 = os.pipe()
    os.dup2(r2, w)  # the test's write end is gone: the reader sees end of file, as on an unplug
    os.close(w2)
    os.close(r2)
    card = reader.read(2)
    assert card is not None and card.number == 7
    assert reader.read(0.3) is None
    assert "input device /proc/self/fd/" in caplog.text and "is gone" in caplog.text


def test_a_wedge_device_that_is_missing_or_cannot_be_grabbed_is_named(tmp_path: object) -> None:
    with pytest.raises(OSError, match="reader b07-east: cannot open input device /dev/input/by-id/none"):
        WedgeReader("b07-east", "/dev/input/by-id/none")
    r, w = os.pipe()
    try:
        with pytest.raises(OSError, match=f"cannot grab input device /proc/self/fd/{r}"):
            WedgeReader("b07-east", f"/proc/self/fd/{r}")
    finally:
        os.close(r)
        os.close(w)


# ---- Wiegand on GPIO ------------------------------------------------------------------------

D0, D1 = 5, 6


class Recording(RecordedLines):
    def __init__(self) -> None:
        super().__init__(D0, D1)

    def add(self, ns: int, line: int) -> None:
        self.edge(ns, line)


def wiegand(recording: Recording) -> WiegandReader:
    return WiegandReader("b07-east", GpiodEdges(recording, D0, D1))


def test_wiegand_26_and_34_frames_from_recorded_gpio_edges() -> None:
    rec = Recording()
    rec.frame(encode_wiegand(26, 12, 34567), 100.0)
    rec.add(int(100.02 * 1e9), 17)  # another line of the chip: not the reader's
    rec.frame(encode_wiegand(34, 300, 65535), 100.5)  # half a second later: a second frame
    reader = wiegand(rec)
    first, second = reader.read(2), reader.read(2)
    assert first is not None and (first.bits, first.facility, first.number) == (26, 12, 34567)
    assert second is not None and (second.bits, second.facility, second.number) == (34, 300, 65535)
    assert reader.read(0.1) is None


def test_wiegand_noise_truncation_parity_and_overlong_frames_are_refused_and_the_next_card_reads() -> None:
    rec = Recording()
    good = encode_wiegand(26, 12, 1)
    rec.frame(good, 10.0)
    rec.add(int((10.0 + 5 * 0.002 + 0.000_05) * 1e9), D0)  # a glitch 50 us after bit 5
    rec.events.sort(key=lambda e: e.timestamp_ns)
    rec.frame(good[:20], 11.0)  # the card pulled away: 20 bits
    rec.frame(good[:-1] + ("0" if good[-1] == "1" else "1"), 12.0)  # last parity bit flipped
    rec.frame(("0" if good[0] == "1" else "1") + good[1:], 12.5)  # leading parity bit flipped
    rec.frame("1" * 1000, 13.0, spacing_s=0.001)  # a wire chattering for a second
    rec.frame(good, 15.0)
    reader = wiegand(rec)
    for expected in (
        "noise or bounce",
        "wrong Wiegand length: 20 bits",
        "wrong odd parity",
        "wrong even parity",
        "Wiegand frame too long: 1000 pulses",
    ):
        with pytest.raises(CardReadError, match=expected):
            reader.read(2)
    card = reader.read(2)
    assert card is not None and card.number == 1


def test_a_frame_ends_after_the_configured_silence_not_the_read_timeout() -> None:
    """Edges arrive, then nothing: the frame is decoded once the wires stay quiet for the gap."""
    rec = Recording()
    rec.frame(encode_wiegand(26, 7, 7), 50.0)
    reader = WiegandReader("b07-east", GpiodEdges(rec, D0, D1), gap_s=0.005)
    card = reader.read(30)  # returns at the end of the frame: the test would take 30 s otherwise
    assert card is not None and card.number == 7


def test_a_wiegand_reader_on_a_missing_chip_names_chip_and_lines() -> None:
    with pytest.raises(OSError, match="cannot open GPIO chip /dev/gpiochip-none lines D0=5 D1=6"):
        request_wiegand_lines("/dev/gpiochip-none", 5, 6, "test")


# ---- agent.yaml -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("door", "expected"),
    [
        ({"reader": {"kind": "wiegand", "chip": "/dev/gpiochip0", "d0_line": 5, "d1_line": 5}}, "two distinct lines"),
        ({"reader": {"kind": "wiegand", "d0_line": 5, "d1_line": 6}}, "needs `chip`, `d0_line` and `d1_line`"),
        ({"reader": {"kind": "wedge"}}, "a wedge reader needs `device`"),
        ({"reader": {"kind": "serial"}}, "a serial reader needs `device`"),
        ({"reader": {"kind": "osdp", "device": "/dev/ttyUSB0"}}, "an osdp reader needs `key_file`"),
        ({"reader": {"kind": "osdp", "device": "/dev/ttyUSB0", "key": "00" * 16}}, "key"),
        ({"reader": {"kind": "serial", "device": "/dev/ttyS1", "key_file": "k"}}, "`key_file` is for osdp"),
        ({"reader": {"kind": "wiegand", "chip": "c", "d0_line": 1, "d1_line": 2, "device": "x"}}, "has no `device`"),
        ({"io": {"backend": "gpiod"}}, "needs `io.chip` and `relay.line`"),
        ({"relay": {"line": 17}}, "relay.line set but `io.backend` is simulator"),
        (
            {"io": {"backend": "gpiod", "chip": "/dev/gpiochip0"}, "relay": {"line": 17}, "contact": {"enabled": True}},
            "`contact.enabled` and `contact.line` go together",
        ),
        (
            {
                "reader": {"kind": "wiegand", "chip": "/dev/gpiochip0", "d0_line": 5, "d1_line": 6},
                "io": {"backend": "gpiod", "chip": "/dev/gpiochip0"},
                "relay": {"line": 6},
            },
            "relay.line and reader.d1_line are both line 6 of /dev/gpiochip0",
        ),
    ],
)
def test_reader_and_door_io_config_is_checked_with_clear_words(door: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config(yaml.safe_dump({"doors": {"b07-east": {"building": "b07", **door}}}))


def test_a_fully_wired_door_config_is_accepted() -> None:
    config = parse_config(
        yaml.safe_dump(
            {
                "doors": {
                    "b07-east": {
                        "building": "b07",
                        "reader": {"kind": "wiegand", "chip": "/dev/gpiochip0", "d0_line": 5, "d1_line": 6},
                        "io": {"backend": "gpiod", "chip": "/dev/gpiochip0"},
                        "relay": {"line": 17, "active_low": True},
                        "contact": {"enabled": True, "line": 27},
                        "exit_button": {"line": 22},
                    }
                }
            }
        )
    )
    door = config.doors["b07-east"]
    assert (door.relay.line, door.contact.line, door.exit_button.line, door.reader.frame_gap_ms) == (17, 27, 22, 25)


def test_the_door_examples_in_the_installers_guide_are_valid_configs() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "gates.md").read_text(encoding="utf-8")
    examples = [block for block in re.findall(r"```yaml\n(.*?)```", text, re.S) if "reader:" in block]
    kinds = {next(iter(parse_config(block).doors.values())).reader.kind for block in examples}
    assert kinds == {"simulator", "serial", "osdp", "wedge", "wiegand"}
