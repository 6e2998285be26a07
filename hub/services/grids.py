"""Grids of the city's grid-management centre: imported from GeoJSON, and which grid a device or a
camera belongs to (by its position inside a grid's polygon, or assigned by hand).

A grid worker sees the incidents of the grids assigned to them (`user_scopes` kind 'grid'),
nothing else: deny by default.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.services import audit
from hub.store import transaction

Ring = list[tuple[float, float]]


class GridError(ValueError):
    """Bad GeoJSON, an unknown grid or user: the message names what is wrong."""


class Grid(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(description="The grid's code in the city's registry.")
    name: str = Field(description="The grid's name.")
    civil_code: str = Field(description="The administrative division code (e.g. a 12-digit village code).")
    polygons: list[list[Ring]] = Field(description="Polygons, each an outer ring then holes, as (lon, lat).")


def _ring(value: Any, where: str) -> Ring:
    if not isinstance(value, list) or len(value) < 4:
        raise GridError(f"{where}: a ring needs at least 4 [lon, lat] positions")
    out: Ring = []
    for pos in value:
        ok = isinstance(pos, list) and len(pos) >= 2 and all(isinstance(c, int | float) for c in pos[:2])
        if not ok or not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
            raise GridError(f"{where}: {str(pos)[:40]} is not a [lon, lat] position")
        out.append((float(pos[0]), float(pos[1])))
    return out


def parse_geojson(text: str) -> list[Grid]:
    """A FeatureCollection of Polygon/MultiPolygon features with properties code, name, civil_code."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GridError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise GridError("expected a GeoJSON FeatureCollection with a 'features' list")
    grids: dict[str, Grid] = {}
    for n, feature in enumerate(doc["features"]):
        where = f"feature {n}"
        props = feature.get("properties") if isinstance(feature, dict) else None
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(props, dict) or not isinstance(geometry, dict):
            raise GridError(f"{where}: needs 'properties' and 'geometry'")
        values = {key: props.get(key) for key in ("code", "name", "civil_code")}
        for key, value in values.items():
            if not isinstance(value, str | int) or not str(value).strip() or len(str(value)) > 64:
                raise GridError(f"{where}: property '{key}' is missing or not a short text")
        code = str(values["code"]).strip()
        where = f"feature {n} (grid {code})"
        coords = geometry.get("coordinates")
        if geometry.get("type") == "Polygon" and isinstance(coords, list):
            polygons = [[_ring(r, where) for r in coords]]
        elif geometry.get("type") == "MultiPolygon" and isinstance(coords, list):
            polygons = [[_ring(r, where) for r in p] for p in coords if isinstance(p, list)]
        else:
            raise GridError(f"{where}: geometry must be a Polygon or MultiPolygon")
        if not polygons or any(not p for p in polygons):
            raise GridError(f"{where}: empty geometry")
        if code in grids:
            raise GridError(f"{where}: code {code} appears twice")
        grids[code] = Grid(
            code=code, name=str(values["name"]).strip(), civil_code=str(values["civil_code"]).strip(), polygons=polygons
        )
    if not grids:
        raise GridError("the FeatureCollection has no features")
    return list(grids.values())


def import_grids(conn: sqlite3.Connection, actor: audit.Actor, grids: list[Grid]) -> int:
    """Insert or replace each grid; then re-place every device/camera that was placed by position."""
    now = time.time()
    with transaction(conn):
        for g in grids:
            points = [pt for poly in g.polygons for pt in poly[0]]
            conn.execute(
                "INSERT OR REPLACE INTO grids VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    g.code,
                    g.name,
                    g.civil_code,
                    json.dumps(g.polygons),
                    min(p[0] for p in points),
                    min(p[1] for p in points),
                    max(p[0] for p in points),
                    max(p[1] for p in points),
                    now,
                ),
            )
        for row in conn.execute("SELECT ref, lon, lat FROM grid_places WHERE assigned = 0").fetchall():
            conn.execute("UPDATE grid_places SET grid = ? WHERE ref = ?", (grid_at(conn, row[1], row[2]), row[0]))
        audit.record(conn, actor, "grids.import", None, count=len(grids))
    return len(grids)


def list_grids(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return [(r[0], r[1], r[2]) for r in conn.execute("SELECT code, name, civil_code FROM grids ORDER BY code")]


def _inside(lon: float, lat: float, ring: Ring) -> bool:
    """Even-odd ray casting: enough for grid polygons (no antimeridian in a city)."""
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def grid_at(conn: sqlite3.Connection, lon: float | None, lat: float | None) -> str | None:
    """The grid whose polygon holds the point (the first by code if grids overlap), or None."""
    if lon is None or lat is None:
        return None
    rows = conn.execute(
        "SELECT code, geometry FROM grids WHERE min_lon <= ? AND max_lon >= ? AND min_lat <= ? AND max_lat >= ? "
        "ORDER BY code",
        (lon, lon, lat, lat),
    )
    for code, geometry in rows:
        for polygon in json.loads(geometry):
            if _inside(lon, lat, polygon[0]) and not any(_inside(lon, lat, hole) for hole in polygon[1:]):
                return str(code)
    return None


def place(
    conn: sqlite3.Connection,
    actor: audit.Actor,
    ref: str,
    *,
    lon: float | None = None,
    lat: float | None = None,
    grid: str | None = None,
) -> str | None:
    """Record where `ref` (site.device or site.device.camera) stands and/or which grid it is
    assigned to; returns its grid."""
    if ref.count(".") not in (1, 2):
        raise GridError(f"{ref!r} is neither site.device nor site.device.camera")
    if grid is not None and conn.execute("SELECT 1 FROM grids WHERE code = ?", (grid,)).fetchone() is None:
        raise GridError(f"no grid {grid!r}: import it first (diaolou-hub grids import)")
    if grid is None and (lon is None or lat is None):
        raise GridError("give a grid, or a position (lon and lat)")
    found = grid if grid is not None else grid_at(conn, lon, lat)
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO grid_places VALUES (?, ?, ?, ?, ?, ?)",
            (ref, found, lon, lat, int(grid is not None), time.time()),
        )
        audit.record(conn, actor, "grids.place", ref, grid=found, lon=lon, lat=lat)
    return found


def grid_of(conn: sqlite3.Connection, site: str | None, device: str | None, camera: str | None) -> str | None:
    """The grid of a camera (its own place first, then its device's)."""
    if site is None or device is None:
        return None
    refs = ([f"{site}.{device}.{camera}"] if camera else []) + [f"{site}.{device}"]
    for ref in refs:
        row = conn.execute("SELECT grid FROM grid_places WHERE ref = ?", (ref,)).fetchone()
        if row is not None:
            return str(row[0]) if row[0] is not None else None
    return None


def assign_worker(conn: sqlite3.Connection, actor: audit.Actor, username: str, grid: str, remove: bool = False) -> None:
    user = conn.execute("SELECT id, role FROM users WHERE username = ?", (username,)).fetchone()
    if user is None:
        raise GridError(f"no user {username!r}")
    if user[1] != "grid_worker":
        raise GridError(f"{username} is a {user[1]}, not a grid_worker")
    if conn.execute("SELECT 1 FROM grids WHERE code = ?", (grid,)).fetchone() is None:
        raise GridError(f"no grid {grid!r}: import it first (diaolou-hub grids import)")
    with transaction(conn):
        if remove:
            conn.execute("DELETE FROM user_scopes WHERE user_id = ? AND kind = 'grid' AND value = ?", (user[0], grid))
        else:
            conn.execute("INSERT OR IGNORE INTO user_scopes VALUES (?, 'grid', ?)", (user[0], grid))
        audit.record(conn, actor, "grids.unassign" if remove else "grids.assign", username, grid=grid)
