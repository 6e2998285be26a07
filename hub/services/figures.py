"""The figures a grid centre watches, per grid, per category or per month, for a period.

The incidents counted are those *due* in the period: dispatched, with their deadline inside
[since, until). Of those:
- closure rate = closed / due;
- on-time rate = resolved by the deadline (the last resolution, after any rework) / due;
- rework rate = sent back at least once / due;
- mean time to close = mean of (closed - reported) over the closed ones, in hours.
Months are UTC calendar months of the deadline. One query answered from a covering index (idx_incidents_figures).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.models import Principal
from hub.services.incidents import visible_sql

By = Literal["grid", "category", "month", "all"]
_KEY = {"grid": "coalesce(grid, '-')", "category": "category", "month": "strftime('%Y-%m', due, 'unixepoch')",
        "all": "'all'"}  # fmt: skip


class Figure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str = Field(description="The grid code, category, month (YYYY-MM) or 'all'.")
    due: int = Field(description="Incidents whose deadline falls in the period.")
    closed: int = Field(description="Of those, closed.")
    on_time: int = Field(description="Of those, resolved by the deadline.")
    reworked: int = Field(description="Of those, sent back at least once.")
    closure_rate: float = Field(description="closed / due.")
    on_time_rate: float = Field(description="on_time / due.")
    rework_rate: float = Field(description="reworked / due.")
    mean_hours_to_close: float | None = Field(description="Mean hours from report to close, of the closed ones.")


class FigureTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    by: By = Field(description="What the rows are.")
    since: float = Field(description="Period start, epoch seconds UTC.")
    until: float = Field(description="Period end (exclusive).")
    rows: list[Figure] = Field(description="One per key, in key order.")


def figures(conn: sqlite3.Connection, principal: Principal | None, by: By, since: float, until: float) -> FigureTable:
    clause, params = visible_sql(principal) if principal is not None else ("1", list[str]())
    sql = (
        f"SELECT {_KEY[by]} AS k, count(*), sum(status = 'closed'), sum(resolved IS NOT NULL AND resolved <= due), "
        "sum(reworks > 0), avg(CASE WHEN status = 'closed' THEN closed - created END) "
        f"FROM incidents WHERE due >= ? AND due < ? AND {clause} GROUP BY k ORDER BY k"
    )
    rows = []
    for key, due, closed, on_time, reworked, mean in conn.execute(sql, [since, until, *params]):
        rows.append(
            Figure(
                key=str(key),
                due=due,
                closed=closed,
                on_time=on_time,
                reworked=reworked,
                closure_rate=closed / due,
                on_time_rate=on_time / due,
                rework_rate=reworked / due,
                mean_hours_to_close=None if mean is None else mean / 3600,
            )
        )
    return FigureTable(by=by, since=since, until=until, rows=rows)


def to_csv(table: FigureTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([table.by, "due", "closed", "on_time", "reworked", "closure_rate", "on_time_rate", "rework_rate",
                     "mean_hours_to_close"])  # fmt: skip
    for r in table.rows:
        mean = "" if r.mean_hours_to_close is None else f"{r.mean_hours_to_close:.2f}"
        key = "'" + r.key if r.key[:1] in ("=", "+", "-", "@") and r.key != "-" else r.key  # no spreadsheet formulas
        writer.writerow([key, r.due, r.closed, r.on_time, r.reworked, f"{r.closure_rate:.4f}", f"{r.on_time_rate:.4f}",
                         f"{r.rework_rate:.4f}", mean])  # fmt: skip
    return out.getvalue()
