"""The phone's bottom tab bar: which pages each role has, and which fit on the bar.

A 390 px phone holds four or five tabs; an admin has nine pages. The first four of a role's tabs
stay on the bar and the rest open from a "More" tab, as phone apps do, instead of squeezing nine
labels until they are cut off. The order puts what each role opens most first.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.models import Role

ON_BAR = 4


@dataclass(frozen=True)
class Tab:
    key: str  # the page's `active` name
    href: str
    roles: frozenset[Role]
    label: str  # its i18n key: short enough for a fifth of a phone's width


def _tab(key: str, href: str, *roles: Role, label: str = "") -> Tab:
    return Tab(key, href, frozenset(roles), label or key)


EVERYONE: tuple[Role, ...] = ("admin", "shop_owner", "police", "dorm_manager", "grid_worker")
TABS = (
    _tab("cameras", "/", *EVERYONE),
    _tab("alerts", "/alerts", *EVERYONE),
    _tab("police_console", "/police", "police", label="police_tab"),
    _tab("incidents", "/incidents", "admin", "grid_worker", "police"),
    _tab("doors", "/doors", "admin", "dorm_manager"),
    _tab("cards", "/cards", "admin", "dorm_manager"),
    _tab("clips", "/clips", "admin", "police", "shop_owner"),
    _tab("devices", "/devices", "admin"),
    _tab("users", "/users", "admin"),
    _tab("audit", "/audit", "admin"),
    _tab("notifications", "/notifications", *EVERYONE),
)


@dataclass(frozen=True)
class Nav:
    bar: list[Tab]
    more: list[Tab]  # empty when everything fits on the bar


def nav_for(role: Role) -> Nav:
    mine = [tab for tab in TABS if role in tab.roles]
    if len(mine) <= ON_BAR + 1:  # a "More" tab in place of the fifth would hide one page for nothing
        return Nav(mine, [])
    return Nav(mine[:ON_BAR], mine[ON_BAR:])
