"""The gate's side of the hub's allow-lists (contract/access.py): collect the parts, verify, apply.

A list is applied only when all of these hold, in this order (the first that fails names the
rejection, reported to the hub as an `access_list_rejected` event and logged):

1. every part decodes under the contract (`malformed`) and names this box (`wrong_gate`);
2. all parts arrived (held in memory meanwhile; a newer list drops an unfinished older one);
3. the body's SHA-256 is the header's digest (`altered`);
4. the Ed25519 signature verifies with the hub key of the config, `hub.list_key` (`forged`);
5. the version follows: a snapshot newer than the list held, a delta from at most the version
   held to a newer one (`replayed` for an old or repeated list, `gap` for a delta that starts
   after the version held: it would skip changes);
6. a snapshot would not empty a list that has cards (`empty_snapshot`: a hub whose database was
   lost must not lock out every resident);
7. the body inflates and every entry follows the schema (`malformed`); it can be written
   (`apply_failed`: a group naming a schedule that is not there, a full disk).

Then it is written in one transaction (gate.db, WAL): a decision taken meanwhile sees the old list
or the new one, never half of each, and never an empty list while a snapshot replaces the old.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from common.residents_csv import NO_FACILITY
from contract.access import AccessBody, AccessListPart, digest_of, header_bytes, unpack_body
from contract.messages import ContractError, decode
from edge_agent.gate.store import (
    add_to_group,
    list_version,
    put_credential,
    put_group,
    put_holder,
    put_holiday,
    put_schedule,
)

log = logging.getLogger("diaolou.gate.sync")
MAX_PENDING_LISTS = 2  # lists being assembled at once; more means someone is flooding the topic


class ListRejected(Exception):
    def __init__(self, reason: str, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.version = version


@dataclass(frozen=True)
class Applied:
    kind: str
    version: int
    entries: int
    seconds: float


@dataclass
class _Pending:
    first: AccessListPart
    data: dict[int, str] = field(default_factory=dict)


Rejected = Callable[[ListRejected], None]


class ListReceiver:
    """Feed it every payload of .../acl; it applies complete, verified lists to `db`."""

    def __init__(
        self, db: sqlite3.Connection, site: str, device: str, public_key_b64: str, on_reject: Rejected | None = None
    ) -> None:
        self.db = db
        self.site, self.device = site, device
        self.key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        self.on_reject = on_reject
        self._pending: dict[tuple[str, str], _Pending] = {}

    def receive(self, payload: bytes) -> Applied | None:
        """The list applied by this part, if it completed one; rejections go to `on_reject`."""
        try:
            return self._receive(payload)
        except ListRejected as exc:
            log.warning("access list rejected (%s): %s", exc.reason, exc)
            if self.on_reject is not None:
                self.on_reject(exc)
            return None

    def _receive(self, payload: bytes) -> Applied | None:
        try:
            part = decode(AccessListPart, payload)
        except ContractError as exc:
            raise ListRejected("malformed", f"not an access list part: {exc}") from None
        if (part.site, part.device) != (self.site, self.device):
            raise ListRejected("wrong_gate", f"list for {part.site}/{part.device}, not this box", part.version)
        if part.part >= part.parts:
            raise ListRejected("malformed", f"part {part.part} of {part.parts}", part.version)
        key = (part.digest, part.signature)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= MAX_PENDING_LISTS:
                self._pending.pop(next(iter(self._pending)))
            pending = self._pending[key] = _Pending(part)
        elif header_bytes(part) != header_bytes(pending.first):
            self._pending.pop(key)
            raise ListRejected("altered", "parts of one list disagree on its header", part.version)
        pending.data[part.part] = part.data
        if len(pending.data) < part.parts:
            return None
        del self._pending[key]
        try:
            body = b"".join(base64.b64decode(pending.data[i], validate=True) for i in range(part.parts))
        except (binascii.Error, ValueError):
            raise ListRejected("malformed", "a part's data is not base64", part.version) from None
        return self._apply(pending.first, body)

    def _apply(self, head: AccessListPart, body: bytes) -> Applied:
        started = time.perf_counter()
        if digest_of(body) != head.digest:
            raise ListRejected("altered", "the body does not match the digest the hub signed", head.version)
        try:
            self.key.verify(base64.b64decode(head.signature), header_bytes(head))
        except (InvalidSignature, binascii.Error, ValueError):
            raise ListRejected(
                "forged", f"signature does not verify with the hub key (list key id {head.key_id})", head.version
            ) from None
        current = list_version(self.db)
        if head.kind == "snapshot" and head.version <= current:
            raise ListRejected("replayed", f"snapshot v{head.version} is not newer than v{current}", head.version)
        # A delta carries the current state of every card changed after `base`, not operations, so
        # it applies to any list from `base` on: what the gate holds must lie in [base, version).
        if head.kind == "delta" and not head.base <= current < head.version:
            reason = "replayed" if head.version <= current else "gap"
            raise ListRejected(reason, f"delta v{head.base}->v{head.version} does not follow v{current}", head.version)
        try:
            content = unpack_body(body)
        except ContractError as exc:
            raise ListRejected("malformed", str(exc), head.version) from None
        if head.kind == "snapshot" and not content.entries and self._cards() > 0:
            raise ListRejected("empty_snapshot", "an empty snapshot would lock every resident out", head.version)
        try:
            apply_body(self.db, head.kind == "snapshot", head.version, content)
        except (sqlite3.Error, ValueError) as exc:  # rolled back: the list held stays as it was
            raise ListRejected("apply_failed", f"cannot write the list: {exc}", head.version) from None
        n = len(content.entries)
        seconds = time.perf_counter() - started
        log.info("applied %s v%d (%d cards) in %.0f ms", head.kind, head.version, n, seconds * 1000)
        return Applied(head.kind, head.version, n, seconds)

    def _cards(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM credentials").fetchone()[0])


def _put_groups(db: sqlite3.Connection, body: AccessBody) -> None:
    """Groups, schedules and holidays come whole with every list: what is not in it is gone."""
    for schedule in body.schedules:
        segments = [(d, a, b) for d, a, b in schedule.segments]
        put_schedule(db, schedule.name, segments, schedule.closed_on_holidays)
    for group in body.groups:
        put_group(db, group.name, list(group.buildings), group.schedule)
    names = [g.name for g in body.groups]
    db.execute(f"DELETE FROM groups WHERE name NOT IN ({','.join('?' * len(names))})", names)
    kept = [s.name for s in body.schedules]
    db.execute(f"DELETE FROM schedules WHERE name NOT IN ({','.join('?' * len(kept))})", kept)
    db.execute("DELETE FROM holidays")
    for holiday in body.holidays:
        put_holiday(db, holiday.day, holiday.name)


def apply_body(db: sqlite3.Connection, snapshot: bool, version: int, body: AccessBody) -> None:
    """Write a verified list in one transaction. A snapshot keeps the uses of the passes it keeps."""
    db.execute("BEGIN IMMEDIATE")
    try:
        _put_groups(db, body)
        keep: list[tuple[int, int, int]] = []
        for e in body.entries:
            card = (e.facility, e.number, e.bits)
            if e.state == "removed":
                db.execute("DELETE FROM credentials WHERE facility = ? AND number = ? AND bits = ?", card)
                continue
            holder = put_holder(db, e.employee_no, e.name, e.building, room=e.room, kind=e.kind)
            db.execute("DELETE FROM holder_groups WHERE holder_id = ?", (holder,))
            for group in e.groups:
                add_to_group(db, holder, group)
            facility = None if e.facility == NO_FACILITY else e.facility
            put_credential(
                db,
                holder,
                e.format,
                e.bits,
                facility,
                e.number,
                raw=e.raw,
                state=e.state,
                valid_from=e.valid_from,
                valid_until=e.valid_until,
                max_uses=e.max_uses,
            )
            keep.append(card)
        if snapshot:
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS snapshot_cards (facility INTEGER, number INTEGER, bits INTEGER)"
            )
            db.execute("DELETE FROM snapshot_cards")
            db.executemany("INSERT INTO snapshot_cards VALUES (?, ?, ?)", keep)
            db.execute(
                "DELETE FROM credentials WHERE (facility, number, bits) NOT IN "
                "(SELECT facility, number, bits FROM snapshot_cards)"
            )
        db.execute(
            "DELETE FROM holders WHERE id NOT IN (SELECT holder_id FROM credentials) "
            "AND id NOT IN (SELECT holder_id FROM holder_groups)"
        )
        db.execute(
            "INSERT INTO list_state (id, version, applied) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "version = excluded.version, applied = excluded.applied",
            (version, time.time()),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
