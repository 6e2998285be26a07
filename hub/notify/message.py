"""The words a phone shows: in the recipient's language (hub/web/i18n.py), the time in the camera's
local time zone, and a link to the alert page when the hub knows its public address."""

from __future__ import annotations

from hub.notify import schedule
from hub.web.i18n import Lang, translate


def message(lang: Lang, camera: str, t: float, time_zone: str, zone: str | None, link: str | None) -> str:
    """What the phone shows: camera, local time, zone and the link to the alert page."""

    def tr(key: str) -> str:
        return translate(lang, key)

    lines = [
        tr("notify_msg_title"),
        f"{tr('camera')}{tr('notify_colon')}{camera}",
        f"{tr('time')}{tr('notify_colon')}{schedule.local_text(t, time_zone)} ({time_zone})",
        f"{tr('zone')}{tr('notify_colon')}{zone or tr('none')}",
    ]
    if link:
        lines.append(f"{tr('notify_msg_open')}{tr('notify_colon')}{link}")
    return "\n".join(lines)


def trial_message(lang: Lang, link: str | None) -> str:
    text = translate(lang, "notify_msg_test")
    return f"{text}\n{link}" if link else text
