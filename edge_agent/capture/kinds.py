"""What kind of source a string names (no heavy imports: the config schema uses it)."""

from __future__ import annotations

import re
from typing import Literal

SourceKind = Literal["rtsp", "file", "v4l2"]


def classify(source: str) -> SourceKind:
    if source.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if source.startswith(("/dev/video", "v4l2://")):
        return "v4l2"
    if re.match(r"^[a-z][a-z0-9+.-]*://", source):
        raise ValueError(f"unsupported source {mask_secrets(source)!r}: use rtsp://..., a video file or /dev/videoN")
    return "file"


def mask_secrets(url: str) -> str:
    """rtsp://admin:pw@host/... -> rtsp://admin:***@host/...; also masks password=... in paths."""
    url = re.sub(r"(://[^:/@\s]+:)[^@/\s]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&/?\s]*", r"\1***", url, flags=re.IGNORECASE)
