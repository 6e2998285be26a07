"""Small copies of alert snapshots for lists (the feed, the camera grid), so a phone on a thin
link loads a page of alerts in tens of kilobytes instead of a megabyte.

Made on first request and kept beside the snapshot (`<event id>.thumb.jpg`); a newer snapshot
(the end-of-event one replaces the first) makes a newer thumbnail. Pillow's JPEG draft mode
decodes at 1/2, 1/4 or 1/8 scale inside the DCT, so a thumbnail costs a few milliseconds.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from common.durable import write_atomic

THUMB_WIDTH = 320  # two device pixels per CSS pixel at the feed's 112-160 px wide images
THUMB_QUALITY = 70


def thumbnail(snapshot: Path) -> Path:
    """The thumbnail of `snapshot`, made or refreshed as needed. Raises OSError or ValueError
    (Pillow's errors for a file that is not a readable JPEG)."""
    thumb = snapshot.with_name(snapshot.stem + ".thumb.jpg")
    try:
        if thumb.stat().st_mtime >= snapshot.stat().st_mtime:
            return thumb
    except FileNotFoundError:
        pass
    with Image.open(snapshot) as source:
        source.draft("RGB", (THUMB_WIDTH, THUMB_WIDTH))
        image = source.convert("RGB")
    if image.width > THUMB_WIDTH:
        height = max(1, round(image.height * THUMB_WIDTH / image.width))
        image = image.resize((THUMB_WIDTH, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    write_atomic(thumb, out.getvalue())
    return thumb
