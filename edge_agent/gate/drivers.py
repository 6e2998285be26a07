"""From a door's config to the drivers that run it: its card reader and its door I/O. One place
that knows every kind, so the gate loop only asks for "this door's reader" and "its I/O".

Opening fails with words that name the device (OSError for a reader, DoorIOError for door I/O,
ValueError for a key file that holds no key): the loop logs them with the door's name and keeps
the other doors running."""

from __future__ import annotations

from edge_agent.config.doors import DoorConfig, ReaderConfig
from edge_agent.gate.door import DoorIO, GpiodDoor, GpioWiring, SimulatedDoor
from edge_agent.gate.reader import Reader


def open_reader(name: str, config: ReaderConfig) -> Reader:
    """The reader `config` describes, opened (the config's validation made sure its fields are there)."""
    if config.kind == "serial" and config.device is not None:
        from edge_agent.gate.serial_reader import SerialReader

        return SerialReader(name, config.device, config.baudrate)
    if config.kind == "osdp" and config.device is not None and config.key_file is not None:
        from edge_agent.gate.osdp_reader import open_osdp_reader

        return open_osdp_reader(name, config.device, config.baudrate, config.address, config.key_file)
    if config.kind == "wedge" and config.device is not None:
        from edge_agent.gate.wedge_reader import WedgeReader

        return WedgeReader(name, config.device)
    if (
        config.kind == "wiegand"
        and config.chip is not None
        and config.d0_line is not None
        and config.d1_line is not None
    ):
        from edge_agent.gate.wiegand_reader import open_wiegand_reader

        return open_wiegand_reader(name, config.chip, config.d0_line, config.d1_line, config.frame_gap_ms / 1000)
    if config.kind == "simulator":
        from edge_agent.gate.simulator import SimulatorReader

        return SimulatorReader(name)
    raise ValueError(f"reader {name}: a {config.kind} reader is missing its device fields")


def open_door_io(door: DoorConfig) -> DoorIO:
    """The relay, contact and exit button of `door`: simulated, or GPIO lines through libgpiod."""
    if door.io.backend == "simulator":
        return SimulatedDoor()
    if door.io.chip is None or door.relay.line is None:
        raise ValueError("gpiod door I/O needs `io.chip` and `relay.line`")
    wiring = GpioWiring(
        chip=door.io.chip,
        relay_line=door.relay.line,
        contact_line=door.contact.line if door.contact.enabled else None,
        exit_line=door.exit_button.line,
        relay_active_low=door.relay.active_low,
        contact_active_low=door.contact.active_low,
        exit_active_low=door.exit_button.active_low,
    )
    return GpiodDoor(wiring)
